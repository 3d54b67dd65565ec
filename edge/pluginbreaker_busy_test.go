package edge

import (
	"testing"
	"time"

	"github.com/talowa/wedge/wasm"
)

var errBusy = &wasm.CallError{Plugin: "p", Version: "1", Phase: "request", Kind: wasm.KindBusy}

// TestReviewBreakerBusyProbeDoesNotClose: a probe that got no instance
// (KindBusy: the version's pool is held by its runaway calls on another
// route, whose breaker is still closed) never ran the plugin: it says
// nothing of whether it still runs away, and must not close the breaker.
func TestReviewBreakerBusyProbeDoesNotClose(t *testing.T) {
	f := newFakeBreaker(PluginBreakerConfig{Failures: 1, OpenFor: Duration(time.Second)})
	f.call(errOvertime)
	f.advance(time.Second)
	if called, probe := f.call(errBusy); !called || !probe {
		t.Fatal("no probe")
	}
	if s := f.state.Load(); s == breakerClosed {
		t.Fatal("a probe that never got an instance (KindBusy) closed the breaker")
	}
	if called, probe := f.call(nil); !called || !probe {
		t.Fatal("after a busy probe the next call should probe")
	}
	f.want(t, breakerClosed, 1, 0)
}
