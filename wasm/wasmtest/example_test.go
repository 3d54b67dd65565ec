package wasmtest_test

import (
	"fmt"
	"testing"

	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// A test of a built plugin: plugins/hello, compiled to Wasm from its folder
// and run in a real runtime. In a plugin's own test the folder is "." and t
// is the test's.
func Example() {
	t := new(exampleT)
	defer t.cleanup()

	p := wasmtest.Load(t, "../../plugins/hello", []byte(`{"greeting":"Hej"}`))
	p.Origin = func(*host.Request) host.Response { return host.Response{Status: 204} }
	for _, path := range []string{"/hello", "/elsewhere"} {
		res := p.Do(host.Request{Method: "GET", Path: path})
		greeting, _ := res.Resp.Header.Get("X-Hello")
		fmt.Printf("%s: answered=%t %d %q X-Hello=%s\n", path, res.Answered, res.Resp.Status, res.Resp.Body, greeting)
	}
	// Output:
	// /hello: answered=true 200 "Hej, world!\n" X-Hello=Hej
	// /elsewhere: answered=false 204 "" X-Hello=Hej
}

// exampleT stands in for the *testing.T an Example does not get: it keeps
// the cleanups wasmtest registers (the runtime, the module) and panics on a
// failure. The embedded nil TB makes any other method panic too, so the
// example cannot pass by ignoring a call it does not expect.
type exampleT struct {
	testing.TB
	cleanups []func()
}

func (t *exampleT) Helper()           {}
func (t *exampleT) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (t *exampleT) Cleanup(f func())  { t.cleanups = append(t.cleanups, f) }

func (t *exampleT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
