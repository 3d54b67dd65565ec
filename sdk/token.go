package sdk

import (
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

// TokenPolicy says how the host verifies a bearer token (a compact JWS) and
// which claims it hands back; see abi.TokenPolicy. Its Keys are handles of
// keys from RegisterKey (Key.Handle).
type TokenPolicy = abi.TokenPolicy

// TokenVerdict is the outcome of TokenVerifier.Verify: abi.TokenValid or
// the first check the token failed (abi.TokenExpired, ...).
type TokenVerdict = abi.TokenVerdict

// TokenVerifier verifies tokens in the host under one policy: segments,
// base64url, header, signature, claims JSON, times, issuer and audience
// all run natively, and a token seen before costs a cache lookup plus the
// time checks, whatever its algorithm. The guest keeps the decisions: which
// requests need a token, and what the returned claims mean.
//
// A TokenVerifier reuses its buffer: keep one per policy in the plugin
// (an instance runs one call at a time), and Verify allocates nothing once
// the buffer has grown to fit.
type TokenVerifier struct {
	handle int32 // the host's handle + 1: the zero TokenVerifier verifies nothing
	buf    []byte
}

// NewTokenVerifier registers p with the host. Call it from Configure.
func NewTokenVerifier(p TokenPolicy) (*TokenVerifier, error) {
	h := hostcall.TokenPolicy(p.Append(nil))
	if h < 0 {
		return nil, Errno(h)
	}
	return &TokenVerifier{handle: h + 1, buf: make([]byte, 0, 256)}, nil
}

// Handle is the host's handle of the key, for TokenPolicy.Keys.
func (k Key) Handle() int32 { return k.handle - 1 }

// Verify verifies token. For abi.TokenValid, claims holds the policy's
// Claims as a list (read it with abi.NextItem), each item the claim's raw
// JSON value, or empty when the token lacks it, and the host has set the
// policy's Forwards as request values (a guest that only forwards claims
// asks for none back). claims is a view of v's buffer, valid until the
// next Verify.
func (v *TokenVerifier) Verify(token []byte) (verdict TokenVerdict, claims []byte, err error) {
	if v == nil || v.handle <= 0 {
		return abi.TokenMalformed, nil, Errno(abi.ErrNotFound)
	}
	n := hostcall.TokenVerify(v.handle-1, token, v.buf[:cap(v.buf)])
	if n > 0 && int(n) > cap(v.buf) {
		v.buf = make([]byte, n)
		n = hostcall.TokenVerify(v.handle-1, token, v.buf)
	}
	if n <= 0 || int(n) > cap(v.buf) {
		return abi.TokenMalformed, nil, Errno(min(n, abi.ErrInvalid))
	}
	out := v.buf[:n]
	return out[0], out[1:], nil
}
