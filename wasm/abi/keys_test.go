package abi_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
)

func TestCheckHMACKey(t *testing.T) {
	for _, tc := range []struct {
		alg  abi.Alg
		n    int
		want string // "" for accepted
	}{
		{abi.AlgHS256, 32, ""}, {abi.AlgHS256, 64, ""}, {abi.AlgHS384, 48, ""}, {abi.AlgHS512, 64, ""},
		{abi.AlgHS256, 1, "HS256 needs a secret of at least 32 bytes (RFC 7518 §3.2), this one has 1"},
		{abi.AlgHS256, 31, "at least 32 bytes"},
		{abi.AlgHS384, 32, "HS384 needs a secret of at least 48 bytes"},
		{abi.AlgHS512, 48, "HS512 needs a secret of at least 64 bytes"},
		{abi.AlgHS256, 0, "this one has 0"},
		{abi.AlgRS256, 0, ""}, // not HMAC: no rule here
	} {
		err := abi.CheckHMACKey(tc.alg, tc.n)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s, %d bytes: %v, want %q", abi.AlgName(tc.alg), tc.n, err, tc.want)
		}
	}
}

func TestCheckRSAKey(t *testing.T) {
	odd := func(bits int) []byte {
		n := bytes.Repeat([]byte{0xff}, bits/8)
		return n
	}
	for _, tc := range []struct {
		name string
		n    []byte
		e    uint64
		want string
	}{
		{"2048, 65537", odd(2048), 65537, ""},
		{"2048, 3", odd(2048), 3, ""},
		{"4096 with a leading zero byte", append([]byte{0}, odd(4096)...), 65537, ""},
		{"exponent 1", odd(2048), 1, "RSA exponent 1: want an odd number of at least 3"},
		{"exponent 2", odd(2048), 2, "RSA exponent 2"},
		{"exponent 0", odd(2048), 0, "RSA exponent 0"},
		{"even exponent", odd(2048), 65536, "RSA exponent 65536"},
		{"1024 bits", odd(1024), 65537, "RSA modulus of 1024 bits, want at least 2048"},
		{"2047 bits", append([]byte{0x7f}, odd(2040)...), 65537, "RSA modulus of 2047 bits"},
		{"even modulus", append(odd(2040), 0xfe), 65537, "RSA modulus is even"},
		{"no modulus", nil, 65537, "RSA modulus of 0 bits"},
	} {
		err := abi.CheckRSAKey(tc.n, tc.e)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
