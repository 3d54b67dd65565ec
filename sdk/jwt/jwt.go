// Package jwt parses JSON Web Tokens (RFC 7519, compact JWS serialization)
// and checks their registered claims, with jsonscan instead of reflection.
// It never verifies a signature itself: hand SigningInput and Signature to a
// host key (sdk.Key.Verify), which runs the crypto natively. A plugin that
// only needs a verdict and some claims should use sdk.TokenVerifier
// instead: the host then parses, verifies and checks the token natively
// and caches verified tokens, which costs a Go guest far less than parsing.
// The host's token_verify uses this package too, so both agree.
//
//	var tok jwt.Token // reused: parsing then allocates nothing
//	err := tok.Parse(raw)
//	if err != nil || tok.Alg != key.Alg() || !key.Verify(tok.SigningInput, tok.Signature) {
//		return resp.AnswerText(401, "invalid token")
//	}
//	claims, err := tok.Claims()
//	if err == nil {
//		err = claims.Validate(jwt.Validation{Now: sdk.Now(), Issuer: "https://issuer"})
//	}
package jwt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm/abi"
)

// MaxTokenSize bounds what Parse accepts: the host's bound for token_verify.
const MaxTokenSize = abi.MaxTokenLen

var (
	ErrMalformed   = errors.New("jwt: malformed token")
	ErrExpired     = errors.New("jwt: token expired")
	ErrNotYetValid = errors.New("jwt: token not valid yet")
	ErrIssuedLater = errors.New("jwt: token issued in the future")
	ErrIssuer      = errors.New("jwt: wrong issuer")
	ErrAudience    = errors.New("jwt: wrong audience")
	ErrNoExpiry    = errors.New("jwt: token has no expiry")
)

var b64 = base64.RawURLEncoding.Strict()

// Token is a parsed, unverified token. Its byte fields are views into memory
// the Token owns and reuses: they stay valid until the next Parse on it.
// Reusing one Token per plugin makes parsing allocation-free, which matters
// inside a Go guest, where every allocation costs several times native.
type Token struct {
	// Alg is the header's algorithm as an ABI value; 0 when it is not one
	// the host can verify (including "none").
	Alg abi.Alg
	// Kid and Typ are the header's key id and type, unescaped.
	Kid, Typ []byte
	// Header and Payload are the decoded JSON objects.
	Header, Payload []byte
	// SigningInput is the signed part of the token (header.payload); it
	// points into the raw token passed to Parse.
	SigningInput []byte
	// Signature is the decoded signature.
	Signature []byte

	buf      []byte // decoded payload and signature, then unescaped strings
	claimsAt int    // where Claims' strings start in buf

	// The last header, raw and parsed. Tokens of one issuer share their
	// header, so most parses skip decoding and scanning it.
	hdrRaw []byte
	hdr    []byte // decoded header, then kid and typ
	alg    abi.Alg
	kid    []byte
	typ    []byte
}

// Parse parses raw into a new Token.
func Parse(raw []byte) (*Token, error) {
	t := new(Token)
	return t, t.Parse(raw)
}

