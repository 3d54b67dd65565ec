package abi

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// TokenVerdict is the first byte token_verify writes: TokenValid, or the
// first check a token failed, in the order the checks run.
type TokenVerdict = uint8

// The verdicts, in check order (README.md, token_verify).
const (
	TokenValid           TokenVerdict = 0
	TokenMalformed       TokenVerdict = 1  // not a compact JWS: segments, base64url, header JSON, crit, size
	TokenUnknownKid      TokenVerdict = 2  // no policy key has the token's kid
	TokenAlgNotAccepted  TokenVerdict = 3  // no policy key with a matching kid is registered for the header's alg
	TokenBadSignature    TokenVerdict = 4  // every candidate key refused the signature
	TokenMalformedClaims TokenVerdict = 5  // the payload is not a claims object (bad JSON, exp not a number, iss not a string)
	TokenNoExpiry        TokenVerdict = 6  // the policy requires exp and the token has none
	TokenExpired         TokenVerdict = 7  // now - leeway >= exp
	TokenNotYetValid     TokenVerdict = 8  // now + leeway < nbf
	TokenIssuedLater     TokenVerdict = 9  // now + leeway < iat
	TokenWrongIssuer     TokenVerdict = 10 // iss differs from the policy's issuer
	TokenWrongAudience   TokenVerdict = 11 // none of the policy's audiences is in aud
	tokenVerdicts                     = 12
)

var verdictNames = [tokenVerdicts]string{"TokenValid", "TokenMalformed", "TokenUnknownKid",
	"TokenAlgNotAccepted", "TokenBadSignature", "TokenMalformedClaims", "TokenNoExpiry",
	"TokenExpired", "TokenNotYetValid", "TokenIssuedLater", "TokenWrongIssuer", "TokenWrongAudience"}

// TokenVerdictName returns the spec name of v ("TokenExpired").
func TokenVerdictName(v TokenVerdict) string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "TokenVerdict(" + strconv.Itoa(int(v)) + ")"
}

// Limits of token policies and tokens.
const (
	MaxTokenPolicies = 64       // policies registered per plugin version
	MaxTokenClaims   = 32       // claims a policy asks back
	MaxTokenLen      = 16 << 10 // bytes in a token; a longer one is TokenMalformed
	MaxTokenLeeway   = 3600     // seconds
	maxTokenItem     = 1 << 10  // bytes in a kid, issuer, audience or claim name
)

// TokenKey is one key a policy verifies with: a key_register handle and
// the kid it answers to (empty: any kid, and a token without a kid is
// tried against it).
type TokenKey struct {
	Key int32
	Kid []byte
}

// TokenPolicy is what token_policy registers: how the host verifies a
// compact JWS and which claims it hands back. Encode it with Append.
type TokenPolicy struct {
	// Keys the token may be signed with, each bound to its Alg by
	// key_register; the header's alg only selects among them. With none,
	// every well-formed token is TokenUnknownKid or TokenAlgNotAccepted.
	Keys []TokenKey
	// Issuer, when set, must equal the iss claim.
	Issuer []byte
	// Audiences, when set: one of them must be in the aud claim.
	Audiences [][]byte
	// Leeway absorbs clock skew in the exp, nbf and iat checks, in
	// seconds (at most MaxTokenLeeway).
	Leeway uint32
	// RequireExpiry refuses a token without exp.
	RequireExpiry bool
	// Claims are the names of the claims token_verify copies back, as raw
	// JSON values, in this order.
	Claims [][]byte
}

// ErrTokenPolicy is the error ParseTokenPolicy wraps.
var ErrTokenPolicy = errors.New("abi: bad token policy")

// Append appends the encoding of p to dst:
//
//	flags u8 (bit 0: RequireExpiry) | leeway u32 |
//	keys: count u16, then per key: handle i32, kid str |
//	issuer str | audiences: count u16, str each | claims: count u16, str each
//
// where str is a u16 length and the bytes, and every integer is
// little-endian.
func (p *TokenPolicy) Append(dst []byte) []byte {
	var flags byte
	if p.RequireExpiry {
		flags = 1
	}
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, p.Leeway)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(p.Keys)))
	for _, k := range p.Keys {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k.Key))
		dst = appendStr(dst, k.Kid)
	}
	dst = appendStr(dst, p.Issuer)
	dst = appendStrs(dst, p.Audiences)
	return appendStrs(dst, p.Claims)
}

func appendStr(dst, s []byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendStrs(dst []byte, ss [][]byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(ss)))
	for _, s := range ss {
		dst = appendStr(dst, s)
	}
	return dst
}

// ParseTokenPolicy decodes what Append encoded, refusing trailing bytes,
// unknown flags and anything past the limits. The result's byte slices are
// views of b.
func ParseTokenPolicy(b []byte) (TokenPolicy, error) {
	r := specReader{b: b}
	var p TokenPolicy
	flags := r.u8()
	p.RequireExpiry = flags&1 != 0
	p.Leeway = r.u32()
	nk := r.u16()
	if r.err == nil && int(nk) > MaxKeys {
		return p, r.fail("more than MaxKeys keys")
	}
	for i := 0; i < int(nk) && r.err == nil; i++ {
		p.Keys = append(p.Keys, TokenKey{Key: int32(r.u32()), Kid: r.str()})
	}
	p.Issuer = r.str()
	p.Audiences = r.strs(MaxTokenClaims)
	p.Claims = r.strs(MaxTokenClaims)
	switch {
	case r.err != nil:
		return p, r.err
	case len(r.b) != 0:
		return p, r.fail("trailing bytes")
	case flags&^1 != 0:
		return p, r.fail("unknown flags")
	case p.Leeway > MaxTokenLeeway:
		return p, r.fail("leeway over MaxTokenLeeway")
	}
	for _, c := range p.Claims {
		if len(c) == 0 {
			return p, r.fail("empty claim name")
		}
	}
	return p, nil
}

// specReader reads the encoding of Append; the first error sticks.
type specReader struct {
	b   []byte
	err error
}

func (r *specReader) fail(why string) error {
	if r.err == nil {
		r.err = policyError(why)
	}
	return r.err
}

// policyError matches ErrTokenPolicy with errors.Is and says what is wrong.
type policyError string

func (e policyError) Error() string        { return ErrTokenPolicy.Error() + ": " + string(e) }
func (e policyError) Is(target error) bool { return target == ErrTokenPolicy }

func (r *specReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *specReader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *specReader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *specReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *specReader) str() []byte {
	n := r.u16()
	if int(n) > maxTokenItem {
		r.fail("item longer than 1 KiB")
		return nil
	}
	return r.take(int(n))
}

func (r *specReader) strs(most int) [][]byte {
	n := r.u16()
	if int(n) > most {
		r.fail("more than " + strconv.Itoa(most) + " items")
		return nil
	}
	var out [][]byte
	for i := 0; i < int(n) && r.err == nil; i++ {
		out = append(out, r.str())
	}
	return out
}
