// Package sdktest runs a plugin natively, in a plain `go test`, against the
// real host logic of package wasm/host: the same header rules, stores, key
// handling and errors as in production, minus the Wasm engine. Use it for
// fast unit tests of plugin logic (ExampleHost_Do; plugins/hello's tests run
// the same cases here and as Wasm); use wasm/wasmtest to test the built .wasm.
//
// Host functions reach the test host through process-wide state, so a Host
// serialises its calls with every other Host in the process; do not call
// t.Parallel in tests that use it.
package sdktest

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

var mu sync.Mutex // one plugin runs at a time in this process

// Host is a plugin configured against an in-memory host.
type Host struct {
	// Env is the plugin's environment: its stores, keys and metrics. New
	// fills it with a 64 MiB cache, a rate limiter and a log that goes to
	// t.Log; change fields before the first Do.
	Env *host.Env
	// Origin answers requests no plugin answered. The default returns 200
	// with an empty body.
	Origin func(*host.Request) host.Response
	// Registry holds the plugin's metrics.
	Registry *prometheus.Registry
	// FailOpen makes a failed phase continue, as a fail-open plugin does;
	// by default a failure answers 503, like the runtime's default policy.
	FailOpen bool

	plugin   any
	features abi.Feature
	call     host.Call
	panicked error // the last call's panic
}

// New registers p, configures it with config and returns its host. A
// configure failure fails t. The plugin's logs, debug level included, go
// to t.Log.
func New(t testing.TB, p any, config []byte) *Host {
	t.Helper()
	h, err := Configure(p, config, slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Configure is New without a testing.TB, for code that checks the error.
func Configure(p any, config []byte, log *slog.Logger) (*Host, error) {
	reg := prometheus.NewRegistry()
	h := &Host{
		Registry: reg,
		Env: &host.Env{
			Plugin:  "sdktest",
			Version: "native",
			Config:  config,
			Cache:   host.NewMemCache(64 << 20),
			Limiter: host.NewGCRA(1 << 16),
			Keys:    host.NewKeyring(host.NewVerifyCache(1024)),
			Metrics: host.NewMetrics(host.NewMetricFamilies(reg), "sdktest", "native"),
			Log:     log,
		},
		Origin: func(*host.Request) host.Response { return host.Response{Status: 200} },
		plugin: p,
	}
	res := h.run(abi.PhaseConfigure, nil)
	if res < 0 {
		if h.panicked != nil {
			return nil, h.panicked
		}
		return nil, fmt.Errorf("sdktest: configure failed: %s", h.call.ErrorMessage())
	}
	h.features = res
	return h, nil
}

// run calls one guest export natively with the test host installed. A
// panic is the call's failure, as a trap is in the runtime: panicked holds
// it, with the stack.
func (h *Host) run(phase abi.Phase, ex host.Exchange) (act int32) {
	mu.Lock()
	defer mu.Unlock()
	h.panicked = nil
	defer func() {
		if r := recover(); r != nil {
			h.panicked = fmt.Errorf("sdktest: %s phase panicked: %v\n%s", abi.PhaseName(phase), r, debug.Stack())
			act = abi.ActionFail
			if phase == abi.PhaseConfigure {
				act = -1 // a configure result: negative fails
			}
		}
	}()
	sdk.Register(h.plugin)
	h.call.Reset(h.Env, phase, ex)
	prev := hostcall.SetHost(&h.call)
	defer hostcall.SetHost(prev)
	defer h.call.Release()
	configure, onRequest, onResponse := sdk.Exports()
	switch phase {
	case abi.PhaseConfigure:
		return configure()
	case abi.PhaseRequest:
		return onRequest()
	default:
		return onResponse()
	}
}

// Do runs one request through the plugin: request phase, Origin unless the
// plugin answered, response phase; then the background revalidation the
// request phase asked for (sdk.CacheRevalidate), if it answered: Origin
// again with the copied request, and the response phase on that
// (Result.Background). A request, or an Origin's response, with Streamed
// set stands for one whose body streams through the edge (see
// ExampleHost_Do_streamedBody).
func (h *Host) Do(req host.Request) *host.Result {
	return host.Run(req, h.OnRequest, h.Origin, h.OnResponse)
}

// OnRequest runs the request phase on ex, applying the failure policy as
// the runtime does.
func (h *Host) OnRequest(ex host.Exchange) (abi.Action, error) {
	if h.features&abi.FeatureRequest == 0 {
		return abi.ActionContinue, nil
	}
	act := h.run(abi.PhaseRequest, ex)
	switch {
	case act == abi.ActionContinue:
		return act, nil
	case act == abi.ActionAnswer && ex.Status() != 0:
		return act, nil
	case act == abi.ActionAnswer:
		return h.fail(ex, errors.New("sdktest: request phase answered without setting a status"))
	}
	return h.fail(ex, h.failure(abi.PhaseRequest, act))
}

// failure is the error of a call of phase that returned act, not Continue.
func (h *Host) failure(phase abi.Phase, act abi.Action) error {
	why := h.call.ErrorMessage()
	switch bad := abi.BadAction(phase, act); {
	case h.panicked != nil:
		return h.panicked
	case bad != "":
		why = bad
	}
	return fmt.Errorf("sdktest: %s phase failed: %s", abi.PhaseName(phase), why)
}

// OnResponse runs the response phase on ex.
func (h *Host) OnResponse(ex host.Exchange) error {
	if h.features&abi.FeatureResponse == 0 {
		return nil
	}
	if act := h.run(abi.PhaseResponse, ex); act != abi.ActionContinue {
		_, err := h.fail(ex, h.failure(abi.PhaseResponse, act))
		return err
	}
	return nil
}

// fail applies the failure policy: continue, or answer 503.
func (h *Host) fail(ex host.Exchange, err error) (abi.Action, error) {
	if h.FailOpen {
		return abi.ActionContinue, err
	}
	ex.LoadResponse(&host.StoredResponse{Status: 503, Body: []byte("Service Unavailable\n"),
		Header: []host.HeaderField{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}})
	return abi.ActionAnswer, err
}

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
