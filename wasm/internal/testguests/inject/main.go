// Command inject tries to put header fields on the wire that a plugin must
// not be able to write: a value with CR LF that would start a Set-Cookie
// field, and a name with ':'. It answers 200 itself, naming in
// X-Inject-Errors what the host refused, so the edge's tests can check end
// to end that nothing reached the client but the refusal.
package main

import (
	"strings"

	"github.com/talowa/wedge/sdk"
)

type inject struct{}

func (inject) OnRequest(_ sdk.Request, resp sdk.Response) sdk.Action {
	var refused []string
	try := func(what string, err error) {
		if err != nil {
			refused = append(refused, what)
		}
	}
	h := resp.Header()
	try("set-crlf", h.Set("X-Inject", "a\r\nSet-Cookie: evil=1"))
	try("add-lf", h.Add("X-Inject-Lf", "a\nSet-Cookie: evil=2"))
	try("name-colon", h.Set("Set-Cookie: evil=3\r\nX-Name", "v"))
	try("set-nul", h.Set("X-Inject-Nul", "a\x00b"))
	h.Set("X-Inject-Errors", strings.Join(refused, ","))
	return resp.AnswerText(200, "inject done")
}

func init() { sdk.Register(inject{}) }

func main() {}
