package rust_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// cargoPassed matches the summary line of one cargo test binary.
var cargoPassed = regexp.MustCompile(`test result: ok\. (\d+) passed; 0 failed`)

// TestNativeHost runs the crate's own tests (`cargo test`: the native test
// host of src/native.rs and src/testing.rs, the SDK's unit tests and the
// doc examples, which drive plugins through wedge::testing) with every Rust
// toolchain of the machine, Debian's rustc 1.63 (the crate's rust-version)
// and a current rustup one. Then it holds the native host to the real one:
// the probe (src/native/probe.rs), a script of over 200 host calls in
// every phase and a request it continues, writes its transcript natively,
// and the same source built as a Wasm plugin (testdata/probe) must write
// the same one in the real host.
func TestNativeHost(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the crate's tests")
	}
	list := toolchains()
	if len(list) == 0 {
		needRust(t, "no Rust toolchain on this machine")
	}
	var transcripts []string
	for i, tc := range list {
		cargo := tc.cargo
		bin := filepath.Dir(cargo)
		out := filepath.Join(t.TempDir(), "transcript"+strconv.Itoa(i))
		cmd := exec.Command(cargo, "test", "--offline")
		cmd.Env = append(os.Environ(), "RUSTC="+filepath.Join(bin, "rustc"), "RUSTDOC="+filepath.Join(bin, "rustdoc"),
			"CARGO_TARGET_DIR="+filepath.Join(t.TempDir(), "target"), "WEDGE_PROBE_OUT="+out)
		log, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s test: %v\n%s", cargo, err, log)
			continue
		}
		// A crate whose tests were compiled out (a cfg gone wrong) passes
		// with nothing run: count them.
		passed := 0
		for _, m := range cargoPassed.FindAllSubmatch(log, -1) {
			n, _ := strconv.Atoi(string(m[1]))
			passed += n
		}
		if passed < 20 {
			t.Errorf("%s test ran %d tests, want the native host's and the doc examples':\n%s", cargo, passed, log)
		}
		t.Logf("%s test: %d passed", cargo, passed)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("%s test wrote no probe transcript: %v", cargo, err)
		}
		transcripts = append(transcripts, string(b))
	}
	if len(transcripts) == 0 {
		return
	}

	// The request of probe_request in src/native/tests.rs.
	req := host.Request{Method: "POST", Scheme: "https", Host: "api.example:8443", Path: "/probe/a%2Fb",
		RawQuery: "x=1&y=2", Proto: "HTTP/1.1", ClientAddr: "203.0.113.7:51234", Body: []byte("0123456789")}
	for _, f := range [][2]string{{"Accept", "text/html"}, {"X-Multi", "one"}, {"x-multi", "two"}, {"Empty", ""}} {
		req.Header.Add(f[0], f[1])
	}
	p := wasmtest.Load(t, "testdata/probe", []byte(`{"probe":true}`))
	res := p.Do(req)
	// Then a request it continues, to an origin as probe_transcript's.
	p.Origin = func(*host.Request) host.Response {
		r := host.Response{Status: 201, Body: []byte("origin\n")}
		r.Header.Add("Server", "origin")
		return r
	}
	cont := p.Do(host.Request{Method: "GET", Scheme: "http", Host: "localhost", Path: "/continue", Proto: "HTTP/1.1", ClientAddr: "127.0.0.1:40000"})
	for _, r := range []*host.Result{res, cont} {
		if r.RequestErr != nil || r.ResponseErr != nil {
			t.Fatal(r.RequestErr, r.ResponseErr)
		}
		if r.Resp.Status != 201 {
			t.Errorf("probe as Wasm: status %d, want 201", r.Resp.Status)
		}
	}
	wasm := strings.Split(string(res.Resp.Body)+"== continue\n"+string(cont.Resp.Body), "\n")
	for i, native := range transcripts {
		lines := strings.Split(native, "\n")
		for j := 0; j < max(len(lines), len(wasm)); j++ {
			var n, w string
			if j < len(lines) {
				n = lines[j]
			}
			if j < len(wasm) {
				w = wasm[j]
			}
			if n != w {
				t.Errorf("%s: probe line %d: native %q, Wasm in the real host %q", list[i].cargo, j+1, n, w)
			}
		}
	}
	t.Logf("probe: %d lines agree", len(wasm))
}
