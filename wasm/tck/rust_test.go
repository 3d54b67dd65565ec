package tck_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/tck/tcktest"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// The Rust SDK's decoders (sdk/rust/src/json.rs, base64.rs) and its token
// policy encoder (token.rs), run as Wasm in the probe crate
// (rustguest/probe) and held to what the Go packages make of the same
// bytes.

// rustProbe loads the probe and returns a function that sends body to one
// of its paths and returns the answer's body.
func rustProbe(t testing.TB) func(path string, body []byte) []byte {
	t.Helper()
	dir := filepath.Join(tcktest.RustGuestDir(t), "probe")
	p := wasmtest.LoadSpec(t, wasmtest.NewRuntime(t, wasm.NewConfig()), wasm.Spec{Name: "probe", Version: "1", Binary: wasmtest.Build(t, dir)})
	return func(path string, body []byte) []byte {
		res := p.Do(host.Request{Method: "POST", Scheme: "http", Host: "probe", Path: path, Proto: "HTTP/1.1", Body: body})
		if res.RequestErr != nil || res.Resp.Status != 200 {
			t.Fatalf("probe %s: %v (status %d)", path, res.RequestErr, res.Resp.Status)
		}
		return res.Resp.Body
	}
}

// renderJSON renders data as the probe does with json.rs (probe's render),
// with sdk/jsonscan: the reference.
func renderJSON(data []byte) []byte {
	if !jsonscan.Valid(data) {
		return []byte("invalid")
	}
	var out []byte
	render(bytes.Trim(data, " \t\r\n"), &out)
	return out
}

func render(v []byte, out *[]byte) {
	switch v[0] {
	case '{', '[':
		*out = append(*out, v[0])
		var it jsonscan.Iter
		if v[0] == '{' {
			it.Object(v)
		} else {
			it.Array(v)
		}
		for it.Next() {
			if v[0] == '{' {
				*out = append(*out, fmt.Sprintf("s%d:%s=", len(it.Name()), it.Name())...)
			}
			render(it.Value(), out)
			*out = append(*out, ',')
		}
		if it.Err() != nil {
			*out = append(*out, "error"...)
		}
		*out = append(*out, v[len(v)-1])
	case '"':
		s, err := jsonscan.String(v)
		if err != nil {
			*out = append(*out, "error"...)
		}
		*out = append(*out, fmt.Sprintf("s%d:%s", len(s), s)...)
	case 't', 'f':
		b, _ := jsonscan.Bool(v)
		*out = append(*out, map[bool]byte{true: 'T', false: 'F'}[b])
	case 'n':
		*out = append(*out, 'N')
	default:
		if n, err := jsonscan.Int(v); err == nil {
			*out = append(*out, fmt.Sprintf("i%d", n)...)
		} else {
			*out = append(*out, 'n')
			*out = append(*out, v...)
		}
	}
}

var jsonSeeds = []string{
	`{"keys":[{"alg":"HS256","format":0,"key":"aGk="}],"assigned":{"scheme":"http"}}`,
	` [1, -0, 2.5e3, -9223372036854775808, 9223372036854775808, true, false, null] `,
	`{"k\u0065y":"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800x","":{}}`,
	`"plain"`, `0`, `-1.5E-3`, `[]`, `{}`, `[[[[]]]]`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64),
	strings.Repeat("[", 65) + strings.Repeat("]", 65),
	`{"a":1,}`, `[1,]`, `[1 2]`, "\"a\x01\"", `"\x"`, `"\u12"`, `tru`, `01`, `1.`, `{} x`, `{"a"}`, `"abc`, ``,
}

// TestRustJSON holds json.rs to sdk/jsonscan on the seeds.
func TestRustJSON(t *testing.T) {
	probe := rustProbe(t)
	for _, s := range jsonSeeds {
		if got, want := probe("/json", []byte(s)), renderJSON([]byte(s)); !bytes.Equal(got, want) {
			t.Errorf("%q: json.rs %q, jsonscan %q", s, got, want)
		}
	}
	if got := probe("/json", []byte(`{"a":[1,{"b":"\u00e9"}],"c":true}`)); string(got) != `{s1:a=[i1,{s1:b=s2:é,},],s1:c=T,}` {
		t.Errorf("render: %q", got)
	}
}

// FuzzRustJSON holds json.rs to sdk/jsonscan: the same verdict on
// validity, the same members, strings and integers.
func FuzzRustJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	probe := rustProbe(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := probe("/json", data), renderJSON(data); !bytes.Equal(got, want) {
			t.Errorf("%q: json.rs %q, jsonscan %q", data, got, want)
		}
	})
}

var base64Seeds = []string{"", "Zg==", "Zm8=", "Zm9v", "+/+/", "-_-_", "Zg", "Zm8", "Zg=", "Z===", "Zh==", "Zm9v!A==", "Zg=a", "Zm9vY", "YWJj\n"}

// base64Want is what encoding/base64's strict decoders make of s, in the
// probe's format; ok is false where the Go decoders ignore newlines, which
// base64.rs refuses.
func base64Want(enc *base64.Encoding, s []byte) (want []byte, ok bool) {
	if bytes.ContainsAny(s, "\r\n") {
		return nil, false
	}
	b, err := enc.Strict().DecodeString(string(s))
	if err != nil {
		return []byte("corrupt"), true
	}
	return append([]byte("ok:"), b...), true
}

