package sdk_test

import (
	"fmt"
	"log"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/host"
)

// hello refuses requests without X-Token and greets the rest.
type hello struct{}

func (hello) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	if req.Header().Get("X-Token") == "" {
		return resp.AnswerText(401, "token required")
	}
	// A field set on the answer when the plugin continues joins the
	// client's response, whoever makes it (here the origin).
	if err := resp.Header().Set("X-Hello", "world"); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

// A plugin's handler run natively, against the real host logic in memory,
// through sdk/sdktest (which registers it). As a plugin, its main package
// adds
//
//	func init() { sdk.Register(hello{}) }
//	func main() {}
//
// and builds as the package documentation says.
func Example() {
	h, err := sdktest.Configure(hello{}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, token := range []string{"", "t0k3n"} {
		req := host.Request{Method: "GET", Path: "/"}
		if token != "" {
			req.Header.Add("X-Token", token)
		}
		res := h.Do(req)
		greeting, _ := res.Resp.Header.Get("X-Hello")
		fmt.Printf("answered=%t %d %q X-Hello=%q\n", res.Answered, res.Resp.Status, res.Resp.Body, greeting)
	}
	// Output:
	// answered=true 401 "token required\n" X-Hello=""
	// answered=false 200 "" X-Hello="world"
}
