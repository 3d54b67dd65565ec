package jwstest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

// TestSignVerifies checks each family's signature with the standard
// library's verifier, through the public JWK: a signer and a JWK that
// disagree with the standard would make every test built on them wrong.
func TestSignVerifies(t *testing.T) {
	msg := []byte("header.payload")
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 64)
	rand.Read(secret)
	dec := func(m map[string]any, k string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(m[k].(string))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	sig, err := Sign("HS512", secret, msg)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha512.New, dec(JWK(secret, "", "HS512"), "k"))
	mac.Write(msg)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		t.Error("HS512: not the HMAC-SHA512 of the JWK's secret")
	}

	j := JWK(rk, "r1", "RS256")
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(dec(j, "n")), E: int(new(big.Int).SetBytes(dec(j, "e")).Int64())}
	if j["kid"] != "r1" || j["alg"] != "RS256" {
		t.Errorf("JWK members %v, want kid r1 and alg RS256", j)
	}
	for _, alg := range []string{"RS256", "PS384"} {
		sig, err := Sign(alg, rk, msg)
		if err != nil {
			t.Fatal(err)
		}
		h, newHash := Hash(alg)
		d := newHash()
		d.Write(msg)
		if alg[0] == 'P' {
			err = rsa.VerifyPSS(pub, h, d.Sum(nil), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(pub, h, d.Sum(nil), sig)
		}
		if err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}

	j = JWK(&ek.PublicKey, "", "")
	if j["crv"] != "P-384" || len(dec(j, "x")) != 48 || len(dec(j, "y")) != 48 {
		t.Errorf("EC JWK %v, want P-384 with 48-byte coordinates", j)
	}
	sig, err = Sign("ES384", ek, msg)
	if err != nil {
		t.Fatal(err)
	}
	d := sha512.Sum384(msg)
	if len(sig) != 96 || !ecdsa.Verify(&ek.PublicKey, d[:], new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
		t.Error("ES384: not r||s of 96 bytes that verifies")
	}

	sig, err = Sign("EdDSA", edk, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(dec(JWK(edk, "", ""), "x"), msg, sig) {
		t.Error("EdDSA: does not verify under the JWK's x")
	}

	if _, err := Sign("RS256", "not a key", msg); err == nil {
		t.Error("a string signed")
	}
}

// TestUserToken holds a token's parts to what an issuer sends: the header
// and claims as JSON, the HMAC of both under the secret.
func TestUserToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	parts := strings.Split(UserToken(secret, "ada"), ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	var hdr, claims map[string]any
	for i, v := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if hdr["alg"] != "HS256" || hdr["typ"] != "JWT" || claims["sub"] != "ada" || claims["exp"].(float64)-claims["iat"].(float64) != 3600 {
		t.Fatalf("header %v, claims %v", hdr, claims)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if parts[2] != base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatal("signature is not the HMAC-SHA256 of header.claims")
	}
}
