package main

import (
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// shadowCredConfig has shadow policies keyed on a credential header and on
// a request value, each refusing from the second request.
const shadowCredConfig = `{"policies":[
	{"name":"by_key","key":"header:X-Api-Key","limit":1,"period":"1h","burst":1,"shadow":true,"missing":"skip"},
	{"name":"by_user","key":"value:identity-sub","limit":1,"period":"1h","burst":1,"shadow":true,"missing":"skip"}]}`

// TestShadowLogHasNoCredential: a shadow policy keyed on a credential logs
// its refusals with the key's keyed digest, never the key: the same one for
// a client's every line, another for another client. Native and as Wasm.
func TestShadowLogHasNoCredential(t *testing.T) {
	secrets := []string{"sk_live_PLANTED_SECRET_ONE", "sk_live_PLANTED_SECRET_TWO",
		"sk_live_PLANTED_LONG_" + strings.Repeat("x", 600)} // past maxKeyValue: hashed into the rate key
	run := func(t *testing.T, p phases, logs *testutil.SyncBuffer) {
		for _, s := range secrets {
			for range 3 {
				ex := exchange{method: "GET", target: "/", ip: "203.0.113.9", header: [][2]string{{"X-Api-Key", s}},
					values: [][2]string{{"identity-sub", s}}}
				if res := do(p, ex); res.RequestErr != nil || res.Resp.Status != 200 {
					t.Fatalf("%d %v", res.Resp.Status, res.RequestErr)
				}
			}
		}
		out := logs.String()
		if strings.Contains(out, "PLANTED") {
			t.Fatalf("a credential reached the log:\n%s", out)
		}
		// Two refusals per secret and policy, each naming its key by digest.
		ids := map[string]int{}
		for _, m := range regexp.MustCompile(`policy=(by_key|by_user) key_kind=(header|value) key=(keyed:[0-9a-f]{32}) `).FindAllStringSubmatch(out, -1) {
			ids[m[1]+" "+m[3]]++
		}
		if len(ids) != 2*len(secrets) {
			t.Fatalf("want %d distinct keyed digests, each logged twice; got %v in\n%s", 2*len(secrets), ids, out)
		}
		for id, n := range ids {
			if n != 2 {
				t.Errorf("%s logged %d times, want 2", id, n)
			}
		}
	}
	t.Run("native", func(t *testing.T) {
		logs := &testutil.SyncBuffer{}
		h, err := sdktest.Configure(&ratelimit{}, []byte(shadowCredConfig), slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		run(t, h, logs)
	})
	t.Run("wasm", func(t *testing.T) {
		logs := &testutil.SyncBuffer{}
		rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(2).WithLogger(slog.New(slog.NewTextHandler(logs, nil))).
			WithStores(host.NewMemCache(1<<20), host.NewGCRA(1<<16)))
		p := wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "ratelimit", Version: "test",
			Binary: wasmtest.Build(t, "."), Config: []byte(shadowCredConfig)})
		run(t, p, logs)
	})
}
