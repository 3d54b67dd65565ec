// Package jwstest signs and publishes keys as a token issuer does, with
// the standard library alone: the tests of the host's verifier
// (wasm/host), of the auth plugin and of the conformance kit check it
// against signatures and JWKs it did not make itself.
package jwstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"time"
)

// Hash is the hash the JWA algorithm alg (RFC 7518 §3.1: "HS256",
// "PS384", ...) signs a digest of: SHA-384 or SHA-512 for the names that
// end so, SHA-256 for the others (EdDSA signs the message itself).
func Hash(alg string) (crypto.Hash, func() hash.Hash) {
	switch {
	case strings.HasSuffix(alg, "384"):
		return crypto.SHA384, sha512.New384
	case strings.HasSuffix(alg, "512"):
		return crypto.SHA512, sha512.New
	}
	return crypto.SHA256, sha256.New
}

// Sign returns the JWS signature (RFC 7518 §3) of msg with key. The key's
// type says the family, so that a test can sign under a header that lies
// (an algorithm-confusion attack signs "HS256" with an RSA public key's
// bytes): a []byte is an HMAC secret, an *rsa.PrivateKey signs RSASSA-PSS
// for a "PS" alg and PKCS #1 v1.5 otherwise, an *ecdsa.PrivateKey gives
// r||s at the curve's width, an ed25519.PrivateKey signs EdDSA. alg names
// the hash (see [Hash]).
func Sign(alg string, key any, msg []byte) ([]byte, error) {
	h, newHash := Hash(alg)
	digest := func() []byte { d := newHash(); d.Write(msg); return d.Sum(nil) }
	switch k := key.(type) {
	case []byte:
		m := hmac.New(newHash, k)
		m.Write(msg)
		return m.Sum(nil), nil
	case *rsa.PrivateKey:
		if strings.HasPrefix(alg, "PS") {
			return rsa.SignPSS(rand.Reader, k, h, digest(), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, k, h, digest())
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest())
		if err != nil {
			return nil, fmt.Errorf("jwstest: sign %s: %w", alg, err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg), nil
	}
	return nil, fmt.Errorf("jwstest: no signer for a %T", key)
}

// JWK returns the public JWK (RFC 7517, RFC 7518 §6) of key: a []byte
// secret ("oct"), an RSA, ECDSA or Ed25519 key, private or public. kid and
// alg are set when non-empty. It panics on another type, a test's mistake.
func JWK(key any, kid, alg string) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := key.(type) {
	case *rsa.PrivateKey:
		key = &k.PublicKey
	case *ecdsa.PrivateKey:
		key = &k.PublicKey
	case ed25519.PrivateKey:
		key = k.Public()
	}
	m := map[string]any{}
	switch k := key.(type) {
	case []byte:
		m["kty"], m["k"] = "oct", b64(k)
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		point, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			panic(fmt.Sprintf("jwstest: %v", err))
		}
		size := (len(point) - 1) / 2
		m["kty"], m["crv"] = "EC", k.Curve.Params().Name
		m["x"], m["y"] = b64(point[1:1+size]), b64(point[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(k)
	default:
		panic(fmt.Sprintf("jwstest: no JWK for a %T", key))
	}
	if kid != "" {
		m["kid"] = kid
	}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

// Token returns the compact JWS (RFC 7515 §7.1) of claims signed with key
// under alg (see [Sign]), its header typ JWT with kid when non-empty.
func Token(alg string, key any, kid string, claims map[string]any) (string, error) {
	hdr := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return "", fmt.Errorf("jwstest: header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jwstest: claims: %w", err)
	}
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sig, err := Sign(alg, key, []byte(in))
	if err != nil {
		return "", err
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// UserToken is an HS256 token for sub under secret, issued now and valid
// for an hour: what a signed-in client sends the auth plugin.
func UserToken(secret []byte, sub string) string {
	now := time.Now().Unix()
	tok, err := Token("HS256", secret, "", map[string]any{"sub": sub, "iat": now, "exp": now + 3600})
	if err != nil {
		panic(err) // HMAC over JSON of strings and numbers cannot fail
	}
	return tok
}
