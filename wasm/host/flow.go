package host

import (
	"errors"

	"github.com/talowa/wedge/wasm/abi"
)

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

// Run runs one exchange the way the edge runs a chain of one plugin: the
// request phase; unless it answered, the origin; then the header fields the
// request phase left on its answer when it continued, added to the
// response; then the response phase. wasmtest and sdktest both run plugins
// through it, so a plugin behaves the same natively and as Wasm.
//
// A background revalidation the request phase asked for runs after that,
// as the edge runs it once the response is written: the copied request
// goes to origin and the response phase runs on the answer. Run does it
// before returning, so a test sees its effect on the next request.
func Run(req Request, request func(Exchange) (abi.Action, error), origin func(*Request) Response, response func(Exchange) error) *Result {
	return RunChain(req, []Stage{{request, response}}, origin)
}

// RunChain runs one exchange through a chain of plugins as the edge does
// (edge/handler.go): request phases in order until one answers, the origin
// unless one did, then response phases in reverse order, each preceded by
// the fields its plugin's request phase left aside ([Pending]).
func RunChain(req Request, chain []Stage, origin func(*Request) Response) *Result {
	r := &Result{MemExchange: MemExchange{Req: req}}
	var pending Pending
	var reqErrs, respErrs []error
	ran := 0
	for ran < len(chain) {
		act, err := chain[ran].OnRequest(&r.MemExchange)
		reqErrs = append(reqErrs, err)
		if act == abi.ActionAnswer {
			ran++
			r.Answered = true
			break
		}
		pending.Continued(ran, &r.Resp)
		ran++
	}
	if !r.Answered {
		r.Resp = origin(&r.Req)
	}
	for i := ran - 1; i >= 0; i-- {
		pending.Apply(i, &r.Resp)
		respErrs = append(respErrs, chain[i].OnResponse(&r.MemExchange))
	}
	r.RequestErr, r.ResponseErr = join(reqErrs), join(respErrs)
	if rv := r.TakeRevalidation(); rv != nil {
		if r.Answered { // cache_revalidate takes effect on an answer only
			b := &Result{MemExchange: *rv.Exchange()}
			b.Resp = origin(&b.Req)
			var errs []error
			for i := ran - 1; i >= 0; i-- {
				errs = append(errs, chain[i].OnResponse(&b.MemExchange))
			}
			b.ResponseErr = join(errs)
			r.Background = b
		}
		rv.Done()
	}
	return r
}

// join is errors.Join, but one error stays itself: a chain of one plugin
// reports its phase's error as it was returned.
func join(errs []error) error {
	var one error
	n := 0
	for _, err := range errs {
		if err != nil {
			one, n = err, n+1
		}
	}
	if n > 1 {
		return errors.Join(errs...)
	}
	return one
}

// Pending keeps, for each plugin of a chain whose request phase continued,
// the header fields it left on its answer, until the response phase
// reaches that plugin (wasm/abi/README.md section 4). Both chain runners,
// the edge's and [RunChain], use it, so they cannot disagree. Its storage
// is reused across requests: it allocates nothing once warm.
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
type Pending struct {
	fields []HeaderField
	ends   []int // ends[i]: where plugin i's fields end in fields
}

// Reset empties p for the next request, keeping its storage.
func (p *Pending) Reset() {
	clear(p.fields) // the strings belong to the request that is done
	p.fields, p.ends = p.fields[:0], p.ends[:0]
}

// Continued is called after the request phase of plugin i (chain order,
// from 0) continued: it takes aside the header fields on resp, the
// plugin's unsent answer, and empties resp, status and body too, so the
// next plugin starts from no answer.
func (p *Pending) Continued(i int, resp *Response) {
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
// it, whether or not the plugin has one.
func (p *Pending) Apply(i int, resp *Response) {
	if i >= len(p.ends) {
		return
	}
	start := 0
	if i > 0 {
		start = p.ends[i-1]
	}
	resp.Header.Fields = append(resp.Header.Fields, p.fields[start:p.ends[i]]...)
}
