package fleet_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/controlplane/embedded"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// TestCanarySplitFromDesiredState: a canary's split key in the desired
// state reaches the node, which reports it and places requests from one
// address by the header's value.
func TestCanarySplitFromDesiredState(t *testing.T) {
	f := newFixture(t, embedded.Options{})
	f.startConnectedPOP()
	v2 := f.publish(f.key, "v2", wasmtest.Build(t, guests+"v2"))
	rev := f.setDesired(manifest.Release{Canary: &manifest.Canary{Artifact: v2, Share: 50, Split: "header:X-User"}})
	st := f.status("the canary applied", func(s manifest.Status) bool { return s.Revision >= rev && s.Applied })
	if r := st.Running["stamp"]; r.Canary != "v2" || r.Share != 50 || r.Split != "header:X-User" {
		t.Fatalf("running %+v, want canary v2 at 50%% split by header:X-User", r)
	}
	user := func(v string) string {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + f.addr + "/x")
		req.Header.Set("X-User", v)
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		return string(resp.Header.Peek("X-Stamp"))
	}
	seen := map[string]int{}
	for i := range 40 {
		seen[user("u"+strconv.Itoa(i))]++
	}
	if seen["v1"] == 0 || seen["v2"] == 0 || seen["v1"]+seen["v2"] != 40 {
		t.Fatalf("40 users of one address: %v, want both sides", seen)
	}
}
