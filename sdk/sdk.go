// Package sdk is the Go SDK for Wedge plugins. A plugin is a main package
// that registers a handler in init and is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// (or `wedgectl plugin build DIR`). The same package builds natively too: then
// every host call goes to the real host logic in memory, so plugin code is
// unit-tested with plain `go test` through sdk/sdktest. The package Example
// is a whole plugin, run that way; plugins/hello is one with configuration,
// a response phase and a metric.
//
// Bodies, cached responses and counters stay in the host: a plugin asks for
// what it needs through small calls and keeps per-request state in request
// values (Request.SetValue), not in globals, because consecutive phases of one
// request may run on different instances.
//
// The contract underneath is ABI v1, specified in wasm/abi/README.md.
package sdk

import (
	"unsafe"

	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

// Action is what a phase handler returns.
type Action = abi.Action

const (
	// Continue passes the request on, to the next plugin and the origin.
	Continue = abi.ActionContinue
	// Answer stops the chain and sends the response the plugin built.
	Answer = abi.ActionAnswer
)

// Fail reports a failure to the host, which applies the plugin's failure
// policy (continue without the plugin, or answer with an error status).
func Fail(err error) Action {
	hostcall.ErrorSet(bytesOf(err.Error()))
	return abi.ActionFail
}

// Configurer is implemented by plugins that take configuration. Configure
// runs once per instance, before any request; an error refuses the load.
// A plugin without it refuses a config other than empty, {} or null.
type Configurer interface {
	Configure(config []byte) error
}

// RequestHandler runs in the request phase.
type RequestHandler interface {
	OnRequest(req Request, resp Response) Action
}

// ResponseHandler runs in the response phase, in reverse chain order. It
// returns Continue, or Fail(err).
type ResponseHandler interface {
	OnResponse(req Request, resp Response) Action
}

var plugin any

// The plugin's handlers, looked up once: an interface assertion on every
// call is a hash lookup, which a Go guest pays many times over.
var (
	requestHandler  RequestHandler
	responseHandler ResponseHandler
)

// Register makes p the plugin. Call it from init. p implements
// RequestHandler, ResponseHandler or both, and optionally Configurer.
func Register(p any) {
	rq, _ := p.(RequestHandler)
	rs, _ := p.(ResponseHandler)
	if rq == nil && rs == nil {
		panic("sdk: Register: the plugin implements neither RequestHandler nor ResponseHandler")
	}
	plugin, requestHandler, responseHandler = p, rq, rs
}

// Errno is a host function's error result. It compares equal to the
// ErrX values: errors.Is(err, sdk.ErrNotFound).
type Errno int32

// The host's error codes; wasm/abi/README.md says when each is returned.
const (
	ErrNotFound    = Errno(abi.ErrNotFound)    // no such header, value, entry, key or metric
	ErrInvalid     = Errno(abi.ErrInvalid)     // a malformed argument
	ErrPhase       = Errno(abi.ErrPhase)       // not available in this phase
	ErrTooLarge    = Errno(abi.ErrTooLarge)    // past a host limit
	ErrUnavailable = Errno(abi.ErrUnavailable) // the host has no such store
)

func (e Errno) Error() string { return "wedge: " + e.text() }

func (e Errno) text() string {
	switch e {
	case ErrNotFound:
		return "ErrNotFound (no such header, value, entry, key or metric)"
	case ErrInvalid:
		return "ErrInvalid (a malformed argument)"
	case ErrPhase:
		return "ErrPhase (not available in this phase)"
	case ErrTooLarge:
		return "ErrTooLarge (past a host limit)"
	case ErrUnavailable:
		return "ErrUnavailable (the host has no such store)"
	}
	return abi.ErrnoName(int32(e))
}

// errOf turns a host result into an error: nil for non-negative results.
func errOf(r int32) error {
	if r >= 0 {
		return nil
	}
	return Errno(r)
}

// callError is a host's refusal of one SDK call: which call, and for
// ErrInvalid what it takes, since the host answers a code alone. It is
// its Errno to errors.Is.
type callError struct {
	op   string // "Request.SetPath"
	code Errno
	want string // what a valid argument is
}

func (e *callError) Error() string {
	switch {
	case e.code == ErrInvalid && e.want != "":
		return "wedge: " + e.op + ": ErrInvalid: want " + e.want
	case e.code == ErrPhase && phase != "":
		return "wedge: " + e.op + ": ErrPhase (not available in the " + phase + " phase)"
	}
	return "wedge: " + e.op + ": " + e.code.text()
}

func (e *callError) Unwrap() error { return e.code }

// errAt is errOf for the call op, whose valid arguments are want.
func errAt(op, want string, r int32) error {
	if r >= 0 {
		return nil
	}
	return &callError{op: op, code: Errno(r), want: want}
}

// Exports returns the implementations of the guest exports configure,
// on_request and on_response. The wasip1 build exports them with
// //go:wasmexport; sdk/sdktest calls them natively.
func Exports() (configure, onRequest, onResponse func() int32) {
	return configureExport, onRequestExport, onResponseExport
}

// phase names the phase the guest runs, for ErrPhase's message: a call
// refused there is most often one written for another phase.
var phase string

func configureExport() int32 {
	phase = "configure"
	if plugin == nil {
		hostcall.ErrorSet(bytesOf("sdk: no plugin registered: call sdk.Register in init"))
		return -1
	}
	cfg := fetch(func(b []byte) int32 { return hostcall.ConfigRead(b) })
	if c, ok := plugin.(Configurer); ok {
		if err := c.Configure(append([]byte(nil), cfg...)); err != nil {
			hostcall.ErrorSet(bytesOf(err.Error()))
			return -1
		}
	} else if given(cfg) {
		// Dropped in silence, a config the operator set would change
		// nothing, most often for a Configure the SDK cannot see.
		hostcall.ErrorSet(bytesOf("sdk: the plugin was given a config but has no Configure([]byte) error method " +
			"(a Configure of another signature, or with a pointer receiver on a plugin registered by value, is not one)"))
		return -1
	}
	var f abi.Feature
	if requestHandler != nil {
		f |= abi.FeatureRequest
	}
	if responseHandler != nil {
		f |= abi.FeatureResponse
	}
	return f
}

// given says whether a config says anything: not empty, {} or null.
func given(cfg []byte) bool {
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(cfg) > 0 && space(cfg[0]) {
		cfg = cfg[1:]
	}
	for len(cfg) > 0 && space(cfg[len(cfg)-1]) {
		cfg = cfg[:len(cfg)-1]
	}
	return len(cfg) > 0 && string(cfg) != "{}" && string(cfg) != "null"
}

func onRequestExport() int32 {
	phase = "request"
	if requestHandler == nil {
		return Continue
	}
	return requestHandler.OnRequest(Request{}, Response{})
}

func onResponseExport() int32 {
	phase = "response"
	if responseHandler == nil {
		return Continue
	}
	return responseHandler.OnResponse(Request{}, Response{})
}

// bytesOf views s as bytes without copying. Host functions never write to
// their input arguments, so the view stays read-only.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// scratch is the output buffer host calls copy into. A guest runs one host
// call at a time, so one buffer serves them all; callers copy out of it
// before the next call.
var scratch = make([]byte, 2048)

// fetch runs a "buffer + limit, returns the full length" call, growing the
// buffer and retrying once when the result did not fit. A negative result
// is returned as nil; use fetchN to see it.
func fetch(call func([]byte) int32) []byte {
	b, _ := fetchN(call)
	return b
}

func fetchN(call func([]byte) int32) ([]byte, int32) {
	n := call(scratch)
	if n < 0 {
		return nil, n
	}
	if int(n) > len(scratch) {
		scratch = make([]byte, n)
		if n = call(scratch); n < 0 || int(n) > len(scratch) {
			return nil, min(n, int32(abi.ErrInvalid))
		}
	}
	return scratch[:n], n
}
