package abi_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
)

func workedPolicy() abi.TokenPolicy {
	return abi.TokenPolicy{
		Keys: []abi.TokenKey{{Key: 2, Kid: []byte("k1")}}, Audiences: [][]byte{[]byte("api")},
		Leeway: 30, RequireExpiry: true, Claims: [][]byte{[]byte("sub")},
	}
}

// TestTokenPolicyWorkedValue recomputes the spec's worked encoding.
func TestTokenPolicyWorkedValue(t *testing.T) {
	p := workedPolicy()
	got := hex.EncodeToString(p.Append(nil))
	const want = "01" + "1e000000" + "0100" + "02000000" + "0200" + "6b31" + "0000" + "0100" + "0300" + "617069" + "0100" + "0300" + "737562"
	if got != want {
		t.Fatalf("encoding %s, want %s", got, want)
	}
	spec := readSpec(t)
	if !strings.Contains(spec, "`01 1e000000 0100 02000000 0200 6b31 0000 0100 0300 617069 0100 0300 737562`") {
		t.Error("README.md lacks the worked token policy encoding")
	}
	for v := abi.TokenValid; v <= abi.TokenWrongAudience; v++ {
		if row := "| `" + abi.TokenVerdictName(v) + "` | " + strconv.Itoa(int(v)) + " |"; !strings.Contains(spec, row) {
			t.Errorf("README.md lacks the verdict row %q", row)
		}
	}
}

// TestParseTokenPolicy round-trips policies and refuses malformed specs.
func TestParseTokenPolicy(t *testing.T) {
	for _, p := range []abi.TokenPolicy{
		workedPolicy(),
		{},
		{Issuer: []byte("https://iss"), Claims: [][]byte{[]byte("sub"), []byte("scope")}, Keys: []abi.TokenKey{{Key: 0}, {Key: 1, Kid: []byte("x")}}},
	} {
		got, err := abi.ParseTokenPolicy(p.Append(nil))
		if err != nil {
			t.Fatalf("parse %+v: %v", p, err)
		}
		if !bytes.Equal(got.Append(nil), p.Append(nil)) {
			t.Fatalf("round trip %+v -> %+v", p, got)
		}
	}
	good := workedPolicy()
	spec := good.Append(nil)
	long := workedPolicy()
	long.Issuer = bytes.Repeat([]byte("i"), 1025)
	many := workedPolicy()
	for range abi.MaxTokenClaims + 1 {
		many.Claims = append(many.Claims, []byte("c"))
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"truncated":      spec[:len(spec)-1],
		"trailing":       append(bytes.Clone(spec), 0),
		"unknown flags":  append([]byte{3}, spec[1:]...),
		"leeway":         append([]byte{1, 0x11, 0x0e, 0, 0}, spec[5:]...), // 3601 s
		"long item":      long.Append(nil),
		"too many items": many.Append(nil),
		"empty claim":    (&abi.TokenPolicy{Claims: [][]byte{nil}}).Append(nil),
	} {
		if _, err := abi.ParseTokenPolicy(b); !errors.Is(err, abi.ErrTokenPolicy) {
			t.Errorf("%s: err %v, want ErrTokenPolicy", name, err)
		}
	}
}

// FuzzParseTokenPolicy: any bytes decode or fail cleanly, and what decodes
// encodes back to the same bytes.
func FuzzParseTokenPolicy(f *testing.F) {
	p := workedPolicy()
	f.Add(p.Append(nil))
	f.Add((&abi.TokenPolicy{}).Append(nil))
	f.Add([]byte{1, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := abi.ParseTokenPolicy(b)
		if err != nil {
			if !errors.Is(err, abi.ErrTokenPolicy) {
				t.Fatalf("error %v does not wrap ErrTokenPolicy", err)
			}
			return
		}
		if enc := p.Append(nil); !bytes.Equal(enc, b) {
			t.Fatalf("%x decodes to %+v, which encodes to %x", b, p, enc)
		}
	})
}
