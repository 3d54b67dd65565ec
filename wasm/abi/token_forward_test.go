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

func forwardPolicy() abi.TokenPolicy {
	return abi.TokenPolicy{Forwards: []abi.TokenForward{
		{Name: []byte("s"), Claims: [][]byte{[]byte("scope"), []byte("scp")}},
		{Name: []byte("m"), Value: []byte("jwt")},
	}}
}

// TestTokenForwardsWorkedValue recomputes the spec's worked encoding of a
// policy with forwards, and checks the spec lists the forward verdicts.
func TestTokenForwardsWorkedValue(t *testing.T) {
	p := forwardPolicy()
	got := hex.EncodeToString(p.Append(nil))
	const want = "02" + "00000000" + "0000" + "0000" + "0000" + "0000" +
		"0200" + "0100" + "73" + "0200" + "0500" + "73636f7065" + "0300" + "736370" + "0000" +
		"0100" + "6d" + "0000" + "0300" + "6a7774"
	if got != want {
		t.Fatalf("encoding %s, want %s", got, want)
	}
	spec := readSpec(t)
	if !strings.Contains(spec, "`02 00000000 0000 0000 0000 0000 0200 0100 73 0200 0500 73636f7065 0300 736370 0000 0100 6d 0000 0300 6a7774`") {
		t.Error("README.md lacks the worked encoding of a policy with forwards")
	}
	for _, v := range []abi.TokenVerdict{abi.TokenClaimNotText, abi.TokenClaimNotValue} {
		if row := "| `" + abi.TokenVerdictName(v) + "` | " + strconv.Itoa(int(v)) + " |"; !strings.Contains(spec, row) {
			t.Errorf("README.md lacks the verdict row %q", row)
		}
	}
}

// TestParseTokenPolicyForwards round-trips forwards and refuses what
// token_verify could not set.
func TestParseTokenPolicyForwards(t *testing.T) {
	p := forwardPolicy()
	p.Claims = [][]byte{[]byte("sub")}
	got, err := abi.ParseTokenPolicy(p.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Forwards) != 2 || !bytes.Equal(got.Append(nil), p.Append(nil)) {
		t.Fatalf("round trip %+v -> %+v", p, got)
	}
	one := func(f abi.TokenForward) []byte {
		return (&abi.TokenPolicy{Forwards: []abi.TokenForward{f}}).Append(nil)
	}
	tooMany := abi.TokenPolicy{}
	for range abi.MaxTokenClaims + 1 {
		tooMany.Forwards = append(tooMany.Forwards, abi.TokenForward{Name: []byte("n"), Value: []byte("v")})
	}
	manyNames := abi.TokenPolicy{}
	for range 2 {
		f := abi.TokenForward{Name: []byte("n")}
		for range abi.MaxTokenClaims/2 + 1 {
			f.Claims = append(f.Claims, []byte("c"))
		}
		manyNames.Forwards = append(manyNames.Forwards, f)
	}
	plain := (&abi.TokenPolicy{}).Append(nil)
	for name, b := range map[string][]byte{
		"empty section":     append(append([]byte{2}, plain[1:]...), 0, 0),
		"name not a token":  one(abi.TokenForward{Name: []byte("a:b"), Value: []byte("v")}),
		"empty name":        one(abi.TokenForward{Value: []byte("v")}),
		"long name":         one(abi.TokenForward{Name: bytes.Repeat([]byte("n"), abi.MaxValueKeyLen+1), Value: []byte("v")}),
		"value with a LF":   one(abi.TokenForward{Name: []byte("n"), Value: []byte("a\nb")}),
		"nothing":           one(abi.TokenForward{Name: []byte("n")}),
		"empty claim":       one(abi.TokenForward{Name: []byte("n"), Claims: [][]byte{nil}}),
		"too many forwards": tooMany.Append(nil),
		"too many names":    manyNames.Append(nil),
		"truncated":         one(abi.TokenForward{Name: []byte("n"), Value: []byte("v")})[:len(plain)+4],
		"section w/o flag":  append(bytes.Clone(plain), 1, 0, 1, 0, 'n', 0, 0, 1, 0, 'v'),
	} {
		if _, err := abi.ParseTokenPolicy(b); !errors.Is(err, abi.ErrTokenPolicy) {
			t.Errorf("%s: err %v, want ErrTokenPolicy", name, err)
		}
	}
}

// FuzzParseTokenPolicyForwards is FuzzParseTokenPolicy seeded with
// forwards sections.
func FuzzParseTokenPolicyForwards(f *testing.F) {
	p := forwardPolicy()
	f.Add(p.Append(nil))
	p.Claims = [][]byte{[]byte("sub")}
	p.RequireExpiry = true
	f.Add(p.Append(nil))
	f.Add(append((&abi.TokenPolicy{}).Append(nil)[:0:0], 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 'n', 0, 0, 0, 0))
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
		for _, fw := range p.Forwards {
			if !abi.ValidToken(fw.Name) || !abi.ValidHeaderValue(fw.Value) {
				t.Fatalf("accepted forward %+v", fw)
			}
		}
	})
}