// Parse splits and decodes a compact JWS into t, reusing t's memory. It
// checks structure only: verify SigningInput and Signature with a host key.
func (t *Token) Parse(raw []byte) error {
	// Until this parse succeeds the token holds nothing: Claims on it fails.
	t.Alg, t.Kid, t.Typ, t.Header, t.Payload, t.Signature, t.SigningInput = 0, nil, nil, nil, nil, nil, nil
	t.buf, t.claimsAt = t.buf[:0], 0
	if len(raw) > MaxTokenSize {
		return fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenSize)
	}
	d1 := bytes.IndexByte(raw, '.')
	if d1 < 0 {
		return fmt.Errorf("%w: no '.'", ErrMalformed)
	}
	d2 := bytes.IndexByte(raw[d1+1:], '.')
	if d2 < 0 {
		return fmt.Errorf("%w: two parts, want three", ErrMalformed)
	}
	d2 += d1 + 1
	if bytes.IndexByte(raw[d2+1:], '.') >= 0 {
		return fmt.Errorf("%w: more than three parts (JWE is not supported)", ErrMalformed)
	}
	if err := t.parseHeader(raw[:d1]); err != nil {
		return err
	}
	// One buffer holds the payload and signature, plus room for unescaped
	// claims (never longer than their JSON).
	pl, sl := b64.DecodedLen(d2-d1-1), b64.DecodedLen(len(raw)-d2-1)
	if need := 2*pl + sl; cap(t.buf) < need {
		t.buf = make([]byte, 0, need)
	}
	buf := t.buf[:pl+sl]
	t.SigningInput = raw[:d2]
	var err error
	if t.Payload, buf, err = decode(buf, raw[d1+1:d2]); err != nil {
		return fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if t.Signature, _, err = decode(buf, raw[d2+1:]); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	t.buf = t.buf[:len(t.Payload)+len(t.Signature)]
	// The payload is validated as Claims or Claim walk it; a full pass here
	// would double the cost of every token.
	if len(t.Payload) == 0 || t.Payload[0] != '{' {
		return fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	t.claimsAt = len(t.buf)
	return nil
}

// parseHeader decodes and reads the JOSE header, unless it is the same as
// the last one.
func (t *Token) parseHeader(raw []byte) error {
	if t.hdrRaw == nil || !bytes.Equal(raw, t.hdrRaw) {
		t.hdrRaw = nil // not valid until fully parsed
		if err := t.readHeader(raw); err != nil {
			return err
		}
		t.hdrRaw = append(t.hdrRaw[:0], raw...)
	}
	// Header is capped so that appending to it cannot overwrite the cached
	// kid and typ that follow it.
	h := len(t.hdr) - len(t.kid) - len(t.typ)
	t.Alg, t.Kid, t.Typ, t.Header = t.alg, t.kid, t.typ, t.hdr[:h:h]
	return nil
}

func (t *Token) readHeader(raw []byte) error {
	hl := b64.DecodedLen(len(raw))
	if cap(t.hdr) < 2*hl {
		t.hdr = make([]byte, 0, 2*hl)
	}
	n, err := b64.Decode(t.hdr[:hl], raw)
	if err == nil && b64.EncodedLen(n) != len(raw) {
		err = errLineBreak
	}
	if err != nil {
		return fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	t.hdr = t.hdr[:n]
	t.alg, t.kid, t.typ = 0, nil, nil
	var it jsonscan.Iter
	for it.Object(t.hdr[:n]); it.Next(); {
		v := it.Value()
		switch string(it.Name()) {
		case "alg":
			var s []byte
			if s, err = jsonscan.AppendString(nil, v); err == nil {
				t.alg = abi.AlgByName(s)
			}
		case "kid":
			t.kid, err = jsonscan.AppendString(nil, v)
		case "typ":
			t.typ, err = jsonscan.AppendString(nil, v)
		case "crit":
			// RFC 7515 4.1.11: we understand no extensions, so a token that
			// makes any critical must be refused.
			err = errors.New("crit header not supported")
		}
		if err != nil {
			return fmt.Errorf("%w: header: %v", ErrMalformed, err)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	// kid and typ live after the decoded header, so the cache owns them.
	t.hdr = append(append(t.hdr, t.kid...), t.typ...)
	t.kid = t.hdr[n : n+len(t.kid) : n+len(t.kid)]
	t.typ = t.hdr[n+len(t.kid):]
	return nil
}

// str unescapes a raw JSON string into t's buffer and returns a view of it.
func (t *Token) str(raw []byte) ([]byte, error) {
	start := len(t.buf)
	var err error
	t.buf, err = jsonscan.AppendString(t.buf, raw)
	return t.buf[start:len(t.buf):len(t.buf)], err
}

// errLineBreak reports a segment with '\r' or '\n', which the base64 package
// skips but RFC 7515 forbids: accepting them would make tokens malleable.
var errLineBreak = errors.New("line break in base64url data")

func decode(buf, src []byte) (part, rest []byte, err error) {
	n, err := b64.Decode(buf, src)
	if err == nil && b64.EncodedLen(n) != len(src) {
		err = errLineBreak
	}
	if err != nil {
		return nil, nil, err
	}
	return buf[:n:n], buf[n:], nil
}

// Claim returns the raw JSON value of a payload claim.
func (t *Token) Claim(name string) ([]byte, bool) {
	v, ok, err := jsonscan.Member(t.Payload, name)
	return v, ok && err == nil
}

// Claims are the registered claims (RFC 7519 section 4.1), as views into the
// Token they came from. Times are Unix seconds, each valid when its Has field
// is set ("exp":0 is an expiry at the epoch, not a missing one).
type Claims struct {
	Issuer, Subject, ID                  []byte
	Expiry, NotBefore, IssuedAt          int64
	HasExpiry, HasNotBefore, HasIssuedAt bool
	// audience is the raw aud claim: a string or an array of strings.
	audience []byte
}

// Claims decodes the registered claims.
func (t *Token) Claims() (Claims, error) {
	t.buf = t.buf[:t.claimsAt]
	var c Claims
	var err error
	var it jsonscan.Iter
	for it.Object(t.Payload); it.Next(); {
		v := it.Value()
		switch string(it.Name()) {
		case "iss":
			c.Issuer, err = t.str(v)
		case "sub":
			c.Subject, err = t.str(v)
		case "jti":
			c.ID, err = t.str(v)
		case "exp":
			c.Expiry, err = numericDate(v)
			c.HasExpiry = true
		case "nbf":
			c.NotBefore, err = numericDate(v)
			c.HasNotBefore = true
		case "iat":
			c.IssuedAt, err = numericDate(v)
			c.HasIssuedAt = true
		case "aud":
			c.audience = v
			if len(v) == 0 || (v[0] != '"' && v[0] != '[') {
				err = errors.New("aud is neither a string nor an array")
			}
		}
		if err != nil {
			return c, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if err := it.Err(); err != nil {
		return c, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	return c, nil
}

// numericDate reads a NumericDate: seconds, possibly with a fraction.
func numericDate(v []byte) (int64, error) {
	if n, err := jsonscan.Int(v); err == nil {
		return n, nil
	}
	f, err := jsonscan.Float(v)
	if err != nil {
		return 0, errors.New("bad NumericDate")
	}
	// Converting an out-of-range float is implementation-defined in Go
	// (MinInt64 on amd64, saturating on wasm): saturate explicitly.
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, nil
	case f <= math.MinInt64:
		return math.MinInt64, nil
	}
	return int64(f), nil
}

// HasAudience reports whether aud is one of the token's audiences (RFC 7519
// 4.1.3: a single string or an array of strings).
func (c *Claims) HasAudience(aud string) bool {
	if len(c.audience) > 0 && c.audience[0] == '"' {
		return stringIs(c.audience, aud)
	}
	var it jsonscan.Iter
	for it.Array(c.audience); it.Next(); {
		if stringIs(it.Value(), aud) {
			return true
		}
	}
	return false
}

// stringIs compares a raw JSON string with s, without allocating for the
// common string without escapes.
func stringIs(raw []byte, s string) bool {
	return len(raw) >= 2 && raw[0] == '"' && jsonscan.KeyIs(raw[1:len(raw)-1], s)
}

// Validation says how to check Claims.
type Validation struct {
	// Now is the current time.
	Now time.Time
	// Leeway absorbs clock skew in exp, nbf and iat checks.
	Leeway time.Duration
	// Issuer, when set, must equal iss.
	Issuer string
	// Audience, when set, must be one of aud.
	Audience string
	// RequireExpiry refuses tokens without exp.
	RequireExpiry bool
}

// Validate checks time and identity claims.
func (c *Claims) Validate(v Validation) error {
	now := v.Now.Unix()
	leeway := int64(v.Leeway / time.Second)
	switch {
	case !c.HasExpiry && v.RequireExpiry:
		return ErrNoExpiry
	case c.HasExpiry && now-leeway >= c.Expiry: // c.Expiry+leeway may overflow
		return ErrExpired
	case c.HasNotBefore && now+leeway < c.NotBefore:
		return ErrNotYetValid
	case c.HasIssuedAt && now+leeway < c.IssuedAt:
		return ErrIssuedLater
	case v.Issuer != "" && string(c.Issuer) != v.Issuer:
		return ErrIssuer
	case v.Audience != "" && !c.HasAudience(v.Audience):
		return ErrAudience
	}
	return nil
}
