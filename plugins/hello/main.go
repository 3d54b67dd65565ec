// Command hello is the smallest useful Wedge plugin and the SDK's worked
// example: it answers GET /hello itself and greets every other response
// with a header. See README.md.
package main

import (
	"errors"
	"net/url"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
)

type hello struct {
	greeting  string
	greetings sdk.Metric
}

// Configure reads {"greeting": "..."}; the greeting defaults to "Hello".
func (h *hello) Configure(cfg []byte) error {
	h.greeting = "Hello"
	if len(cfg) > 0 {
		v, ok, err := jsonscan.Member(cfg, "greeting")
		if err != nil {
			return errors.New("hello: config is not a JSON object")
		}
		if ok {
			if h.greeting, err = jsonscan.String(v); err != nil || h.greeting == "" {
				return errors.New("hello: greeting must be a non-empty string")
			}
		}
	}
	var err error
	h.greetings, err = sdk.NewCounter("hello_greetings_total")
	return err
}

// OnRequest answers GET /hello?name=... and lets everything else through.
func (h *hello) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	if req.Method() != "GET" || req.Path() != "/hello" {
		return sdk.Continue
	}
	name := "world"
	if q, err := url.ParseQuery(req.RawQuery()); err == nil && q.Get("name") != "" {
		name = q.Get("name")
	}
	h.greetings.Record(1)
	req.SetValue("hello.name", name)
	return resp.AnswerText(200, h.greeting+", "+name+"!")
}

// OnResponse adds X-Hello to every response, the plugin's own included.
func (h *hello) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	if err := resp.Header().Set("X-Hello", h.greeting); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

func init() { sdk.Register(&hello{}) }

func main() {}