func checkBase64(t *testing.T, probe func(string, []byte) []byte, s []byte) {
	t.Helper()
	for _, c := range []struct {
		path string
		enc  *base64.Encoding
	}{{"/base64", base64.StdEncoding}, {"/base64url", base64.RawURLEncoding}} {
		if want, ok := base64Want(c.enc, s); ok {
			if got := probe(c.path, s); !bytes.Equal(got, want) {
				t.Errorf("%s %q: base64.rs %q, encoding/base64 %q", c.path, s, got, want)
			}
		}
	}
	if got, want := probe("/encodeurl", s), base64.RawURLEncoding.EncodeToString(s); string(got) != want {
		t.Errorf("encode_url %q: %q, want %q", s, got, want)
	}
}

// TestRustBase64 holds base64.rs to encoding/base64 on the seeds.
func TestRustBase64(t *testing.T) {
	probe := rustProbe(t)
	for _, s := range base64Seeds {
		checkBase64(t, probe, []byte(s))
	}
	if got := probe("/base64", []byte("YWJj\n")); string(got) != "corrupt" {
		t.Errorf("a newline: %q", got)
	}
}

// FuzzRustBase64 holds base64.rs to encoding/base64's strict decoders and
// its URL encoder.
func FuzzRustBase64(f *testing.F) {
	for _, s := range base64Seeds {
		f.Add([]byte(s))
	}
	probe := rustProbe(f)
	f.Fuzz(func(t *testing.T, s []byte) { checkBase64(t, probe, s) })
}

// describe is a policy as the probe's /token reads it, byte strings in
// base64 (encoding/json's []byte).
func describe(t testing.TB, p abi.TokenPolicy) []byte {
	type key struct {
		Key int32  `json:"key"`
		Kid []byte `json:"kid,omitempty"`
	}
	type forward struct {
		Name   []byte   `json:"name,omitempty"`
		Claims [][]byte `json:"claims,omitempty"`
		Value  []byte   `json:"value,omitempty"`
	}
	d := struct {
		Keys          []key     `json:"keys,omitempty"`
		Issuer        []byte    `json:"issuer,omitempty"`
		Audiences     [][]byte  `json:"audiences,omitempty"`
		Leeway        uint32    `json:"leeway"`
		RequireExpiry bool      `json:"require_expiry"`
		Claims        [][]byte  `json:"claims,omitempty"`
		Forwards      []forward `json:"forwards,omitempty"`
	}{Issuer: p.Issuer, Audiences: p.Audiences, Leeway: p.Leeway, RequireExpiry: p.RequireExpiry, Claims: p.Claims}
	for _, k := range p.Keys {
		d.Keys = append(d.Keys, key{k.Key, k.Kid})
	}
	for _, f := range p.Forwards {
		d.Forwards = append(d.Forwards, forward{f.Name, f.Claims, f.Value})
	}
	// Empty members are left out (the probe's defaults): encoding/json
	// writes a nil slice as null.
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var policySeeds = []abi.TokenPolicy{
	{},
	{Keys: []abi.TokenKey{{Key: 0}}, RequireExpiry: true, Claims: [][]byte{[]byte("sub")}},
	{Keys: []abi.TokenKey{{Key: 3, Kid: []byte("k1")}, {Key: -1, Kid: []byte("\x00\xff")}}, Issuer: []byte("https://issuer.example"),
		Audiences: [][]byte{[]byte("a"), []byte("b")}, Leeway: 3600, Claims: [][]byte{[]byte("sub"), []byte("scope")}},
	{Keys: []abi.TokenKey{{Key: 1}}, Forwards: []abi.TokenForward{
		{Name: []byte("identity-sub"), Claims: [][]byte{[]byte("sub"), []byte("client_id")}},
		{Name: []byte("identity-method"), Value: []byte("jwt")},
	}},
}

// TestRustTokenPolicy checks that token.rs encodes a policy byte for byte
// as abi.TokenPolicy.Append does.
func TestRustTokenPolicy(t *testing.T) {
	probe := rustProbe(t)
	for _, p := range policySeeds {
		if got, want := probe("/token", describe(t, p)), p.Append(nil); !bytes.Equal(got, want) {
			t.Errorf("%+v: token.rs %q, Append %q", p, got, want)
		}
	}
}

// FuzzRustTokenPolicy encodes, with token.rs, every policy that
// abi.ParseTokenPolicy accepts and holds the result to the spec's bytes.
func FuzzRustTokenPolicy(f *testing.F) {
	for _, p := range policySeeds {
		f.Add(p.Append(nil))
	}
	probe := rustProbe(f)
	f.Fuzz(func(t *testing.T, spec []byte) {
		p, err := abi.ParseTokenPolicy(spec)
		if err != nil {
			return
		}
		if got := probe("/token", describe(t, p)); !bytes.Equal(got, spec) {
			t.Errorf("%+v: token.rs %q, spec %q", p, got, spec)
		}
	})
}
