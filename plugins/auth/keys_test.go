package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"sync"
	"testing"
)

// Test keys, generated once per run: RSA generation is slow under -race.
type testKeys struct {
	rsa, rsa2    *rsa.PrivateKey
	p256, p384   *ecdsa.PrivateKey
	ed, ed2      ed25519.PrivateKey
	hmac, hmac2  []byte
	rsaPKIX      []byte // the RSA public key as DER: what a confusion attacker signs with
	ecOtherCurve *ecdsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func mustKeys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		keys.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		keys.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		keys.ecOtherCurve, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		_, keys.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		_, keys.ed2, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		keys.hmac = make([]byte, 64)
		keys.hmac2 = make([]byte, 64)
		rand.Read(keys.hmac)
		rand.Read(keys.hmac2)
		keys.rsaPKIX, err = x509.MarshalPKIXPublicKey(&keys.rsa.PublicKey)
		must(err)
	})
	return &keys
}

var b64 = base64.RawURLEncoding.EncodeToString

// jwkOf is the public JWK of key (a secret for []byte), with kid and alg
// members when non-empty.
func jwkOf(key any, kid, alg string) map[string]any {
	m := map[string]any{}
	switch k := key.(type) {
	case []byte:
		m["kty"], m["k"] = "oct", b64(k)
	case *rsa.PrivateKey:
		m["kty"], m["n"] = "RSA", b64(k.N.Bytes())
		m["e"] = b64([]byte{1, 0, 1})
	case *ecdsa.PrivateKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		m["kty"], m["crv"] = "EC", k.Curve.Params().Name
		m["x"], m["y"] = b64(k.X.FillBytes(make([]byte, size))), b64(k.Y.FillBytes(make([]byte, size)))
	case ed25519.PrivateKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(k.Public().(ed25519.PublicKey))
	default:
		panic(fmt.Sprintf("jwkOf: %T", key))
	}
	if kid != "" {
		m["kid"] = kid
	}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func hashOf(alg string) (crypto.Hash, func() hash.Hash) {
	switch alg[2:] {
	case "384":
		return crypto.SHA384, sha512.New384
	case "512":
		return crypto.SHA512, sha512.New
	}
	return crypto.SHA256, sha256.New
}

// sign makes a compact JWS of claims with key under alg; kid is put in the
// header when non-empty. The signature is computed natively, independently
// of the host the plugin verifies with.
func sign(t testing.TB, alg string, key any, kid string, claims map[string]any) string {
	t.Helper()
	hdr := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	return signRaw(t, alg, key, mustJSON(t, hdr), mustJSON(t, claims))
}

func signRaw(t testing.TB, alg string, key any, hdr, payload []byte) string {
	t.Helper()
	in := b64(hdr) + "." + b64(payload)
	var sig []byte
	var err error
	h, newHash := hashOf(alg)
	sum := func() []byte { d := newHash(); d.Write([]byte(in)); return d.Sum(nil) }
	switch k := key.(type) {
	case nil:
	case []byte:
		m := hmac.New(newHash, k)
		m.Write([]byte(in))
		sig = m.Sum(nil)
	case *rsa.PrivateKey:
		if alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, k, h, sum(), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, sum())
		}
	case *ecdsa.PrivateKey:
		r, s, e := ecdsa.Sign(rand.Reader, k, sum())
		size := (k.Curve.Params().BitSize + 7) / 8
		sig, err = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...), e
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(in))
	default:
		t.Fatalf("sign: %T", key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwks builds a config's jwks member.
func jwks(ks ...map[string]any) map[string]any {
	l := make([]any, len(ks))
	for i, k := range ks {
		l[i] = k
	}
	return map[string]any{"keys": l}
}

func rsaKey(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) }
