package sdk

import (
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

// Alg is a signature algorithm (JWA names): abi.AlgHS256 and so on.
type Alg = abi.Alg

// KeyFormat says how key bytes are encoded: abi.KeyRaw, abi.KeyPKIX, abi.KeyJWK.
type KeyFormat = abi.KeyFormat

// Key is a verification key held by the host. Verification runs natively in
// the host, which also caches asymmetric results, so a token seen before
// costs a hash and a lookup.
type Key struct {
	handle int32 // the host's handle + 1: the zero Key verifies nothing
	alg    Alg
}

// RegisterKey registers a key for alg. Call it from Configure.
func RegisterKey(alg Alg, format KeyFormat, key []byte) (Key, error) {
	h := hostcall.KeyRegister(alg, format, key)
	if h < 0 {
		return Key{}, Errno(h)
	}
	return Key{handle: h + 1, alg: alg}, nil
}

// Alg is the algorithm the key was registered for.
func (k Key) Alg() Alg { return k.alg }

// Verify reports whether sig is a valid signature of msg.
func (k Key) Verify(msg, sig []byte) bool {
	return k.handle > 0 && hostcall.Verify(k.handle-1, msg, sig) == 1
}

// Digest appends the digest of msg (abi.DigestSHA256, ...) to dst.
func Digest(alg abi.Digest, dst, msg []byte) []byte {
	n := abi.DigestSize(alg)
	if n == 0 {
		return dst
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	hostcall.Digest(alg, msg, dst[start:])
	return dst
}
