package host

import (
	"bytes"
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
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"testing"

	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/wasm/abi"
)

// Test keys, generated once per test binary.
var (
	testRSA  = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	testP256 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	testP384 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
	testEd   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	// 64 bytes: long enough for HS512 (RFC 7518 §3.2), so one secret serves
	// every HMAC algorithm.
	testSecret = []byte("a shared HMAC secret of 64 bytes, long enough for HS512 (RFC 7518)")[:64]
)

// secretN is the HS256 secret numbered i in a family: 32 bytes, the least
// key_register takes for HS256.
func secretN(family string, i int) []byte {
	return fmt.Appendf(nil, "%-32s", family+"-"+strconv.Itoa(i))
}

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func pkix(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return der
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecRaw(pub *ecdsa.PublicKey) []byte {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

// jwk is members as JSON: a JWK as a test writes it, malformed on purpose
// or (jwkOf) as an issuer publishes it.
func jwk(members any) []byte {
	b, err := json.Marshal(members)
	if err != nil {
		panic(err)
	}
	return b
}

// jwkOf is the public JWK of key, with an alg member when non-empty.
func jwkOf(key any, alg string) []byte { return jwk(jwstest.JWK(key, "", alg)) }

// sign signs msg for alg with the matching test key, in JWS encoding.
func sign(t testing.TB, alg abi.Alg, msg []byte) []byte {
	t.Helper()
	var key any
	switch alg {
	case abi.AlgHS256, abi.AlgHS384, abi.AlgHS512:
		key = testSecret
	case abi.AlgRS256, abi.AlgRS384, abi.AlgRS512, abi.AlgPS256, abi.AlgPS384, abi.AlgPS512:
		key = testRSA()
	case abi.AlgES256:
		key = testP256()
	case abi.AlgES384:
		key = testP384()
	case abi.AlgEdDSA:
		key = testEd()
	default:
		t.Fatalf("no signer for alg %d", alg)
	}
	sig, err := jwstest.Sign(abi.AlgName(alg), key, msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

type keyForm struct {
	name   string
	format abi.KeyFormat
	data   []byte
}

// keyForms returns every accepted encoding of alg's test key.
func keyForms(alg abi.Alg) []keyForm {
	name := abi.AlgName(alg)
	switch alg {
	case abi.AlgHS256, abi.AlgHS384, abi.AlgHS512:
		return []keyForm{
			{"raw", abi.KeyRaw, testSecret},
			{"jwk", abi.KeyJWK, jwkOf(testSecret, "")},
			{"jwk with alg", abi.KeyJWK, jwkOf(testSecret, name)},
		}
	case abi.AlgES256, abi.AlgES384:
		k := testP256()
		if alg == abi.AlgES384 {
			k = testP384()
		}
		return []keyForm{
			{"raw", abi.KeyRaw, ecRaw(&k.PublicKey)},
			{"pkix", abi.KeyPKIX, pkix(&k.PublicKey)},
			{"jwk", abi.KeyJWK, jwkOf(&k.PublicKey, "")},
			{"jwk with alg", abi.KeyJWK, jwkOf(&k.PublicKey, name)},
		}
	case abi.AlgEdDSA:
		pub := testEd().Public().(ed25519.PublicKey)
		return []keyForm{
			{"raw", abi.KeyRaw, []byte(pub)},
			{"pkix", abi.KeyPKIX, pkix(pub)},
			{"jwk", abi.KeyJWK, jwkOf(pub, "")},
		}
	}
	pub := &testRSA().PublicKey
	return []keyForm{
		{"pkix", abi.KeyPKIX, pkix(pub)},
		{"jwk", abi.KeyJWK, jwkOf(pub, "")},
		{"jwk with alg", abi.KeyJWK, jwkOf(pub, name)},
	}
}

var allAlgs = []abi.Alg{
	abi.AlgHS256, abi.AlgHS384, abi.AlgHS512,
	abi.AlgRS256, abi.AlgRS384, abi.AlgRS512,
	abi.AlgPS256, abi.AlgPS384, abi.AlgPS512,
	abi.AlgES256, abi.AlgES384, abi.AlgEdDSA,
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i%len(b)] ^= 0x01
	return b
}

func TestKeyringVerifyEveryAlgAndFormat(t *testing.T) {
	msg := []byte(`eyJhbGciOiJ4In0.eyJzdWIiOiJhbGljZSJ9`)
	for _, alg := range allAlgs {
		sig := sign(t, alg, msg)
		for _, kf := range keyForms(alg) {
			t.Run(abi.AlgName(alg)+"/"+kf.name, func(t *testing.T) {
				for _, cache := range []*VerifyCache{nil, NewVerifyCache(64)} {
					ring := NewKeyring(cache)
					h := ring.Register(alg, kf.format, kf.data)
					if h < 0 {
						t.Fatalf("Register = %s", abi.ErrnoName(h))
					}
					for _, tc := range []struct {
						what     string
						msg, sig []byte
						want     int32
					}{
						{"valid", msg, sig, 1},
						{"valid again", msg, sig, 1}, // from the cache for asymmetric keys
						{"tampered message", flip(msg, 3), sig, 0},
						{"tampered signature start", msg, flip(sig, 0), 0},
						{"tampered signature end", msg, flip(sig, len(sig)-1), 0},
						{"truncated signature", msg, sig[:len(sig)-1], 0},
						{"extended signature", msg, append(bytes.Clone(sig), 0), 0},
						{"empty signature", msg, nil, 0},
						{"empty message", nil, sig, 0},
						{"valid after failures", msg, sig, 1},
					} {
						if got, _ := ring.Verify(h, tc.msg, tc.sig, nil); got != tc.want {
							t.Errorf("cache %v, %s: Verify = %d, want %d", cache != nil, tc.what, got, tc.want)
						}
					}
				}
			})
		}
	}
}

// TestKeyringWrongAlgSignature: a key is bound to its alg: a signature made
// with a sibling algorithm over the same key does not verify.
func TestKeyringWrongAlgSignature(t *testing.T) {
	msg := []byte("payload")
	rsaPKIX := pkix(&testRSA().PublicKey)
	for _, tc := range []struct {
		keyAlg, sigAlg abi.Alg
		format         abi.KeyFormat
		key            []byte
	}{
		{abi.AlgHS256, abi.AlgHS384, abi.KeyRaw, testSecret},
		{abi.AlgHS512, abi.AlgHS256, abi.KeyRaw, testSecret},
		{abi.AlgRS256, abi.AlgRS384, abi.KeyPKIX, rsaPKIX},
		{abi.AlgRS256, abi.AlgPS256, abi.KeyPKIX, rsaPKIX},
		{abi.AlgPS256, abi.AlgRS256, abi.KeyPKIX, rsaPKIX},
		{abi.AlgPS512, abi.AlgPS384, abi.KeyPKIX, rsaPKIX},
	} {
		t.Run(abi.AlgName(tc.keyAlg)+"<-"+abi.AlgName(tc.sigAlg), func(t *testing.T) {
			ring := NewKeyring(NewVerifyCache(16))
			h := ring.Register(tc.keyAlg, tc.format, tc.key)
			if h < 0 {
				t.Fatalf("Register = %s", abi.ErrnoName(h))
			}
			if got, _ := ring.Verify(h, msg, sign(t, tc.sigAlg, msg), nil); got != 0 {
				t.Fatalf("Verify = %d, want 0", got)
			}
		})
	}
}

func TestKeyringECDSASignatureEncoding(t *testing.T) {
	msg := []byte("payload")
	for _, tc := range []struct {
		alg  abi.Alg
		key  *ecdsa.PrivateKey
		size int
	}{
		{abi.AlgES256, testP256(), 64},
		{abi.AlgES384, testP384(), 96},
	} {
		t.Run(abi.AlgName(tc.alg), func(t *testing.T) {
			ring := NewKeyring(nil)
			h := ring.Register(tc.alg, abi.KeyPKIX, pkix(&tc.key.PublicKey))
			sig := sign(t, tc.alg, msg)
			if len(sig) != tc.size {
				t.Fatalf("r||s is %d bytes, want %d", len(sig), tc.size)
			}
			_, newHash := jwstest.Hash(abi.AlgName(tc.alg))
			d := newHash()
			d.Write(msg)
			der, err := ecdsa.SignASN1(rand.Reader, tc.key, d.Sum(nil))
			if err != nil {
				t.Fatal(err)
			}
			half := tc.size / 2
			for _, c := range []struct {
				what string
				sig  []byte
				want int32
			}{
				{"r||s", sig, 1},
				{"ASN.1 DER", der, 0},
				{"r||s without the last byte", sig[:tc.size-1], 0},
				{"r||s zero-padded", append(append([]byte{0}, sig[:half]...), append([]byte{0}, sig[half:]...)...), 0},
				{"s||r", append(bytes.Clone(sig[half:]), sig[:half]...), 0},
				{"zeros", make([]byte, tc.size), 0},
			} {
				if got, _ := ring.Verify(h, msg, c.sig, nil); got != c.want {
					t.Errorf("%s: Verify = %d, want %d", c.what, got, c.want)
				}
			}
		})
	}
}

func TestKeyringRegisterRefused(t *testing.T) {
	rsaPub := &testRSA().PublicKey
	p256, p384 := &testP256().PublicKey, &testP384().PublicKey
	edPub := testEd().Public().(ed25519.PublicKey)
	small := &mustRSA(1024).PublicKey
	notOnCurve := ecRaw(p256)
	notOnCurve[len(notOnCurve)-1] ^= 1
	for _, tc := range []struct {
		name   string
		alg    abi.Alg
		format abi.KeyFormat
		data   []byte
	}{
		{"unknown alg 0", 0, abi.KeyRaw, testSecret},
		{"unknown alg 13", 13, abi.KeyRaw, testSecret},
		{"negative alg", -1, abi.KeyRaw, testSecret},
		{"unknown format", abi.AlgHS256, 3, testSecret},
		{"empty HMAC secret", abi.AlgHS256, abi.KeyRaw, nil},
		{"HMAC secret as PKIX", abi.AlgHS256, abi.KeyPKIX, testSecret},
		{"RSA PKIX as HMAC", abi.AlgHS256, abi.KeyPKIX, pkix(rsaPub)},
		{"RSA raw", abi.AlgRS256, abi.KeyRaw, rsaPub.N.Bytes()},
		{"RSA 1024 PKIX", abi.AlgRS256, abi.KeyPKIX, pkix(small)},
		{"RSA 1024 JWK", abi.AlgPS256, abi.KeyJWK, jwkOf(small, "")},
		{"RSA as ES256", abi.AlgES256, abi.KeyPKIX, pkix(rsaPub)},
		{"RSA as EdDSA", abi.AlgEdDSA, abi.KeyPKIX, pkix(rsaPub)},
		{"P-256 as ES384", abi.AlgES384, abi.KeyPKIX, pkix(p256)},
		{"P-256 raw as ES384", abi.AlgES384, abi.KeyRaw, ecRaw(p256)},
		{"P-384 as ES256", abi.AlgES256, abi.KeyPKIX, pkix(p384)},
		{"P-256 as RS256", abi.AlgRS256, abi.KeyPKIX, pkix(p256)},
		{"P-256 as EdDSA", abi.AlgEdDSA, abi.KeyPKIX, pkix(p256)},
		{"EC point not on the curve", abi.AlgES256, abi.KeyRaw, notOnCurve},
		{"EC point compressed", abi.AlgES256, abi.KeyRaw, elliptic.MarshalCompressed(elliptic.P256(), p256.X, p256.Y)},
		{"Ed25519 as RS256", abi.AlgRS256, abi.KeyPKIX, pkix(edPub)},
		{"Ed25519 as ES256", abi.AlgES256, abi.KeyPKIX, pkix(edPub)},
		{"Ed25519 raw as ES256", abi.AlgES256, abi.KeyRaw, []byte(edPub)},
		{"Ed25519 raw of 31 bytes", abi.AlgEdDSA, abi.KeyRaw, edPub[:31]},
		{"garbage PKIX", abi.AlgRS256, abi.KeyPKIX, []byte("not DER")},
		{"JWK not JSON", abi.AlgHS256, abi.KeyJWK, []byte("{")},
		{"JWK without kty", abi.AlgHS256, abi.KeyJWK, []byte(`{"k":"c2VjcmV0"}`)},
		{"JWK unknown kty", abi.AlgHS256, abi.KeyJWK, []byte(`{"kty":"XYZ","k":"c2VjcmV0"}`)},
		{"JWK bad base64", abi.AlgHS256, abi.KeyJWK, []byte(`{"kty":"oct","k":"!!"}`)},
		{"JWK oct empty k", abi.AlgHS256, abi.KeyJWK, []byte(`{"kty":"oct","k":""}`)},
		{"JWK alg mismatch oct", abi.AlgHS256, abi.KeyJWK, jwkOf(testSecret, "HS384")},
		{"JWK alg mismatch RSA", abi.AlgRS256, abi.KeyJWK, jwkOf(rsaPub, "PS256")},
		{"JWK alg mismatch EC", abi.AlgES256, abi.KeyJWK, jwkOf(p256, "ES384")},
		{"JWK RSA exponent too long", abi.AlgRS256, abi.KeyJWK, jwk(map[string]string{"kty": "RSA", "n": b64(rsaPub.N.Bytes()), "e": b64([]byte{1, 0, 0, 0, 1})})},
		{"JWK RSA exponent 0", abi.AlgRS256, abi.KeyJWK, jwk(map[string]string{"kty": "RSA", "n": b64(rsaPub.N.Bytes()), "e": "AA"})},
		// Weak keys (RFC 7518 §3.2; RSA exponents that sign nothing).
		{"JWK RSA exponent 1", abi.AlgRS256, abi.KeyJWK, jwk(map[string]string{"kty": "RSA", "n": b64(rsaPub.N.Bytes()), "e": "AQ"})},
		{"JWK RSA exponent 2", abi.AlgPS256, abi.KeyJWK, jwk(map[string]string{"kty": "RSA", "n": b64(rsaPub.N.Bytes()), "e": "Ag"})},
		{"JWK RSA exponent 65536", abi.AlgRS256, abi.KeyJWK, jwk(map[string]string{"kty": "RSA", "n": b64(rsaPub.N.Bytes()), "e": b64([]byte{1, 0, 0})})},
		{"RSA exponent 1 PKIX", abi.AlgRS256, abi.KeyPKIX, pkix(&rsa.PublicKey{N: rsaPub.N, E: 1})},
		{"RSA exponent 2 PKIX", abi.AlgRS512, abi.KeyPKIX, pkix(&rsa.PublicKey{N: rsaPub.N, E: 2})},
		{"RSA even modulus", abi.AlgRS256, abi.KeyPKIX, pkix(&rsa.PublicKey{N: new(big.Int).Lsh(rsaPub.N, 1), E: 65537})},
		{"HS256 secret of 1 byte", abi.AlgHS256, abi.KeyRaw, []byte("k")},
		{"HS256 secret of 31 bytes", abi.AlgHS256, abi.KeyRaw, testSecret[:31]},
		{"HS384 secret of 32 bytes", abi.AlgHS384, abi.KeyRaw, testSecret[:32]},
		{"HS512 secret of 48 bytes", abi.AlgHS512, abi.KeyRaw, testSecret[:48]},
		{"JWK HS256 secret of 1 byte", abi.AlgHS256, abi.KeyJWK, jwkOf([]byte("k"), "HS256")},
		{"JWK HS512 secret of 32 bytes", abi.AlgHS512, abi.KeyJWK, jwkOf(testSecret[:32], "")},
		{"JWK RSA as ES256", abi.AlgES256, abi.KeyJWK, jwkOf(rsaPub, "")},
		{"JWK EC P-256 as ES384", abi.AlgES384, abi.KeyJWK, jwkOf(p256, "")},
		{"JWK EC P-521", abi.AlgES256, abi.KeyJWK, jwk(map[string]string{"kty": "EC", "crv": "P-521", "x": b64(make([]byte, 66)), "y": b64(make([]byte, 66))})},
		{"JWK EC short x", abi.AlgES256, abi.KeyJWK, jwk(map[string]string{"kty": "EC", "crv": "P-256", "x": b64(ecRaw(p256)[2:33]), "y": b64(ecRaw(p256)[33:])})},
		{"JWK OKP X25519", abi.AlgEdDSA, abi.KeyJWK, jwk(map[string]string{"kty": "OKP", "crv": "X25519", "x": b64(edPub)})},
		{"JWK OKP as ES256", abi.AlgES256, abi.KeyJWK, jwkOf(edPub, "")},
		// A JWK names its key type: a public key is never an HMAC secret
		// (algorithm confusion), and a secret is never a public key.
		{"JWK OKP as HS256", abi.AlgHS256, abi.KeyJWK, jwkOf(edPub, "")},
		{"JWK EC as HS256", abi.AlgHS256, abi.KeyJWK, jwkOf(p256, "")},
		{"JWK RSA as HS512", abi.AlgHS512, abi.KeyJWK, jwkOf(rsaPub, "")},
		{"JWK oct as EdDSA", abi.AlgEdDSA, abi.KeyJWK, jwkOf([]byte(edPub), "")},
		{"JWK oct as ES256", abi.AlgES256, abi.KeyJWK, jwkOf(ecRaw(p256), "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := NewKeyring(nil)
			if h := ring.Register(tc.alg, tc.format, tc.data); h != abi.ErrInvalid {
				t.Fatalf("Register = %d, want ErrInvalid", h)
			}
		})
	}
}

// TestKeyringWeakKeyBounds: the least key_register takes is accepted.
func TestKeyringWeakKeyBounds(t *testing.T) {
	rsaPub := &testRSA().PublicKey
	ring := NewKeyring(nil)
	for _, tc := range []struct {
		name   string
		alg    abi.Alg
		format abi.KeyFormat
		data   []byte
	}{
		{"HS256, 32 bytes", abi.AlgHS256, abi.KeyRaw, testSecret[:32]},
		{"HS384, 48 bytes", abi.AlgHS384, abi.KeyRaw, testSecret[:48]},
		{"HS512, 64 bytes", abi.AlgHS512, abi.KeyJWK, jwkOf(testSecret[:64], "HS512")},
		{"RSA exponent 3", abi.AlgRS256, abi.KeyPKIX, pkix(&rsa.PublicKey{N: rsaPub.N, E: 3})},
		{"RSA exponent 3 as JWK", abi.AlgPS256, abi.KeyJWK, jwkOf(&rsa.PublicKey{N: rsaPub.N, E: 3}, "")},
	} {
		if h := ring.Register(tc.alg, tc.format, tc.data); h < 0 {
			t.Errorf("%s: Register = %d", tc.name, h)
		}
	}
}

func TestKeyringHandles(t *testing.T) {
	ring := NewKeyring(nil)
	rsaPub := &testRSA().PublicKey
	p256 := &testP256().PublicKey
	steps := []struct {
		name   string
		alg    abi.Alg
		format abi.KeyFormat
		data   []byte
		want   int32
	}{
		{"first", abi.AlgHS256, abi.KeyRaw, testSecret, 0},
		{"same again", abi.AlgHS256, abi.KeyRaw, testSecret, 0},
		{"same secret as JWK", abi.AlgHS256, abi.KeyJWK, jwkOf(testSecret, ""), 0},
		{"same secret, other alg", abi.AlgHS384, abi.KeyRaw, testSecret, 1},
		{"rsa", abi.AlgRS256, abi.KeyPKIX, pkix(rsaPub), 2},
		{"rsa as JWK", abi.AlgRS256, abi.KeyJWK, jwkOf(rsaPub, "RS256"), 2},
		{"rsa for PSS", abi.AlgPS256, abi.KeyPKIX, pkix(rsaPub), 3},
		{"ec raw", abi.AlgES256, abi.KeyRaw, ecRaw(p256), 4},
		{"ec as JWK (the same raw point)", abi.AlgES256, abi.KeyJWK, jwkOf(p256, ""), 4},
		{"refused", abi.AlgES384, abi.KeyRaw, ecRaw(p256), abi.ErrInvalid},
		{"next after a refusal", abi.AlgHS512, abi.KeyRaw, testSecret, 5},
	}
	for _, st := range steps {
		if h := ring.Register(st.alg, st.format, st.data); h != st.want {
			t.Errorf("%s: Register = %d, want %d", st.name, h, st.want)
		}
	}
}

func TestKeyringMaxKeys(t *testing.T) {
	ring := NewKeyring(nil)
	for i := range abi.MaxKeys {
		if h := ring.Register(abi.AlgHS256, abi.KeyRaw, secretN("secret", i)); h != int32(i) {
			t.Fatalf("key %d: handle %d", i, h)
		}
	}
	if h := ring.Register(abi.AlgHS256, abi.KeyRaw, secretN("one too many", 0)); h != abi.ErrTooLarge {
		t.Fatalf("key %d: Register = %d, want ErrTooLarge", abi.MaxKeys, h)
	}
	// A key already there is still found on a full ring.
	if h := ring.Register(abi.AlgHS256, abi.KeyRaw, secretN("secret", 7)); h != 7 {
		t.Fatalf("re-registering key 7 on a full ring = %d", h)
	}
	// Every handle verifies with its own secret.
	for _, i := range []int{0, 100, abi.MaxKeys - 1} {
		m := hmac.New(sha256.New, secretN("secret", i))
		m.Write([]byte("x"))
		if got, _ := ring.Verify(int32(i), []byte("x"), m.Sum(nil), nil); got != 1 {
			t.Errorf("handle %d does not verify its own key", i)
		}
		if got, _ := ring.Verify(int32((i+1)%abi.MaxKeys), []byte("x"), m.Sum(nil), nil); got != 0 {
			t.Errorf("handle %d verifies key %d's signature", (i+1)%abi.MaxKeys, i)
		}
	}
}

func TestKeyringUnknownHandles(t *testing.T) {
	empty := NewKeyring(nil)
	one := NewKeyring(nil)
	one.Register(abi.AlgHS256, abi.KeyRaw, testSecret)
	var none *Keyring
	for _, tc := range []struct {
		name string
		ring *Keyring
		h    int32
		want int32
	}{
		{"empty ring", empty, 0, abi.ErrNotFound},
		{"negative", one, -1, abi.ErrNotFound},
		{"one past the end", one, 1, abi.ErrNotFound},
		{"far past the end", one, 1 << 30, abi.ErrNotFound},
		{"nil ring", none, 0, abi.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := tc.ring.Verify(tc.h, []byte("m"), []byte("s"), nil); got != tc.want {
				t.Fatalf("Verify = %d, want %d", got, tc.want)
			}
		})
	}
	if h := none.Register(abi.AlgHS256, abi.KeyRaw, testSecret); h != abi.ErrUnavailable {
		t.Fatalf("Register on a nil ring = %d", h)
	}
}

// cacheEntries lists the verification cache's entries.
func cacheEntries(v *VerifyCache) map[[32]byte]bool {
	v.c.CleanUp()
	out := map[[32]byte]bool{}
	for k, ok := range v.c.All() {
		out[k] = ok
	}
	return out
}

// TestVerifyCacheUsed shows an asymmetric result is served from the cache:
// after the first check, the cached result is forged to its opposite and the
// second Verify returns the forgery, which only a cache hit can do.
func TestVerifyCacheUsed(t *testing.T) {
	msg := []byte("header.payload")
	for _, alg := range []abi.Alg{abi.AlgRS256, abi.AlgPS384, abi.AlgES256, abi.AlgES384, abi.AlgEdDSA} {
		t.Run(abi.AlgName(alg), func(t *testing.T) {
			cache := NewVerifyCache(64)
			ring := NewKeyring(cache)
			kf := keyForms(alg)[0]
			h := ring.Register(alg, kf.format, kf.data)
			sig := sign(t, alg, msg)
			bad := flip(sig, 5)
			if got, _ := ring.Verify(h, msg, sig, nil); got != 1 {
				t.Fatalf("first Verify = %d", got)
			}
			if got, _ := ring.Verify(h, msg, bad, nil); got != 0 {
				t.Fatalf("first Verify of a bad signature = %d", got)
			}
			entries := cacheEntries(cache)
			if len(entries) != 2 {
				t.Fatalf("cache holds %d results, want 2 (one valid, one invalid)", len(entries))
			}
			for k, ok := range entries {
				cache.c.Set(k, !ok) // forge
			}
			if got, _ := ring.Verify(h, msg, sig, nil); got != 0 {
				t.Fatalf("second Verify = %d: the valid signature was checked again, not looked up", got)
			}
			if got, _ := ring.Verify(h, msg, bad, nil); got != 1 {
				t.Fatalf("second Verify of the bad signature = %d: not looked up", got)
			}
		})
	}
}

// TestVerifyCacheKeys: results are keyed by key, message and signature, with
// the message length in the key so that moving bytes between message and
// signature is a different entry.
func TestVerifyCacheKeys(t *testing.T) {
	cache := NewVerifyCache(64)
	ring := NewKeyring(cache)
	h1 := ring.Register(abi.AlgEdDSA, abi.KeyRaw, testEd().Public().(ed25519.PublicKey))
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	h2 := ring.Register(abi.AlgEdDSA, abi.KeyRaw, pub2)
	sig := sign(t, abi.AlgEdDSA, []byte("ab"))
	calls := []struct {
		h        int32
		msg, sig []byte
		want     int32
	}{
		{h1, []byte("ab"), sig, 1},
		{h2, []byte("ab"), sig, 0},                                      // other key
		{h1, []byte("a"), append([]byte("b"), sig...), 0},               // "a" | "b"+sig
		{h1, []byte("ab"), sig, 1},                                      // repeat: no new entry
		{h1, append([]byte("ab"), sig[:1]...), sig[1:], 0},              // "ab"+sig[0] | sig[1:]
		{h2, append([]byte("ab"), sig[:1]...), sig[1:], 0},              // and with the other key
		{h1, []byte("ab"), append(bytes.Clone(sig[:63]), sig[63]^1), 0}, // last bit
	}
	for i, c := range calls {
		if got, _ := ring.Verify(c.h, c.msg, c.sig, nil); got != c.want {
			t.Errorf("call %d: Verify = %d, want %d", i, got, c.want)
		}
	}
	if n := len(cacheEntries(cache)); n != len(calls)-1 {
		t.Fatalf("cache holds %d results, want %d", n, len(calls)-1)
	}
	// Another ring sharing the cache finds the same key's results.
	other := NewKeyring(cache)
	oh := other.Register(abi.AlgEdDSA, abi.KeyRaw, testEd().Public().(ed25519.PublicKey))
	if got, _ := other.Verify(oh, []byte("ab"), sig, nil); got != 1 {
		t.Fatalf("Verify on a second ring = %d", got)
	}
	if n := len(cacheEntries(cache)); n != len(calls)-1 {
		t.Fatalf("a second ring's hit added an entry: %d", n)
	}
}

func TestVerifyCacheNeverForHMAC(t *testing.T) {
	cache := NewVerifyCache(64)
	ring := NewKeyring(cache)
	for _, alg := range []abi.Alg{abi.AlgHS256, abi.AlgHS384, abi.AlgHS512} {
		h := ring.Register(alg, abi.KeyRaw, testSecret)
		msg := []byte("m")
		sig := sign(t, alg, msg)
		for range 3 {
			if got, _ := ring.Verify(h, msg, sig, nil); got != 1 {
				t.Fatalf("%s: Verify = %d", abi.AlgName(alg), got)
			}
			if got, _ := ring.Verify(h, msg, flip(sig, 0), nil); got != 0 {
				t.Fatalf("%s: Verify of a bad MAC = %d", abi.AlgName(alg), got)
			}
		}
	}
	if n := len(cacheEntries(cache)); n != 0 {
		t.Fatalf("HMAC results were cached: %d entries", n)
	}
}

func TestVerifyCacheBound(t *testing.T) {
	cache := NewVerifyCache(16)
	ring := NewKeyring(cache)
	h := ring.Register(abi.AlgEdDSA, abi.KeyRaw, testEd().Public().(ed25519.PublicKey))
	for i := range 500 {
		ring.Verify(h, []byte(strconv.Itoa(i)), make([]byte, 64), nil)
	}
	cache.c.CleanUp()
	if n := cache.c.EstimatedSize(); n > 16 {
		t.Fatalf("cache of 16 holds %d", n)
	}
}

// TestKeyringScratch: Verify reuses the scratch memory it is given.
func TestKeyringScratch(t *testing.T) {
	ring := NewKeyring(NewVerifyCache(16))
	hs := ring.Register(abi.AlgHS512, abi.KeyRaw, testSecret)
	ed := ring.Register(abi.AlgEdDSA, abi.KeyRaw, testEd().Public().(ed25519.PublicKey))
	scratch := make([]byte, 0, 4096)
	msg := []byte("m")
	r, out := ring.Verify(hs, msg, sign(t, abi.AlgHS512, msg), scratch)
	if r != 1 || &out[:1][0] != &scratch[:1][0] {
		t.Fatalf("HMAC: Verify = %d, scratch reused: %v", r, &out[:1][0] == &scratch[:1][0])
	}
	r, out = ring.Verify(ed, msg, sign(t, abi.AlgEdDSA, msg), out)
	if r != 1 || &out[:1][0] != &scratch[:1][0] {
		t.Fatalf("EdDSA: Verify = %d, scratch reused: %v", r, &out[:1][0] == &scratch[:1][0])
	}
}

// TestKeyringConcurrent verifies from many goroutines (meant for -race):
// HMAC through the pool of hashes, asymmetric keys through the cache, while
// another goroutine registers keys (copy on write).
func TestKeyringConcurrent(t *testing.T) {
	ring := NewKeyring(NewVerifyCache(128))
	algs := []abi.Alg{abi.AlgHS256, abi.AlgHS384, abi.AlgHS512, abi.AlgES256, abi.AlgEdDSA}
	type job struct {
		h        int32
		msg, sig []byte
	}
	var jobs []job
	for _, alg := range algs {
		kf := keyForms(alg)[0]
		h := ring.Register(alg, kf.format, kf.data)
		for i := range 4 {
			msg := []byte(fmt.Sprintf("%s message %d", abi.AlgName(alg), i))
			jobs = append(jobs, job{h, msg, sign(t, alg, msg)})
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 100 {
			ring.Register(abi.AlgHS256, abi.KeyRaw, secretN("extra", i))
		}
	})
	for w := range 8 {
		wg.Go(func() {
			var scratch []byte
			var got int32
			for i := range 300 {
				j := jobs[(i+w)%len(jobs)]
				sig := j.sig
				want := int32(1)
				if i%3 == 0 {
					sig, want = flip(sig, i), 0
				}
				if got, scratch = ring.Verify(j.h, j.msg, sig, scratch); got != want {
					t.Errorf("worker %d: Verify(%d, %q) = %d, want %d", w, j.h, j.msg, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDigest(t *testing.T) {
	sha256abc, _ := hex.DecodeString("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	s384 := sha512.Sum384([]byte("abc"))
	s512 := sha512.Sum512([]byte("abc"))
	for _, tc := range []struct {
		name   string
		alg    abi.Digest
		bufLen int
		want   int32
		out    []byte
	}{
		{"sha256", abi.DigestSHA256, 64, 32, sha256abc},
		{"sha384", abi.DigestSHA384, 64, 48, s384[:]},
		{"sha512", abi.DigestSHA512, 64, 64, s512[:]},
		{"sha256 probe", abi.DigestSHA256, 0, 32, nil},
		{"sha512 short buffer", abi.DigestSHA512, 10, 64, s512[:10]},
		{"unknown 0", 0, 64, abi.ErrInvalid, nil},
		{"unknown 5", 5, 64, abi.ErrInvalid, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Call
			c.Reset(&Env{}, abi.PhaseConfigure, nil)
			buf := make([]byte, tc.bufLen)
			got := c.Digest(tc.alg, []byte("abc"), buf)
			if got != tc.want {
				t.Fatalf("Digest = %d, want %d", got, tc.want)
			}
			if !bytes.Equal(buf[:len(tc.out)], tc.out) {
				t.Fatalf("buf = %x, want %x", buf[:len(tc.out)], tc.out)
			}
			if got > 0 && int(got) == abi.DigestSize(tc.alg) && len(buf) > int(got) && !bytes.Equal(buf[got:], make([]byte, len(buf)-int(got))) {
				t.Fatal("Digest wrote past the digest")
			}
		})
	}
}

// TestDigestKeyed: the keyed digest is stable within the process, tells
// messages apart, and is neither a plain hash nor an HMAC under a key
// anyone could guess.
func TestDigestKeyed(t *testing.T) {
	var c Call
	c.Reset(&Env{}, abi.PhaseRequest, nil)
	sum := func(msg string) []byte {
		buf := make([]byte, 40)
		if n := c.Digest(abi.DigestKeyed, []byte(msg), buf); n != 32 || abi.DigestSize(abi.DigestKeyed) != 32 {
			t.Fatalf("Digest = %d", n)
		}
		if !bytes.Equal(buf[32:], make([]byte, 8)) {
			t.Fatal("Digest wrote past the digest")
		}
		return buf[:32]
	}
	a, again, b := sum("key-1"), sum("key-1"), sum("key-2")
	if !bytes.Equal(a, again) || bytes.Equal(a, b) {
		t.Fatalf("key-1 %x then %x, key-2 %x", a, again, b)
	}
	plain := sha256.Sum256([]byte("key-1"))
	zero := hmac.New(sha256.New, nil)
	zero.Write([]byte("key-1"))
	if bytes.Equal(a, plain[:]) || bytes.Equal(a, zero.Sum(nil)) {
		t.Fatal("the keyed digest is a guessable hash")
	}
	if keyedSecret == [32]byte{} {
		t.Fatal("no secret drawn")
	}
}
