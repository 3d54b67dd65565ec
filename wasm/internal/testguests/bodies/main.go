// Command bodies reads the request and response bodies whole, as far as
// the host gives them, and sets each back, changed for a response to
// /download: a plugin redacting or injecting. It reports what it saw in
// X-Request-Body and X-Response-Body ("BYTES of LENGTH" and the SetBody
// error, if any), so the edge's tests can check that a plugin learns a
// streamed body's real length and cannot replace it.
package main

import (
	"bytes"
	"fmt"

	"github.com/talowa/wedge/sdk"
)

type bodies struct{}

func (bodies) OnRequest(req sdk.Request, _ sdk.Response) sdk.Action {
	b, n := req.Body(16 << 20)
	err := req.SetBody(bytes.Clone(b))
	if err := req.SetValue("request-body", report(len(b), n, err)); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

func (bodies) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	b, n := resp.Body(1 << 20)
	var err error
	if req.Path() == "/download" {
		err = resp.SetBody(append(b, "<!-- injected -->"...))
	}
	seen, _ := req.Value("request-body")
	resp.Header().Set("X-Request-Body", seen)
	resp.Header().Set("X-Response-Body", report(len(b), n, err))
	return sdk.Continue
}

func report(got, n int, err error) string {
	s := fmt.Sprintf("%d of %d", got, n)
	if err != nil {
		s += ": " + err.Error()
	}
	return s
}

func init() { sdk.Register(bodies{}) }

func main() {}
