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
}

// Run runs one exchange the way the edge runs a chain of one plugin: the
// request phase; unless it answered, the origin, whose response also gets
// the headers the request phase put on its (unsent) answer; then the
// response phase. wasmtest and sdktest both run plugins through it, so a
// plugin behaves the same natively and as Wasm.
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
	return r
}
