package wasm_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmbuild"
)

// The lifecycle of a plugin version: load it into a runtime (check,
// instrument, compile, configure, warm its pool), run a request's two
// phases on it, close it. The edge holds one Module per plugin of a route
// and calls it the same way from many goroutines; the Exchange here is the
// in-memory one the test harnesses use.
func Example() {
	ctx := context.Background()
	bin, err := buildHello(ctx)
	if err != nil {
		log.Fatal(err)
	}

	rt, err := wasm.NewRuntime(ctx, wasm.NewConfig().WithPoolSize(1).
		WithCompilationCache(wasmbuild.CompilationCacheDir()))
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, wasm.Spec{Name: "hello", Version: "1.0.0", Binary: bin,
		Config: []byte(`{"greeting":"Hej"}`), Policy: wasm.FailClosed(503)})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close() // waits for calls in flight, then frees the instances

	ex := &host.MemExchange{Req: host.Request{Method: "GET", Path: "/hello", RawQuery: "name=Ada"}}
	act, err := m.OnRequest(ex)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("answered:", act == abi.ActionAnswer)
	if err := m.OnResponse(ex); err != nil {
		log.Fatal(err)
	}
	greeting, _ := ex.Resp.Header.Get("X-Hello")
	fmt.Printf("%d %q X-Hello: %s\n", ex.Resp.Status, ex.Resp.Body, greeting)
	// Output:
	// answered: true
	// 200 "Hej, Ada!\n" X-Hello: Hej
}

// buildHello builds plugins/hello to Wasm, once per source state (the
// build is cached on disk by source hash).
func buildHello(ctx context.Context) ([]byte, error) {
	path, err := wasmbuild.Cached(ctx, "../plugins/hello", wasmbuild.DefaultCacheDir())
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}
