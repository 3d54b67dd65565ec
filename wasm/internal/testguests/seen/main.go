// Command seen tells the origin what the plugin chain saw of a request:
// it adds X-Seen with the protocol, scheme and client address as plugins
// read them, and continues. The edge's front-door tests check that an
// HTTP/2 or HTTP/3 request reaches plugins as what it is.
package main

import "github.com/talowa/wedge/sdk"

type seen struct{}

func (seen) OnRequest(req sdk.Request, _ sdk.Response) sdk.Action {
	if err := req.Header().Set("X-Seen", req.Proto()+" "+req.Scheme()+" "+req.ClientAddr()); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

func init() { sdk.Register(seen{}) }

func main() {}
