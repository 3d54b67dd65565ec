package abi

import (
	"errors"
	"math/bits"
	"strconv"
)

// The key strength key_register requires. The host refuses weaker keys
// with ErrInvalid; a guest that wants to say which rule a key broke (an
// operator reads that error when a config is refused) checks with the
// same functions before it registers.

// MinRSABits is the smallest RSA modulus key_register accepts.
const MinRSABits = 2048

// MinHMACKeyLen returns the shortest secret key_register accepts for alg:
// the size of its hash output, as RFC 7518 §3.2 requires (32 bytes for
// HS256, 48 for HS384, 64 for HS512); 0 for an algorithm that is not HMAC.
func MinHMACKeyLen(alg Alg) int {
	switch alg {
	case AlgHS256:
		return 32
	case AlgHS384:
		return 48
	case AlgHS512:
		return 64
	}
	return 0
}

// CheckHMACKey returns an error naming the rule when a secret of n bytes
// is too short for alg.
func CheckHMACKey(alg Alg, n int) error {
	if least := MinHMACKeyLen(alg); n < least {
		return errors.New(AlgName(alg) + " needs a secret of at least " + strconv.Itoa(least) +
			" bytes (RFC 7518 §3.2), this one has " + strconv.Itoa(n))
	}
	return nil
}

// CheckRSAKey returns an error naming the rule when an RSA public key with
// modulus n (big-endian) and public exponent e is refused: a modulus under
// MinRSABits or even, an exponent under 3 or even. Exponents 1 and 2 make
// no signature scheme (1 makes every message its own signature).
func CheckRSAKey(n []byte, e uint64) error {
	for len(n) > 0 && n[0] == 0 {
		n = n[1:]
	}
	size := 0
	if len(n) > 0 {
		size = len(n)*8 - bits.LeadingZeros8(n[0])
	}
	switch {
	case size < MinRSABits:
		return errors.New("RSA modulus of " + strconv.Itoa(size) + " bits, want at least " + strconv.Itoa(MinRSABits))
	case n[len(n)-1]&1 == 0:
		return errors.New("RSA modulus is even")
	case e < 3 || e&1 == 0:
		return errors.New("RSA exponent " + strconv.FormatUint(e, 10) + ": want an odd number of at least 3 (65537 is usual)")
	}
	return nil
}
