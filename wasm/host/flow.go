package host

import (
	"errors"
	"slices"
	"strings"

	"github.com/talowa/wedge/wasm/abi"
)

// Chain is a chain of plugins and the origin behind it, as [Flow] runs an
// exchange through them. The edge implements it over the plugin versions a
// request holds and its origin client (edge/handler.go); [RunChain]
// implements it over [Stage]s and a function, for wasmtest, sdktest and
// the conformance kit. Whatever implements it, the order of the phases,
// the fields a plugin leaves on its answer, what answered means and the
// background revalidation are [Flow]'s, so the edge runs the code the
// tests run.
type Chain interface {
	// Len is the number of plugins.
	Len() int
	// OnRequest runs plugin i's request phase (i from 0, in chain order)
	// with its failure policy applied: on a failure it returns the error
	// with the action the policy chose.
	OnRequest(i int, ex Exchange) (abi.Action, error)
	// OnResponse runs plugin i's response phase; a plugin without one
	// returns nil.
	OnResponse(i int, ex Exchange) error
	// Failed reports plugin i's failure in a phase, the error OnRequest
	// or OnResponse returned.
	Failed(i int, phase abi.Phase, err error)
	// Origin sends x.Req, with the values in x.Vals, to the origin and
	// puts its answer, or the failure to get one, in x.Resp.
	Origin(x *MemExchange)
}

// Flow runs one exchange at a time through a [Chain]: request phases in
// chain order until one answers, the origin unless one did, then response
// phases in reverse order, each preceded by the fields its plugin's
// request phase left on its answer (wasm/abi/README.md section 4). Its
// storage is reused from one exchange to the next: the edge keeps one per
// pooled exchange, and it allocates nothing once warm.
type Flow struct {
	pending  pending
	ran      int
	answered bool
}

// Run runs x through c. ex is the exchange the plugins see: x itself, or
// a type that embeds x to change how it keeps bodies (the edge's).
func (f *Flow) Run(c Chain, ex Exchange, x *MemExchange) {
	f.pending.Reset()
	f.ran, f.answered = 0, false
	for n := c.Len(); f.ran < n; {
		i := f.ran
		act, err := c.OnRequest(i, ex)
		f.ran++
		if err != nil {
			c.Failed(i, abi.PhaseRequest, err)
		}
		if act == abi.ActionAnswer {
			f.answered = true
			break
		}
		f.pending.Continued(i, &x.Resp)
	}
	if !f.answered {
		c.Origin(x)
	}
	for i := f.ran - 1; i >= 0; i-- {
		f.pending.Apply(i, &x.Resp)
		if err := c.OnResponse(i, ex); err != nil {
			c.Failed(i, abi.PhaseResponse, err)
		}
	}
}

// Ran is how many plugins' request phases the last Run ran: the plugins
// that saw the request, the one that answered included. Plugins behind
// them did not.
func (f *Flow) Ran() int { return f.ran }

// Answered reports whether a request phase of the last Run answered, so
// that the origin was not asked.
func (f *Flow) Answered() bool { return f.answered }

// Revalidation takes from x the background revalidation the last Run's
// request phase asked for (cache_revalidate), to run once the response is
// written with [RunRevalidation] on a chain of the first Ran() plugins. It
// is nil when none was asked for, or when no request phase answered: the
// ABI runs a revalidation on an answer only, so Revalidation drops it
// (Done) then. The caller calls Done on what it gets, whether it runs it
// or drops it.
func (f *Flow) Revalidation(x *MemExchange) *Revalidation {
	rv := x.TakeRevalidation()
	if rv != nil && !f.answered {
		rv.Done()
		return nil
	}
	return rv
}

// RunRevalidation runs a background revalidation on x, the exchange of its
// copied request ([Revalidation.Exchange]): the origin, then every
// response phase of c in reverse order, c being the plugins whose request
// phase ran on the request that asked for it. No fields are pending: no
// request phase ran on x. Its response goes nowhere; what it is for is
// what the response phases store.
func RunRevalidation(c Chain, x *MemExchange) {
	c.Origin(x)
	for i := c.Len() - 1; i >= 0; i-- {
		if err := c.OnResponse(i, x); err != nil {
			c.Failed(i, abi.PhaseResponse, err)
		}
	}
}

// Result is the outcome of one exchange run by [Run] or [RunChain].
type Result struct {
	MemExchange
	// Answered is true when the request phase answered (the origin was not
	// asked).
	Answered bool
	// RequestErr and ResponseErr are the phases' failures, if any (every
	// plugin's, joined, in a chain).
	RequestErr, ResponseErr error
	// Background is the background revalidation the request phase asked
	// for (cache_revalidate) as it ran after the exchange: the copied
	// request, the origin's response to it and the response phase's
	// changes. Nil when none ran.
	Background *Result
}

// Stage is one plugin of a chain: its two phases as a runner calls them
// (the failure policy applied, a phase the plugin lacks a no-op).
type Stage struct {
	OnRequest  func(Exchange) (abi.Action, error)
	OnResponse func(Exchange) error
}

// Run runs one exchange through a chain of one plugin, as the edge runs a
// chain: see [RunChain]. wasmtest and sdktest both run plugins through
// it, so a plugin behaves the same natively and as Wasm.
func Run(req Request, request func(Exchange) (abi.Action, error), origin func(*Request) Response, response func(Exchange) error) *Result {
	return RunChain(req, []Stage{{request, response}}, origin)
}

