package sdktest_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// stamp names the request's path on every response.
type stamp struct{}

func (stamp) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	if err := resp.Header().Set("X-Path", req.Path()); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

// A test of plugin logic, without building it to Wasm. In a test function,
// sdktest.New(t, stamp{}, config) does what Configure does here, failing t
// on a configure error and sending the plugin's logs to t.Log.
func ExampleHost_Do() {
	h, err := sdktest.Configure(stamp{}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	h.Origin = func(r *host.Request) host.Response {
		return host.Response{Status: 201, Body: []byte("created " + r.Path)}
	}
	res := h.Do(host.Request{Method: "POST", Path: "/things"})
	path, _ := res.Resp.Header.Get("X-Path")
	fmt.Printf("answered=%t %d %q X-Path=%s\n", res.Answered, res.Resp.Status, res.Resp.Body, path)
	// Output:
	// answered=false 201 "created /things" X-Path=/things
}

// redact reads the request body and sets it back, changed.
type redact struct{}

func (redact) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	b, n := req.Body(16 << 20)
	err := req.SetBody(bytes.ReplaceAll(b, []byte("secret"), []byte("******")))
	fmt.Printf("read %d of %d, SetBody: %v\n", len(b), n, err)
	return sdk.Continue
}

// A request whose body streams through the edge, as one past its
// limits.stream_threshold does: the plugin gets the first
// abi.StreamedPrefix bytes and the body's length, and cannot replace it.
func ExampleHost_Do_streamedBody() {
	h, err := sdktest.Configure(redact{}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	h.Do(host.Request{Method: "PUT", Path: "/upload", Body: make([]byte, 1000)})
	h.Do(host.Request{Method: "PUT", Path: "/upload", Body: make([]byte, abi.StreamedPrefix), Streamed: 5_000_000})
	h.Do(host.Request{Method: "PUT", Path: "/upload", Body: make([]byte, abi.StreamedPrefix), Streamed: -1}) // chunked
	// Output:
	// read 1000 of 1000, SetBody: <nil>
	// read 65536 of 5000000, SetBody: wedge: Request.SetBody: ErrTooLarge (past a host limit)
	// read 65536 of 2147483647, SetBody: wedge: Request.SetBody: ErrTooLarge (past a host limit)
}
