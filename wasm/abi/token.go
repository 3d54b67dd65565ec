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
	TokenClaimNotText    TokenVerdict = 12 // a forwarded claim is neither a string nor an array of strings
	TokenClaimNotValue   TokenVerdict = 13 // a forwarded claim's text is not a valid header value
	tokenVerdicts                     = 14
)

var verdictNames = [tokenVerdicts]string{"TokenValid", "TokenMalformed", "TokenUnknownKid",
	"TokenAlgNotAccepted", "TokenBadSignature", "TokenMalformedClaims", "TokenNoExpiry",
	"TokenExpired", "TokenNotYetValid", "TokenIssuedLater", "TokenWrongIssuer", "TokenWrongAudience",
	"TokenClaimNotText", "TokenClaimNotValue"}

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
	MaxTokenClaims   = 32       // claims, audiences or forwards a policy lists
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
	// Forwards are the request values token_verify sets, in this order,
	// for a TokenValid token: the guest's mapping of claims to the
	// origin's view of the identity, applied without a host call per
	// value or a pass over the claims in the guest.
	Forwards []TokenForward
}

// TokenForward is one request value a valid token sets, as value_set with
// ValueForward would: the text of the first of Claims the token has, or
// Value when it has none of them. Empty text forwards nothing.
//
// A claim's text is a JSON string's unescaped bytes, or an array of
// strings joined with single spaces (as scp is sent by some issuers); any
// other JSON value makes the token TokenClaimNotText, and text that is not
// a valid header value TokenClaimNotValue.
type TokenForward struct {
	// Name is the request value's key, a valid token (RFC 9110 5.6.2).
	Name []byte
	// Claims are tried in order; the first the token has is forwarded.
	Claims [][]byte
	// Value is forwarded when the token has none of Claims (always, when
	// Claims is empty); a valid header value.
	Value []byte
}

// ErrTokenPolicy is the error ParseTokenPolicy wraps.
var ErrTokenPolicy = errors.New("abi: bad token policy")

// Append appends the encoding of p to dst:
//
//	flags u8 (bit 0: RequireExpiry, bit 1: forwards follow) | leeway u32 |
//	keys: count u16, then per key: handle i32, kid str |
//	issuer str | audiences: count u16, str each | claims: count u16, str each |
//	only with flag bit 1: forwards: count u16, then per forward:
//	name str, claims: count u16, str each, value str
//
// where str is a u16 length and the bytes, and every integer is
// little-endian. A policy without Forwards encodes as it did before they
// existed.
func (p *TokenPolicy) Append(dst []byte) []byte {
	var flags byte
	if p.RequireExpiry {
		flags = 1
	}
	if len(p.Forwards) > 0 {
		flags |= flagForwards
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
	dst = appendStrs(dst, p.Claims)
	if len(p.Forwards) == 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(p.Forwards)))
	for _, f := range p.Forwards {
		dst = appendStr(dst, f.Name)
		dst = appendStrs(dst, f.Claims)
		dst = appendStr(dst, f.Value)
	}
	return dst
}

// flagForwards is the flags bit that says a forwards section follows.
const flagForwards = 2

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
	if flags&flagForwards != 0 {
		p.Forwards = r.forwards()
	}
	switch {
	case r.err != nil:
		return p, r.err
	case len(r.b) != 0:
		return p, r.fail("trailing bytes")
	case flags&^(1|flagForwards) != 0:
		return p, r.fail("unknown flags")
	case p.Leeway > MaxTokenLeeway:
		return p, r.fail("leeway over MaxTokenLeeway")
	}
	for _, c := range p.Claims {
		if len(c) == 0 {
			return p, r.fail("empty claim name")
		}
	}
	return p, checkForwards(p.Forwards, &r)
}

// forwards reads the forwards section, which flag bit 1 announces.
func (r *specReader) forwards() []TokenForward {
	n := r.u16()
	switch {
	case r.err == nil && n == 0:
		// Flag bit 1 with no forwards would not encode back to these bytes.
		r.fail("empty forwards section")
		return nil
	case int(n) > MaxTokenClaims:
		r.fail("more than " + strconv.Itoa(MaxTokenClaims) + " forwards")
		return nil
	}
	var out []TokenForward
	for i := 0; i < int(n) && r.err == nil; i++ {
		out = append(out, TokenForward{Name: r.str(), Claims: r.strs(MaxTokenClaims), Value: r.str()})
	}
	return out
}

// checkForwards refuses what token_verify could not set: a value_set with
// ValueForward would refuse the name or the literal value. It bounds the
// claim names over all forwards, which the host looks up in one walk of
// the payload.
func checkForwards(fs []TokenForward, r *specReader) error {
	names := 0
	for _, f := range fs {
		names += len(f.Claims)
		switch {
		case !ValidToken(f.Name) || len(f.Name) > MaxValueKeyLen:
			return r.fail("forward name is not a token")
		case !ValidHeaderValue(f.Value):
			return r.fail("forward value is not a header value")
		case len(f.Claims) == 0 && len(f.Value) == 0:
			return r.fail("forward with neither claims nor value")
		case names > MaxTokenClaims:
			return r.fail("more than " + strconv.Itoa(MaxTokenClaims) + " forwarded claim names")
		}
		for _, c := range f.Claims {
			if len(c) == 0 {
				return r.fail("empty claim name")
			}
		}
	}
	return nil
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