// RunChain runs one exchange through a chain of plugins with the edge's
// runner, [Flow], and origin in place of the origin service.
//
// A background revalidation the request phase asked for runs after that,
// as the edge runs it once the response is written: the copied request
// goes to origin and the response phases of the plugins that ran run on
// the answer. RunChain does it before returning, so a test sees its
// effect on the next request.
//
// The plugins change copies of req's and the origin's header fields, never
// the caller's: a test or `wedgectl plugin run -n` sending one request
// again sent it with the last run's edits (a tag appended once more, a
// field added again).
func RunChain(req Request, chain []Stage, origin func(*Request) Response) *Result {
	r := &Result{MemExchange: MemExchange{Req: req}}
	r.Req.Header.Fields = slices.Clone(req.Header.Fields)
	c := &stages{list: chain, origin: origin}
	var f Flow
	f.Run(c, &r.MemExchange, &r.MemExchange)
	if bodiless(req.Method, r.Resp.Status) {
		r.Resp.Body = nil // as the edge writes it: a test expecting one would pass here and fail there
	}
	r.Answered = f.Answered()
	r.RequestErr, r.ResponseErr = join(c.reqErrs), join(c.respErrs)
	if rv := f.Revalidation(&r.MemExchange); rv != nil {
		b := &Result{MemExchange: *rv.Exchange()}
		bc := &stages{list: chain[:f.Ran()], origin: origin}
		RunRevalidation(bc, &b.MemExchange)
		b.ResponseErr = join(bc.respErrs)
		r.Background = b
		rv.Done()
	}
	return r
}

// bodiless says whether a response to method with status goes to the
// client without its body (RFC 9110 §6.4.1): HEAD's, 1xx, 204 and 304.
func bodiless(method string, status int) bool {
	return method == "HEAD" || status < 200 || status == 204 || status == 304
}

// stages is a [Chain] of [Stage]s that keeps the failures it is told of.
type stages struct {
	list              []Stage
	origin            func(*Request) Response
	reqErrs, respErrs []error
}

func (s *stages) Len() int { return len(s.list) }

func (s *stages) OnRequest(i int, ex Exchange) (abi.Action, error) { return s.list[i].OnRequest(ex) }

func (s *stages) OnResponse(i int, ex Exchange) error { return s.list[i].OnResponse(ex) }

func (s *stages) Failed(_ int, phase abi.Phase, err error) {
	if phase == abi.PhaseRequest {
		s.reqErrs = append(s.reqErrs, err)
	} else {
		s.respErrs = append(s.respErrs, err)
	}
}

// Origin gives x a copy of the origin's header fields, as RunChain does of
// the request's: an origin function may well answer with the same fields
// every time.
func (s *stages) Origin(x *MemExchange) {
	x.Resp = s.origin(&x.Req)
	x.Resp.Header.Fields = slices.Clone(x.Resp.Header.Fields)
}

// join is errors.Join, but one error stays itself: a chain of one plugin
// reports its phase's error as it was returned.
func join(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// pending keeps, for each plugin of a chain whose request phase continued,
// the header fields it left on its answer, until the response phase
// reaches that plugin (wasm/abi/README.md section 4), for [Flow]. Its
// storage is reused across requests: it allocates nothing once warm.
//
// # Why
//
// A plugin that continues after putting fields on its answer (the
// RateLimit fields of a rate limiter) means them for the client, whatever
// produces the response: the origin, or a later plugin answering from a
// cache, which replaces the answer being built. So the host takes them
// aside when the plugin continues and adds them at the plugin's own
// position in the response phase, as if its response phase had added
// them: plugins behind it never see them, so a cache behind it never
// stores per-client fields, and plugins before it do.
type pending struct {
	fields []HeaderField
	ends   []int // ends[i]: where plugin i's fields end in fields
}

// Reset empties p for the next request, keeping its storage.
func (p *pending) Reset() {
	clear(p.fields) // the strings belong to the request that is done
	p.fields, p.ends = p.fields[:0], p.ends[:0]
}

// Continued is called after the request phase of plugin i (chain order,
// from 0) continued: it takes aside the header fields on resp, the
// plugin's unsent answer, and empties resp, status and body too, so the
// next plugin starts from no answer.
func (p *pending) Continued(i int, resp *Response) {
	for len(p.ends) < i {
		p.ends = append(p.ends, len(p.fields))
	}
	p.fields = append(p.fields, resp.Header.Fields...)
	p.ends = append(p.ends[:i], len(p.fields))
	clear(resp.Header.Fields)
	*resp = Response{Header: Header{Fields: resp.Header.Fields[:0]}}
}

// Apply adds plugin i's fields to resp, the response on its way to the
// client; it is called where plugin i's response phase runs, just before
// it, whether or not the plugin has one. A field a response has one of
// (singleField) replaces the response's own, as the edge's writer would:
// a test harness showing both would pass tests the edge fails.
func (p *pending) Apply(i int, resp *Response) {
	if i >= len(p.ends) {
		return
	}
	start := 0
	if i > 0 {
		start = p.ends[i-1]
	}
	for _, f := range p.fields[start:p.ends[i]] {
		if singleField(f.Name) {
			resp.Header.Set(f.Name, f.Value)
		} else {
			resp.Header.Fields = append(resp.Header.Fields, f)
		}
	}
}

// singleField says whether a response carries at most one name field, the
// last written winning: Content-Type, Content-Encoding and Server, which
// the edge's HTTP/1.1 writer (fasthttp) keeps one of.
func singleField(name string) bool {
	return strings.EqualFold(name, "Content-Type") || strings.EqualFold(name, "Content-Encoding") ||
		strings.EqualFold(name, "Server")
}
