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
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"sync"

	"github.com/maypok86/otter/v2"

	"github.com/talowa/wedge/wasm/abi"
)

// Keyring holds the verification keys of one plugin version, and its token
// policies with their verified-token cache (token.go).
//
// # Why
//
// Keys are registered by every instance's configure call, so the same key
// arrives once per instance. Register deduplicates by fingerprint, which makes
// handles identical across instances of a version (configure is
// deterministic) and keeps the ring bounded.
type Keyring struct {
	mu    sync.Mutex
	keys  handles[*key]
	cache *VerifyCache

	policies handles[*tokenPolicy]
	tokens   *tokenCache // made with the first policy, under mu
}

// NewKeyring returns an empty key ring that caches asymmetric verification
// results in cache (which may be nil, and may be shared between rings).
func NewKeyring(cache *VerifyCache) *Keyring {
	return &Keyring{cache: cache}
}

type key struct {
	alg  abi.Alg
	fp   [32]byte // sha256 over alg and key material: the verification cache key prefix
	hmac sync.Pool
	pub  crypto.PublicKey
}

// Register adds a key for alg, returning its handle or an Errno.
func (k *Keyring) Register(alg, format abi.Alg, data []byte) int32 {
	if k == nil {
		return abi.ErrUnavailable
	}
	kk, err := parseKey(alg, format, data)
	if err != nil {
		return abi.ErrInvalid
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	cur := k.keys.all()
	for i, have := range cur {
		if have.fp == kk.fp {
			return int32(i)
		}
	}
	if len(cur) >= abi.MaxKeys {
		return abi.ErrTooLarge
	}
	return k.keys.add(kk)
}

// Verify checks sig over msg with key handle h. scratch is reusable memory
// (returned grown), so a call allocates nothing for HMAC keys or cache hits.
func (k *Keyring) Verify(h int32, msg, sig, scratch []byte) (int32, []byte) {
	if k == nil {
		return abi.ErrUnavailable, scratch
	}
	kk, found := k.keys.get(h)
	if !found {
		return abi.ErrNotFound, scratch
	}
	if kk.pub == nil {
		return kk.verifyHMAC(msg, sig, scratch)
	}
	// Asymmetric verification costs 30 us to 1 ms; a hash of the input and a
	// cache lookup cost well under a microsecond for a typical JWT. HMAC skips
	// the cache: its check is itself just two hashes.
	// The input is hashed in a stream, not gathered first: a guest's
	// megabyte message must not become megabytes the instance keeps.
	hs := sha256Pool.Get().(hash.Hash)
	hs.Reset()
	hs.Write(kk.fp[:])
	scratch = binary.BigEndian.AppendUint32(scratch[:0], uint32(len(msg)))
	hs.Write(scratch)
	hs.Write(msg)
	hs.Write(sig)
	var ck [32]byte
	scratch = hs.Sum(scratch[:0])
	copy(ck[:], scratch)
	sha256Pool.Put(hs)
	if ok, hit := k.cache.get(ck); hit {
		return b2i(ok), scratch
	}
	ok := kk.verifyPublic(msg, sig)
	k.cache.put(ck, ok)
	return b2i(ok), scratch
}

var sha256Pool = sync.Pool{New: func() any { return sha256.New() }}

func b2i(ok bool) int32 {
	if ok {
		return 1
	}
	return 0
}

func (kk *key) verifyHMAC(msg, sig, scratch []byte) (int32, []byte) {
	m := kk.hmac.Get().(hash.Hash)
	m.Reset()
	m.Write(msg)
	scratch = m.Sum(scratch[:0])
	kk.hmac.Put(m)
	return b2i(hmac.Equal(scratch, sig)), scratch
}

func (kk *key) verifyPublic(msg, sig []byte) bool {
	h, sum := algHash(kk.alg), hashSum(kk.alg, msg)
	switch pub := kk.pub.(type) {
	case *rsa.PublicKey:
		if kk.alg >= abi.AlgPS256 && kk.alg <= abi.AlgPS512 {
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
			return rsa.VerifyPSS(pub, h, sum, sig, opts) == nil
		}
		return rsa.VerifyPKCS1v15(pub, h, sum, sig) == nil
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(pub, sum, r, s)
	case ed25519.PublicKey:
		return ed25519.Verify(pub, msg, sig)
	}
	return false
}

func algHash(a abi.Alg) crypto.Hash {
	switch a {
	case abi.AlgHS256, abi.AlgRS256, abi.AlgPS256, abi.AlgES256:
		return crypto.SHA256
	case abi.AlgHS384, abi.AlgRS384, abi.AlgPS384, abi.AlgES384:
		return crypto.SHA384
	case abi.AlgHS512, abi.AlgRS512, abi.AlgPS512:
		return crypto.SHA512
	}
	return 0
}

func hashSum(a abi.Alg, msg []byte) []byte {
	switch algHash(a) {
	case crypto.SHA256:
		s := sha256.Sum256(msg)
		return s[:]
	case crypto.SHA384:
		s := sha512.Sum384(msg)
		return s[:]
	case crypto.SHA512:
		s := sha512.Sum512(msg)
		return s[:]
	}
	return nil
}

// keyedDigests are HMAC-SHA256 states under the secret of
// abi.DigestKeyed: drawn once per process, never handed out.
var keyedDigests = sync.Pool{New: func() any { return hmac.New(sha256.New, keyedSecret[:]) }}

var keyedSecret = func() (k [32]byte) {
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (Go 1.24+)
	return k
}()

// digest implements the digest host function over scratch memory.
func digest(alg abi.Digest, msg, buf, scratch []byte) (int32, []byte) {
	switch alg {
	case abi.DigestSHA256:
		s := sha256.Sum256(msg)
		scratch = append(scratch[:0], s[:]...)
	case abi.DigestKeyed:
		m := keyedDigests.Get().(hash.Hash)
		m.Reset()
		m.Write(msg)
		scratch = m.Sum(scratch[:0])
		keyedDigests.Put(m)
	case abi.DigestSHA384:
		s := sha512.Sum384(msg)
		scratch = append(scratch[:0], s[:]...)
	case abi.DigestSHA512:
		s := sha512.Sum512(msg)
		scratch = append(scratch[:0], s[:]...)
	default:
		return abi.ErrInvalid, scratch
	}
	return copyOut(buf, scratch), scratch
}

func parseKey(alg abi.Alg, format abi.KeyFormat, data []byte) (*key, error) {
	if abi.AlgName(alg) == "" {
		return nil, fmt.Errorf("host: unknown algorithm %d", alg)
	}
	kk := &key{alg: alg}
	var material []byte
	switch format {
	case abi.KeyRaw:
		material = data
	case abi.KeyPKIX:
		material = data
	case abi.KeyJWK:
		var err error
		if material, format, err = jwkMaterial(alg, data); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("host: unknown key format %d", format)
	}
	if alg <= abi.AlgHS512 {
		if format != abi.KeyRaw {
			return nil, errors.New("host: an HMAC key is a raw secret")
		}
		if err := abi.CheckHMACKey(alg, len(material)); err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
		secret := bytes.Clone(material)
		newHash := map[abi.Alg]func() hash.Hash{abi.AlgHS256: sha256.New, abi.AlgHS384: sha512.New384, abi.AlgHS512: sha512.New}[alg]
		kk.hmac.New = func() any { return hmac.New(newHash, secret) }
	} else {
		pub, err := parsePublic(alg, format, material)
		if err != nil {
			return nil, err
		}
		kk.pub = pub
	}
	fp := sha256.New()
	fp.Write([]byte{byte(alg)})
	fp.Write(material)
	fp.Sum(kk.fp[:0])
	return kk, nil
}

func parsePublic(alg abi.Alg, format abi.KeyFormat, data []byte) (crypto.PublicKey, error) {
	var pub crypto.PublicKey
	switch format {
	case abi.KeyPKIX:
		p, err := x509.ParsePKIXPublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("host: parse public key: %w", err)
		}
		pub = p
	case abi.KeyRaw:
		switch {
		case alg == abi.AlgEdDSA && len(data) == ed25519.PublicKeySize:
			pub = ed25519.PublicKey(bytes.Clone(data))
		case alg == abi.AlgES256 || alg == abi.AlgES384:
			p, err := ecdsa.ParseUncompressedPublicKey(curveOf(alg), data)
			if err != nil {
				return nil, fmt.Errorf("host: parse EC point: %w", err)
			}
			pub = p
		default:
			return nil, errors.New("host: raw key format does not fit the algorithm")
		}
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if alg < abi.AlgRS256 || alg > abi.AlgPS512 {
			return nil, errors.New("host: RSA key for a non-RSA algorithm")
		}
		if p.E < 0 {
			return nil, errors.New("host: RSA exponent is negative")
		}
		if err := abi.CheckRSAKey(p.N.Bytes(), uint64(p.E)); err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
	case *ecdsa.PublicKey:
		if p.Curve != curveOf(alg) {
			return nil, errors.New("host: EC key on the wrong curve for the algorithm")
		}
	case ed25519.PublicKey:
		if alg != abi.AlgEdDSA {
			return nil, errors.New("host: Ed25519 key for another algorithm")
		}
	default:
		return nil, errors.New("host: unsupported key type")
	}
	return pub, nil
}

