// Command traceseen tells the origin which trace a plugin saw the request
// in: it copies the traceparent it reads to X-Plugin-Traceparent on the
// request, and continues; in the response phase it copies the one it reads
// then to X-Plugin-Traceparent on the response. The edge's tracing test
// checks that plugins read the trace context the edge put on the request,
// in both phases.
package main

import "github.com/talowa/wedge/sdk"

type traceseen struct{}

func (traceseen) OnRequest(req sdk.Request, _ sdk.Response) sdk.Action {
	if err := req.Header().Set("X-Plugin-Traceparent", req.Header().Get("traceparent")); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

func (traceseen) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	if err := resp.Header().Set("X-Plugin-Traceparent", req.Header().Get("traceparent")); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

func init() { sdk.Register(traceseen{}) }

func main() {}
