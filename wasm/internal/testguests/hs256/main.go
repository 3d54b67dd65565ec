// Command hs256 checks an HS256 bearer token the way an auth plugin does:
// read the header, parse the JWT without reflection, verify the signature
// through host crypto, check exp. Its config is the HMAC secret.
package main

import (
	"bytes"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jwt"
	"github.com/talowa/wedge/wasm/abi"
)

type plugin struct {
	key sdk.Key
	tok jwt.Token
	buf []byte
}

func (p *plugin) Configure(cfg []byte) error {
	var err error
	p.key, err = sdk.RegisterKey(abi.AlgHS256, abi.KeyRaw, cfg)
	return err
}

func (p *plugin) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	var ok bool
	p.buf, ok = req.Header().AppendValue(p.buf[:0], "Authorization")
	if !ok || !bytes.HasPrefix(p.buf, []byte("Bearer ")) {
		return resp.AnswerText(401, "missing bearer token")
	}
	tok := &p.tok
	err := tok.Parse(p.buf[len("Bearer "):])
	if err != nil || tok.Alg != p.key.Alg() || !p.key.Verify(tok.SigningInput, tok.Signature) {
		return resp.AnswerText(401, "invalid token")
	}
	claims, err := tok.Claims()
	if err == nil {
		err = claims.Validate(jwt.Validation{Now: sdk.Now(), RequireExpiry: true})
	}
	if err != nil {
		return resp.AnswerText(401, err.Error())
	}
	return sdk.Continue
}

func init() { sdk.Register(&plugin{}) }

func main() {}
