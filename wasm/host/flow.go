package host

import "github.com/talowa/wedge/wasm/abi"

// Result is the outcome of one exchange run by [Run].
type Result struct {
	MemExchange
	// Answered is true when the request phase answered (the origin was not
	// asked).
	Answered bool
	// RequestErr and ResponseErr are the phases' failures, if any.
	RequestErr, ResponseErr error
	// Background is the background revalidation the request phase asked
	// for (cache_revalidate) as it ran after the exchange: the copied
	// request, the origin's response to it and the response phase's
	// changes. Nil when none ran.
	Background *Result
}

// Run runs one exchange the way the edge runs a chain of one plugin: the
// request phase; unless it answered, the origin, whose response also gets
// the headers the request phase put on its (unsent) answer; then the
// response phase. wasmtest and sdktest both run plugins through it, so a
// plugin behaves the same natively and as Wasm.
//
// A background revalidation the request phase asked for runs after that,
// as the edge runs it once the response is written: the copied request
// goes to origin and the response phase runs on the answer. Run does it
// before returning, so a test sees its effect on the next request.
func Run(req Request, request func(Exchange) (abi.Action, error), origin func(*Request) Response, response func(Exchange) error) *Result {
	r := &Result{MemExchange: MemExchange{Req: req}}
	act, err := request(&r.MemExchange)
	r.RequestErr = err
	if act == abi.ActionAnswer {
		r.Answered = true
	} else {
		pending := r.Resp.Header.Fields
		r.Resp = origin(&r.Req)
		r.Resp.Header.Fields = append(r.Resp.Header.Fields, pending...)
	}
	r.ResponseErr = response(&r.MemExchange)
	if rv := r.TakeRevalidation(); rv != nil {
		if r.Answered { // cache_revalidate takes effect on an answer only
			b := &Result{MemExchange: *rv.Exchange()}
			b.Resp = origin(&b.Req)
			b.ResponseErr = response(&b.MemExchange)
			r.Background = b
		}
		rv.Done()
	}
	return r
}
