// Package jwt parses JSON Web Tokens (RFC 7519, compact JWS serialization)
// and checks their registered claims, with jsonscan instead of reflection.
// It never verifies a signature itself: hand SigningInput and Signature to a
// host key (sdk.Key.Verify), which runs the crypto natively.
//
//	tok, err := jwt.Parse(raw)
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
	"time"

	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm/abi"
)

// MaxTokenSize bounds what Parse accepts.
const MaxTokenSize = 16 << 10

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

// Token is a parsed, unverified token.
type Token struct {
	// Alg is the header's algorithm as an ABI value; 0 when it is not one
	// the host can verify (including "none").
	Alg abi.Alg
	// Kid and Typ are the header's key id and type.
	Kid, Typ string
	// Header and Payload are the decoded JSON objects.
	Header, Payload []byte
	// SigningInput is the signed part of the token: header.payload.
	SigningInput []byte
	// Signature is the decoded signature.
	Signature []byte
}

// Parse splits and decodes a compact JWS. It checks structure only.
func Parse(raw []byte) (*Token, error) {
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenSize)
	}
	d1 := bytes.IndexByte(raw, '.')
	if d1 < 0 {
		return nil, fmt.Errorf("%w: no '.'", ErrMalformed)
	}
	d2 := bytes.IndexByte(raw[d1+1:], '.')
	if d2 < 0 {
		return nil, fmt.Errorf("%w: two parts, want three", ErrMalformed)
	}
	d2 += d1 + 1
	if bytes.IndexByte(raw[d2+1:], '.') >= 0 {
		return nil, fmt.Errorf("%w: more than three parts (JWE is not supported)", ErrMalformed)
	}
	// One buffer holds the three decoded parts.
	buf := make([]byte, b64.DecodedLen(d1)+b64.DecodedLen(d2-d1-1)+b64.DecodedLen(len(raw)-d2-1))
	t := &Token{SigningInput: raw[:d2]}
	var err error
	if t.Header, buf, err = decode(buf, raw[:d1]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if t.Payload, buf, err = decode(buf, raw[d1+1:d2]); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if t.Signature, _, err = decode(buf, raw[d2+1:]); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	err = jsonscan.Object(t.Header, func(k, v []byte) bool {
		var s []byte
		switch {
		case jsonscan.KeyIs(k, "alg"):
			if s, err = jsonscan.AppendString(nil, v); err == nil {
				t.Alg = abi.AlgByName(s)
			}
		case jsonscan.KeyIs(k, "kid"):
			t.Kid, err = jsonscan.String(v)
		case jsonscan.KeyIs(k, "typ"):
			t.Typ, err = jsonscan.String(v)
		case jsonscan.KeyIs(k, "crit"):
			// RFC 7515 4.1.11: we understand no extensions, so a token that
			// makes any critical must be refused.
			err = errors.New("crit header not supported")
		}
		return err == nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if !jsonscan.Valid(t.Payload) || t.Payload[0] != '{' {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	return t, nil
}

func decode(buf, src []byte) (part, rest []byte, err error) {
	n, err := b64.Decode(buf, src)
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

// Claims are the registered claims (RFC 7519 section 4.1). Times are Unix
// seconds; zero means absent.
type Claims struct {
	Issuer, Subject, ID         string
	Audience                    []string
	Expiry, NotBefore, IssuedAt int64
}

// Claims decodes the registered claims.
func (t *Token) Claims() (Claims, error) {
	var c Claims
	var err error
	num := func(v []byte) int64 {
		f, e := jsonscan.Float(v) // NumericDate may have a fraction
		if e != nil {
			err = fmt.Errorf("%w: bad NumericDate", ErrMalformed)
		}
		return int64(f)
	}
	str := func(v []byte) string {
		s, e := jsonscan.String(v)
		if e != nil {
			err = fmt.Errorf("%w: claim is not a string", ErrMalformed)
		}
		return s
	}
	perr := jsonscan.Object(t.Payload, func(k, v []byte) bool {
		switch {
		case jsonscan.KeyIs(k, "iss"):
			c.Issuer = str(v)
		case jsonscan.KeyIs(k, "sub"):
			c.Subject = str(v)
		case jsonscan.KeyIs(k, "jti"):
			c.ID = str(v)
		case jsonscan.KeyIs(k, "exp"):
			c.Expiry = num(v)
		case jsonscan.KeyIs(k, "nbf"):
			c.NotBefore = num(v)
		case jsonscan.KeyIs(k, "iat"):
			c.IssuedAt = num(v)
		case jsonscan.KeyIs(k, "aud"):
			// A single string or an array of strings (RFC 7519 4.1.3).
			if len(v) > 0 && v[0] == '"' {
				c.Audience = append(c.Audience, str(v))
			} else if e := jsonscan.Array(v, func(el []byte) bool {
				c.Audience = append(c.Audience, str(el))
				return err == nil
			}); e != nil {
				err = fmt.Errorf("%w: bad aud", ErrMalformed)
			}
		}
		return err == nil
	})
	if err == nil {
		err = perr
	}
	return c, err
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
	case c.Expiry == 0 && v.RequireExpiry:
		return ErrNoExpiry
	case c.Expiry != 0 && now >= c.Expiry+leeway:
		return ErrExpired
	case c.NotBefore != 0 && now+leeway < c.NotBefore:
		return ErrNotYetValid
	case c.IssuedAt != 0 && now+leeway < c.IssuedAt:
		return ErrIssuedLater
	case v.Issuer != "" && c.Issuer != v.Issuer:
		return ErrIssuer
	}
	if v.Audience != "" {
		for _, a := range c.Audience {
			if a == v.Audience {
				return nil
			}
		}
		return ErrAudience
	}
	return nil
}
