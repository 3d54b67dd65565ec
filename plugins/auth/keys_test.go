package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"

	"github.com/talowa/wedge/internal/jwstest"
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

// sign makes a compact JWS of claims with key under alg; kid is put in the
// header when non-empty. The signature is computed natively, independently
// of the host the plugin verifies with.
func sign(t testing.TB, alg string, key any, kid string, claims map[string]any) string {
	t.Helper()
	tok, err := jwstest.Token(alg, key, kid, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signRaw signs hdr and payload as they are; a nil key leaves the
// signature empty (an unsecured token).
func signRaw(t testing.TB, alg string, key any, hdr, payload []byte) string {
	t.Helper()
	in := b64(hdr) + "." + b64(payload)
	if key == nil {
		return in + "."
	}
	sig, err := jwstest.Sign(alg, key, []byte(in))
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