func curveOf(alg abi.Alg) elliptic.Curve {
	switch alg {
	case abi.AlgES256:
		return elliptic.P256()
	case abi.AlgES384:
		return elliptic.P384()
	}
	return nil
}

// jwkMaterial turns one JWK (RFC 7517, 7518, 8037) into raw or PKIX key bytes.
// It runs at configure time only, so encoding/json is affordable here.
func jwkMaterial(alg abi.Alg, data []byte) ([]byte, abi.KeyFormat, error) {
	var j struct {
		Kty, Alg, Crv, K, N, E, X, Y string
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, 0, fmt.Errorf("host: parse JWK: %w", err)
	}
	if j.Alg != "" && j.Alg != abi.AlgName(alg) {
		return nil, 0, fmt.Errorf("host: JWK is for %s, registered as %s", j.Alg, abi.AlgName(alg))
	}
	// The key type must fit the algorithm's family: otherwise an EC or OKP
	// public key would pass as an HMAC secret (algorithm confusion), and a
	// secret as a raw public key.
	if want := jwkKty(alg); j.Kty != want {
		return nil, 0, fmt.Errorf("host: JWK of kty %q registered as %s, want kty %q", j.Kty, abi.AlgName(alg), want)
	}
	b64 := base64.RawURLEncoding.DecodeString
	switch j.Kty {
	case "oct":
		k, err := b64(j.K)
		return k, abi.KeyRaw, err
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, 0, fmt.Errorf("host: bad RSA JWK: %w", err)
		}
		if len(e) > 4 {
			return nil, 0, errors.New("host: bad RSA JWK: exponent longer than 4 bytes")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		der, err := x509.MarshalPKIXPublicKey(pub)
		return der, abi.KeyPKIX, err
	case "EC":
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, 0, fmt.Errorf("host: bad EC JWK: %w", err)
		}
		size := map[string]int{"P-256": 32, "P-384": 48}[j.Crv]
		if size == 0 || len(x) != size || len(y) != size {
			return nil, 0, fmt.Errorf("host: unsupported EC JWK curve %q", j.Crv)
		}
		return append(append([]byte{4}, x...), y...), abi.KeyRaw, nil
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, 0, fmt.Errorf("host: unsupported OKP curve %q", j.Crv)
		}
		x, err := b64(j.X)
		return x, abi.KeyRaw, err
	}
	return nil, 0, fmt.Errorf("host: unsupported JWK kty %q", j.Kty)
}

// jwkKty is the JWK key type of alg's family.
func jwkKty(alg abi.Alg) string {
	switch {
	case alg <= abi.AlgHS512:
		return "oct"
	case alg <= abi.AlgPS512:
		return "RSA"
	case alg <= abi.AlgES384:
		return "EC"
	}
	return "OKP"
}

// VerifyCache remembers asymmetric signature verification results, keyed by a
// sha256 over key fingerprint, message and signature. It is bounded and safe
// for concurrent use; one cache serves every plugin version of a runtime.
type VerifyCache struct {
	c *otter.Cache[[32]byte, bool]
}

// NewVerifyCache returns a cache holding up to entries results.
func NewVerifyCache(entries int) *VerifyCache {
	return &VerifyCache{c: otter.Must(&otter.Options[[32]byte, bool]{MaximumSize: entries})}
}

func (v *VerifyCache) get(k [32]byte) (ok, hit bool) {
	if v == nil {
		return false, false
	}
	return v.c.GetIfPresent(k)
}

func (v *VerifyCache) put(k [32]byte, ok bool) {
	if v != nil {
		v.c.Set(k, ok)
	}
}
