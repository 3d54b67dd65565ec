package sdktest_test

import (
	"fmt"
	"log"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/sdktest"
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
