package jsonscan_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/talowa/wedge/sdk/jsonscan"
)

func nest(n int, open, inner, close string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

func TestValid(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		// Scalars.
		{`true`, true},
		{`false`, true},
		{`null`, true},
		{`0`, true},
		{`"x"`, true},
		{` 	
 1 
	`, true},
		{`tru`, false},
		{`truex`, false},
		{`nul`, false},
		{`True`, false},
		{`NULL`, false},
		{`undefined`, false},
		{`NaN`, false},
		{`Infinity`, false},
		{`'x'`, false},
		// Whitespace and emptiness.
		{``, false},
		{` `, false},
		{"\v1", false},
		{"\f1", false},
		{"1\u00a0", false},
		{"\xef\xbb\xbf1", false}, // BOM
		// Trailing garbage.
		{`1 2`, false},
		{`{} {}`, false},
		{`[]]`, false},
		{`{}}`, false},
		{`"a""b"`, false},
		{`nullx`, false},
		{"1\x00", false},
		// Objects.
		{`{}`, true},
		{`{ }`, true},
		{`{"a":1}`, true},
		{` { "a" : 1 , "b" : [ ] } `, true},
		{`{"a":1,"a":2}`, true},
		{`{"":null}`, true},
		{`{"a":{"b":{"c":[1,{"d":"e"}]}}}`, true},
		{`{`, false},
		{`}`, false},
		{`{"a"}`, false},
		{`{"a":}`, false},
		{`{"a" 1}`, false},
		{`{"a":1,}`, false},
		{`{,"a":1}`, false},
		{`{"a":1 "b":2}`, false},
		{`{"a":1;"b":2}`, false},
		{`{a:1}`, false},
		{`{'a':1}`, false},
		{`{1:1}`, false},
		{`{"a":1]`, false},
		{`{"a":1`, false},
		{`{"a`, false},
		// Arrays.
		{`[]`, true},
		{`[ ]`, true},
		{`[1,"a",true,false,null,{},[]]`, true},
		{`[`, false},
		{`]`, false},
		{`[1,]`, false},
		{`[,1]`, false},
		{`[,]`, false},
		{`[1 2]`, false},
		{`[1}`, false},
		{`[1`, false},
		{`[1,`, false},
		// Strings.
		{`"\"\\\/\b\f\n\r\t"`, true},
		{`"\u0041\u00e9\uD83D\uDE00"`, true},
		{`"\uD800"`, true}, // lone surrogates are valid JSON
		{`"\uDC00\uD800"`, true},
		{"\"\xff\xfe\"", true}, // encoding/json does not check UTF-8 either
		{"\"\u007f\"", true},
		{`"\x41"`, false},
		{`"\a"`, false},
		{`"\U0041"`, false},
		{`"\u004"`, false},
		{`"\u004g"`, false},
		{`"\u`, false},
		{`"\`, false},
		{`"abc`, false},
		{`"`, false},
		{"\"\x00\"", false},
		{"\"\x1f\"", false},
		{"\"\n\"", false},
		{"\"\t\"", false},
		{"\"\r\"", false},
		// Numbers.
		{`-0`, true},
		{`-0.0e-0`, true},
		{`1E+2`, true},
		{`123456789012345678901234567890`, true},
		{`1e999`, true},
		{`01`, false},
		{`-01`, false},
		{`00`, false},
		{`-`, false},
		{`+1`, false},
		{`1.`, false},
		{`.1`, false},
		{`1e`, false},
		{`1e+`, false},
		{`1E-`, false},
		{`1.e1`, false},
		{`0x10`, false},
		{`1_000`, false},
		{`--1`, false},
		{`[01]`, false},
		{`{"a":-}`, false},
	}
	for _, tt := range tests {
		if got := jsonscan.Valid([]byte(tt.in)); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
		}
		// Every case is within MaxDepth, so encoding/json must agree.
		if std := json.Valid([]byte(tt.in)); std != tt.want {
			t.Errorf("test case is wrong: json.Valid(%q) = %v", tt.in, std)
		}
	}
}

func TestMaxDepth(t *testing.T) {
	const d = jsonscan.MaxDepth
	objs := func(n int, inner string) string {
		return strings.Repeat(`{"k":`, n-1) + `{"k":` + inner + `}` + strings.Repeat(`}`, n-1)
	}
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"arrays at limit", nest(d, "[", "", "]"), true},
		{"arrays at limit with scalar", nest(d, "[", "1", "]"), true},
		{"arrays at limit with string", nest(d, "[", `"s"`, "]"), true},
		{"arrays past limit", nest(d+1, "[", "", "]"), false},
		{"arrays past limit with scalar", nest(d+1, "[", "1", "]"), false},
		{"objects at limit", objs(d, "0"), true},
		{"objects past limit", objs(d+1, "0"), false},
		{"objects at limit, empty inner", objs(d-1, "{}"), true},
		{"objects past limit, empty inner", objs(d, "{}"), false},
		{"mixed past limit", nest(d/2, `[{"a":`, "[]", "}]"), false}, // d/2*2 + 1 = d+1
		{"mixed at limit", nest(d/2, `[{"a":`, "1", "}]"), true},
		{"deep sibling after shallow", `[1,` + nest(d-1, "[", "", "]") + `]`, true},
		{"deep sibling past limit", `[1,` + nest(d, "[", "", "]") + `]`, false},
		{"very deep", nest(100000, "[", "", "]"), false},
		{"very deep unclosed", strings.Repeat("[", 100000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jsonscan.Valid([]byte(tt.in)); got != tt.want {
				t.Errorf("Valid = %v, want %v", got, tt.want)
			}
			// Iter walks the outer container as level 1: its elements must
			// obey the same limit.
			var it jsonscan.Iter
			if tt.in[0] == '{' {
				it.Object([]byte(tt.in))
			} else {
				it.Array([]byte(tt.in))
			}
			for it.Next() {
			}
			if got := it.Err() == nil; got != tt.want {
				t.Errorf("Iter.Err = %v, want ok=%v", it.Err(), tt.want)
			}
		})
	}
}

func TestNumbers(t *testing.T) {
	const (
		isInt   = 1 << iota // Int succeeds
		isFloat             // Float succeeds
	)
	tests := []struct {
		in    string
		ok    int
		i     int64
		f     float64
		valid bool
	}{
		{"0", isInt | isFloat, 0, 0, true},
		{"-0", isInt | isFloat, 0, math.Copysign(0, -1), true},
		{"7", isInt | isFloat, 7, 7, true},
		{"-7", isInt | isFloat, -7, -7, true},
		{"1234567890", isInt | isFloat, 1234567890, 1234567890, true},
		{"9223372036854775807", isInt | isFloat, math.MaxInt64, 9223372036854775807, true},
		{"-9223372036854775808", isInt | isFloat, math.MinInt64, -9223372036854775808, true},
		{"9223372036854775808", isFloat, 0, 9223372036854775808, true},
		{"-9223372036854775809", isFloat, 0, -9223372036854775809, true},
		{"9223372036854775810", isFloat, 0, 9223372036854775810, true},
		{"18446744073709551615", isFloat, 0, 18446744073709551615, true},
		{"18446744073709551616", isFloat, 0, 18446744073709551616, true},
		{"99999999999999999999", isFloat, 0, 99999999999999999999, true},
		{"-99999999999999999999", isFloat, 0, -99999999999999999999, true},
		{"1.0", isFloat, 0, 1, true},
		{"1.5", isFloat, 0, 1.5, true},
		{"-0.25", isFloat, 0, -0.25, true},
		{"1e2", isFloat, 0, 100, true},
		{"1E2", isFloat, 0, 100, true},
		{"1e+2", isFloat, 0, 100, true},
		{"1e-2", isFloat, 0, 0.01, true},
		{"0e0", isFloat, 0, 0, true},
		{"2.5E-3", isFloat, 0, 0.0025, true},
		{"1e308", isFloat, 0, 1e308, true},
		{"1e-400", isFloat, 0, 0, true}, // underflows to zero without error
		{"1e309", 0, 0, 0, true},        // valid JSON, out of float64 range
		{"-1e400", 0, 0, 0, true},
		{"", 0, 0, 0, false},
		{"-", 0, 0, 0, false},
		{"+1", 0, 0, 0, false},
		{"01", 0, 0, 0, false},
		{"-01", 0, 0, 0, false},
		{"007", 0, 0, 0, false},
		{"1.", 0, 0, 0, false},
		{".5", 0, 0, 0, false},
		{"-.5", 0, 0, 0, false},
		{"1e", 0, 0, 0, false},
		{"1e+", 0, 0, 0, false},
		{"1e-", 0, 0, 0, false},
		{"1ee2", 0, 0, 0, false},
		{"1.2.3", 0, 0, 0, false},
		{"1 ", 0, 0, 0, true}, // Valid allows the space, Int and Float do not
		{" 1", 0, 0, 0, true},
		{"1x", 0, 0, 0, false},
		{"0x1", 0, 0, 0, false},
		{"Infinity", 0, 0, 0, false},
		{"NaN", 0, 0, 0, false},
		{`"1"`, 0, 0, 0, true},
		{"true", 0, 0, 0, true},
		{"null", 0, 0, 0, true},
	}
	for _, tt := range tests {
		if got := jsonscan.Valid([]byte(tt.in)); got != tt.valid {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.valid)
		}
		i, err := jsonscan.Int([]byte(tt.in))
		if tt.ok&isInt != 0 {
			if err != nil || i != tt.i {
				t.Errorf("Int(%q) = %d, %v; want %d", tt.in, i, err, tt.i)
			}
		} else if err != jsonscan.ErrType || i != 0 {
			t.Errorf("Int(%q) = %d, %v; want ErrType", tt.in, i, err)
		}
		f, err := jsonscan.Float([]byte(tt.in))
		if tt.ok&isFloat != 0 {
			if err != nil || f != tt.f || math.Signbit(f) != math.Signbit(tt.f) {
				t.Errorf("Float(%q) = %g, %v; want %g", tt.in, f, err, tt.f)
			}
		} else if err != jsonscan.ErrType || f != 0 {
			t.Errorf("Float(%q) = %g, %v; want ErrType", tt.in, f, err)
		}
	}
}

// TestIntMatchesEncodingJSON checks Int against json.Unmarshal into an
// int64 around every power of ten and the int64 limits.
func TestIntMatchesEncodingJSON(t *testing.T) {
	var ins []string
	for _, s := range []string{"9223372036854775807", "9223372036854775808", "9223372036854775806",
		"9223372036854775817", "9223372036854775899", "92233720368547758070", "922337203685477580",
		"922337203685477581", "9999999999999999999", "10000000000000000000", "1" + strings.Repeat("0", 40)} {
		ins = append(ins, s, "-"+s)
	}
	for p := "1"; len(p) < 22; p += "0" {
		ins = append(ins, p, "-"+p, p+".0", p+"e0", p+"E1")
	}
	for _, in := range ins {
		var want int64
		wantErr := json.Unmarshal([]byte(in), &want)
		got, err := jsonscan.Int([]byte(in))
		if (err == nil) != (wantErr == nil) || got != want {
			t.Errorf("Int(%q) = %d, %v; encoding/json: %d, %v", in, got, err, want, wantErr)
		}
	}
}

func TestBool(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr error
	}{
		{"true", true, nil},
		{"false", false, nil},
		{"True", false, jsonscan.ErrType},
		{" true", false, jsonscan.ErrType},
		{"true ", false, jsonscan.ErrType},
		{"tru", false, jsonscan.ErrType},
		{"1", false, jsonscan.ErrType},
		{"0", false, jsonscan.ErrType},
		{`"true"`, false, jsonscan.ErrType},
		{"null", false, jsonscan.ErrType},
		{"", false, jsonscan.ErrType},
	}
	for _, tt := range tests {
		got, err := jsonscan.Bool([]byte(tt.in))
		if got != tt.want || err != tt.wantErr {
			t.Errorf("Bool(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{`""`, "", nil},
		{`"abc"`, "abc", nil},
		{`"with space and 'quotes'"`, "with space and 'quotes'", nil},
		{`"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t", nil},
		{`"a\\nb"`, `a\nb`, nil},
		{`"\u0041\u0062"`, "Ab", nil},
		{`"\u0000"`, "\x00", nil},
		{`"\u001f"`, "\x1f", nil},
		{`"\u00e9\u00E9"`, "éé", nil},
		{`"\u20AC"`, "€", nil},
		{`"\uFFFF"`, "\uffff", nil},
		{`"\uFFFD"`, "\ufffd", nil},
		{`"héllo wörld €"`, "héllo wörld €", nil},
		{"\"\U0001F600\"", "\U0001F600", nil},
		{"\"\u007f\"", "\u007f", nil},
		// Surrogate pairs.
		{`"\uD83D\uDE00"`, "\U0001F600", nil},
		{`"\ud83d\ude00"`, "\U0001F600", nil},
		{`"\uD800\uDC00"`, "\U00010000", nil},
		{`"\uDBFF\uDFFF"`, "\U0010FFFF", nil},
		{`"x\uD83D\uDE00y"`, "x\U0001F600y", nil},
		// Lone and misordered surrogates become U+FFFD, like encoding/json.
		{`"\uD800"`, "\ufffd", nil},
		{`"\uDFFF"`, "\ufffd", nil},
		{`"\uD800x"`, "\ufffdx", nil},
		{`"\uD800\u0041"`, "\ufffdA", nil},
		{`"\uD800\n"`, "\ufffd\n", nil},
		{`"\uD800\\uDC00"`, "\ufffd\\uDC00", nil},
		{`"\uDC00\uD800"`, "\ufffd\ufffd", nil},
		{`"\uD800\uD800"`, "\ufffd\ufffd", nil},
		{`"\uD800\uD800\uDC00"`, "\ufffd\U00010000", nil},
		{`"\uDE00\uD83D\uDE00"`, "\ufffd\U0001F600", nil},
		{`"\uD83D\uDE00\uDE00"`, "\U0001F600\ufffd", nil},
		{`"\uD83Dabcdef"`, "\ufffdabcdef", nil},
		{`"\uD83D\u00e9"`, "\ufffdé", nil},
		// Not strings.
		{``, "", jsonscan.ErrType},
		{`"`, "", jsonscan.ErrType},
		{`abc`, "", jsonscan.ErrType},
		{`1`, "", jsonscan.ErrType},
		{`null`, "", jsonscan.ErrType},
		{`["a"]`, "", jsonscan.ErrType},
		{` "a"`, "", jsonscan.ErrType},
		{`"a" `, "", jsonscan.ErrType},
		{`'a'`, "", jsonscan.ErrType},
		// Malformed strings.
		{`"a"b"`, "", jsonscan.ErrSyntax},
		{`"a""`, "", jsonscan.ErrSyntax},
		{`"\"`, "", jsonscan.ErrSyntax},
		{`"\x"`, "", jsonscan.ErrSyntax},
		{`"\a"`, "", jsonscan.ErrSyntax},
		{`"\'"`, "", jsonscan.ErrSyntax},
		{`"\u"`, "", jsonscan.ErrSyntax},
		{`"\u12"`, "", jsonscan.ErrSyntax},
		{`"\u123"`, "", jsonscan.ErrSyntax},
		{`"\u12G4"`, "", jsonscan.ErrSyntax},
		{`"\u-123"`, "", jsonscan.ErrSyntax},
		{`"\uD800\u12"`, "", jsonscan.ErrSyntax},
		{`"\uD800\uDC0"`, "", jsonscan.ErrSyntax},
		{"\"\x00\"", "", jsonscan.ErrSyntax},
		{"\"\x01\"", "", jsonscan.ErrSyntax},
		{"\"a\nb\"", "", jsonscan.ErrSyntax},
		{"\"\t\"", "", jsonscan.ErrSyntax},
		{"\"\x1f\"", "", jsonscan.ErrSyntax},
	}
	for _, tt := range tests {
		got, err := jsonscan.String([]byte(tt.in))
		if err != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("String(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		// AppendString keeps what dst held.
		dst, err := jsonscan.AppendString([]byte("prefix:"), []byte(tt.in))
		if err != tt.wantErr || (err == nil && string(dst) != "prefix:"+tt.want) {
			t.Errorf("AppendString(prefix, %q) = %q, %v", tt.in, dst, err)
		}
		if tt.wantErr == jsonscan.ErrType && string(dst) != "prefix:" {
			t.Errorf("AppendString(prefix, %q) changed dst to %q on ErrType", tt.in, dst)
		}
		// Valid JSON strings must decode as encoding/json decodes them.
		if tt.wantErr == jsonscan.ErrType {
			continue // e.g. surrounding spaces, which json.Unmarshal skips
		}
		var std string
		if json.Unmarshal([]byte(tt.in), &std) == nil {
			if err != nil || got != std {
				t.Errorf("String(%q) = %q, %v; encoding/json says %q", tt.in, got, err, std)
			}
		} else if err == nil {
			t.Errorf("String(%q) succeeded, encoding/json refuses it", tt.in)
		}
	}
}

// TestStringAllSurrogates pairs every high surrogate class with every low
// one and checks the result against encoding/json.
func TestStringAllSurrogates(t *testing.T) {
	units := []string{"D800", "D801", "DB7F", "DB80", "DBFF", "DC00", "DC01", "DFFE", "DFFF", "D7FF", "E000", "0041"}
	for _, a := range units {
		for _, b := range units {
			in := `"\u` + a + `\u` + b + `"`
			var want string
			if err := json.Unmarshal([]byte(in), &want); err != nil {
				t.Fatal(err)
			}
			got, err := jsonscan.String([]byte(in))
			if err != nil || got != want {
				t.Errorf("String(%s) = %q, %v; want %q", in, got, err, want)
			}
		}
	}
}

func TestControlCharacters(t *testing.T) {
	for c := 0; c < 0x20; c++ {
		raw := []byte{'"', 'a', byte(c), 'b', '"'}
		if jsonscan.Valid(raw) {
			t.Errorf("Valid accepts raw control character %#x in a string", c)
		}
		if _, err := jsonscan.String(raw); err != jsonscan.ErrSyntax {
			t.Errorf("String with control character %#x: err = %v, want ErrSyntax", c, err)
		}
		key := []byte(`{"a` + string(rune(c)) + `":1}`)
		if err := jsonscan.Object(key, func(k, v []byte) bool { return true }); err != jsonscan.ErrSyntax {
			t.Errorf("Object with control character %#x in a key: err = %v, want ErrSyntax", c, err)
		}
	}
	// The escaped forms are fine.
	for c := 0; c < 0x20; c++ {
		raw, _ := json.Marshal(string(rune(c)))
		got, err := jsonscan.String(raw)
		if err != nil || got != string(rune(c)) {
			t.Errorf("String(%s) = %q, %v", raw, got, err)
		}
	}
}

type member struct{ key, name, value string }

func TestIterObject(t *testing.T) {
	tests := []struct {
		in   string
		want []member
	}{
		{`{}`, nil},
		{" \t\r\n{ \t\r\n} \t\r\n", nil},
		{`{"a":1}`, []member{{"a", "a", "1"}}},
		{`{ "a" : 1 , "b" : "two" , "c":[1, 2] ,"d":{"e":null},"f":true,"g":false,"h":-1.5e3}`, []member{
			{"a", "a", "1"}, {"b", "b", `"two"`}, {"c", "c", "[1, 2]"}, {"d", "d", `{"e":null}`},
			{"f", "f", "true"}, {"g", "g", "false"}, {"h", "h", "-1.5e3"}}},
		{`{"a":1,"a":2}`, []member{{"a", "a", "1"}, {"a", "a", "2"}}},
		{`{"":""}`, []member{{"", "", `""`}}},
		{`{"\u0061":1}`, []member{{`\u0061`, "a", "1"}}},
		{`{"a\"b":1}`, []member{{`a\"b`, `a"b`, "1"}}},
		{`{"\\":1}`, []member{{`\\`, `\`, "1"}}},
		{`{"a\nb\tc\/d":1}`, []member{{`a\nb\tc\/d`, "a\nb\tc/d", "1"}}},
		{`{"\u00e9t\u00e9":1}`, []member{{`\u00e9t\u00e9`, "été", "1"}}},
		{`{"\uD83D\uDE00":1}`, []member{{`\uD83D\uDE00`, "\U0001F600", "1"}}},
		{`{"\uD83D":1,"x\uDE00":2}`, []member{{`\uD83D`, "\ufffd", "1"}, {`x\uDE00`, "x\ufffd", "2"}}},
		{`{"été":"\u00e9"}`, []member{{"été", "été", `"\u00e9"`}}},
		// An escaped key, then a plain one: Name must not leak the previous.
		{`{"\u0061\u0062\u0063\u0064":1,"x":2,"\u0079":3}`, []member{
			{`\u0061\u0062\u0063\u0064`, "abcd", "1"}, {"x", "x", "2"}, {`\u0079`, "y", "3"}}},
		{`{"k":"a,b:c}"}`, []member{{"k", "k", `"a,b:c}"`}}},
		{`{"k":"]"}`, []member{{"k", "k", `"]"`}}},
	}
	for _, tt := range tests {
		var got []member
		var it jsonscan.Iter
		for it.Object([]byte(tt.in)); it.Next(); {
			got = append(got, member{string(it.Key()), string(it.Name()), string(it.Value())})
		}
		if err := it.Err(); err != nil {
			t.Errorf("Iter.Object(%q): %v", tt.in, err)
		}
		if !equalMembers(got, tt.want) {
			t.Errorf("Iter.Object(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if it.Next() || it.Err() != nil {
			t.Errorf("Iter.Object(%q): Next after the end = true or Err = %v", tt.in, it.Err())
		}
		// Object (the callback form) sees the same members.
		got = got[:0]
		err := jsonscan.Object([]byte(tt.in), func(k, v []byte) bool {
			got = append(got, member{string(k), "", string(v)})
			return true
		})
		if len(got) == len(tt.want) {
			for i := range got {
				got[i].name = tt.want[i].name
			}
		}
		if err != nil || !equalMembers(got, tt.want) {
			t.Errorf("Object(%q) = %q, %v", tt.in, got, err)
		}
		// Each key must match its unescaped name.
		for _, m := range tt.want {
			if !jsonscan.KeyIs([]byte(m.key), m.name) {
				t.Errorf("KeyIs(%q, %q) = false", m.key, m.name)
			}
		}
	}
}

func equalMembers(a, b []member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIterArray(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`[]`, nil},
		{` [ ] `, nil},
		{`[1]`, []string{"1"}},
		{`[ 1 , "a" ,true,false,null,{},[],{"a":[1]},-0.5e-2 ]`, []string{
			"1", `"a"`, "true", "false", "null", "{}", "[]", `{"a":[1]}`, "-0.5e-2"}},
		{`["a,b","[","]"]`, []string{`"a,b"`, `"["`, `"]"`}},
		{"[\n1,\n2\n]\n", []string{"1", "2"}},
	}
	for _, tt := range tests {
		var got []string
		var it jsonscan.Iter
		for it.Array([]byte(tt.in)); it.Next(); {
			got = append(got, string(it.Value()))
			if it.Key() != nil {
				t.Errorf("Iter.Array(%q): Key = %q, want nil", tt.in, it.Key())
			}
		}
		if err := it.Err(); err != nil {
			t.Errorf("Iter.Array(%q): %v", tt.in, err)
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("Iter.Array(%q) = %q, want %q", tt.in, got, tt.want)
		}
		var got2 []string
		err := jsonscan.Array([]byte(tt.in), func(v []byte) bool {
			got2 = append(got2, string(v))
			return true
		})
		if err != nil || strings.Join(got2, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Array(%q) = %q, %v", tt.in, got2, err)
		}
	}
}

func TestIterErrors(t *testing.T) {
	tests := []struct {
		name    string
		array   bool
		in      string
		visited int // members or elements reached before the error
		wantErr error
	}{
		{"empty", false, ``, 0, jsonscan.ErrType},
		{"spaces", false, `   `, 0, jsonscan.ErrType},
		{"array as object", false, `[1]`, 0, jsonscan.ErrType},
		{"object as array", true, `{"a":1}`, 0, jsonscan.ErrType},
		{"string as object", false, `"{}"`, 0, jsonscan.ErrType},
		{"null as array", true, `null`, 0, jsonscan.ErrType},
		{"number as array", true, `1`, 0, jsonscan.ErrType},
		{"unclosed object", false, `{`, 0, jsonscan.ErrSyntax},
		{"unclosed array", true, `[`, 0, jsonscan.ErrSyntax},
		{"unclosed after member", false, `{"a":1`, 1, jsonscan.ErrSyntax},
		{"unclosed after comma", false, `{"a":1,`, 1, jsonscan.ErrSyntax},
		{"unclosed after element", true, `[1,2`, 2, jsonscan.ErrSyntax},
		{"trailing comma object", false, `{"a":1,}`, 1, jsonscan.ErrSyntax},
		{"trailing comma array", true, `[1,]`, 1, jsonscan.ErrSyntax},
		{"leading comma object", false, `{,"a":1}`, 0, jsonscan.ErrSyntax},
		{"leading comma array", true, `[,1]`, 0, jsonscan.ErrSyntax},
		{"double comma", true, `[1,,2]`, 1, jsonscan.ErrSyntax},
		{"missing comma", true, `[1 2]`, 1, jsonscan.ErrSyntax},
		{"missing comma object", false, `{"a":1 "b":2}`, 1, jsonscan.ErrSyntax},
		{"missing colon", false, `{"a" 1}`, 0, jsonscan.ErrSyntax},
		{"missing value", false, `{"a":}`, 0, jsonscan.ErrSyntax},
		{"missing key", false, `{:1}`, 0, jsonscan.ErrSyntax},
		{"bare key", false, `{a:1}`, 0, jsonscan.ErrSyntax},
		{"number key", false, `{1:1}`, 0, jsonscan.ErrSyntax},
		{"bad escape in key", false, `{"\x":1}`, 0, jsonscan.ErrSyntax},
		{"unterminated key", false, `{"a:1}`, 0, jsonscan.ErrSyntax},
		{"bad second value", false, `{"a":1,"b":tru}`, 1, jsonscan.ErrSyntax},
		{"bad nested value", true, `[1,[2,[3,]]]`, 1, jsonscan.ErrSyntax},
		{"bad nested string", true, `["ok",{"a":"\q"}]`, 1, jsonscan.ErrSyntax},
		{"bad number", true, `[1,01]`, 2, jsonscan.ErrSyntax}, // "0" is whole; the "1" after it is not
		{"wrong close object", false, `{"a":1]`, 1, jsonscan.ErrSyntax},
		{"wrong close array", true, `[1}`, 1, jsonscan.ErrSyntax},
		{"trailing garbage object", false, `{"a":1} x`, 1, jsonscan.ErrSyntax},
		{"trailing garbage array", true, `[1,2]]`, 2, jsonscan.ErrSyntax},
		{"trailing value", true, `[] []`, 0, jsonscan.ErrSyntax},
		{"trailing NUL", false, "{}\x00", 0, jsonscan.ErrSyntax},
		{"trailing comma after close", true, `[1],`, 1, jsonscan.ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var it jsonscan.Iter
			if tt.array {
				it.Array([]byte(tt.in))
			} else {
				it.Object([]byte(tt.in))
			}
			n := 0
			for it.Next() {
				n++
			}
			if n != tt.visited || it.Err() != tt.wantErr {
				t.Errorf("visited %d, Err = %v; want %d, %v", n, it.Err(), tt.visited, tt.wantErr)
			}
			// The error sticks.
			if it.Next() || it.Err() != tt.wantErr {
				t.Errorf("Next after the error = true or Err changed to %v", it.Err())
			}
			// The callback forms report the same error.
			var err error
			if tt.array {
				err = jsonscan.Array([]byte(tt.in), func([]byte) bool { return true })
			} else {
				err = jsonscan.Object([]byte(tt.in), func(_, _ []byte) bool { return true })
			}
			if err != tt.wantErr {
				t.Errorf("callback form: err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEarlyStop(t *testing.T) {
	// Stopping early reports no error, even if what follows is malformed:
	// only what was walked is validated.
	obj := []byte(`{"a":1,"b":2,"c":3, garbage`)
	var keys []string
	err := jsonscan.Object(obj, func(k, v []byte) bool {
		keys = append(keys, string(k))
		return string(k) != "b"
	})
	if err != nil || strings.Join(keys, ",") != "a,b" {
		t.Errorf("Object early stop: keys %q, err %v", keys, err)
	}
	arr := []byte(`[1,2,3,]`)
	var elems []string
	err = jsonscan.Array(arr, func(v []byte) bool {
		elems = append(elems, string(v))
		return len(elems) < 3
	})
	if err != nil || strings.Join(elems, ",") != "1,2,3" {
		t.Errorf("Array early stop: elems %q, err %v", elems, err)
	}
	// Without stopping, the same inputs fail.
	if err := jsonscan.Array(arr, func([]byte) bool { return true }); err != jsonscan.ErrSyntax {
		t.Errorf("Array full walk: err = %v, want ErrSyntax", err)
	}
	// Stopping at the first element still stops.
	calls := 0
	if err := jsonscan.Array([]byte(`[1,2]`), func([]byte) bool { calls++; return false }); err != nil || calls != 1 {
		t.Errorf("Array stop at first: calls %d, err %v", calls, err)
	}
}

func TestIterReuse(t *testing.T) {
	var it jsonscan.Iter
	it.Object([]byte(`{"a":1,`))
	for it.Next() {
	}
	if it.Err() != jsonscan.ErrSyntax {
		t.Fatalf("Err = %v, want ErrSyntax", it.Err())
	}
	// A restarted Iter forgets the error, the position and the kind.
	it.Array([]byte(`["x","y"]`))
	var got []string
	for it.Next() {
		got = append(got, string(it.Value()))
	}
	if it.Err() != nil || strings.Join(got, ",") != `"x","y"` {
		t.Errorf("reused as Array: %q, %v", got, it.Err())
	}
	it.Object([]byte(`{"\u006b":"v"}`))
	if !it.Next() || string(it.Name()) != "k" || string(it.Value()) != `"v"` {
		t.Errorf("reused as Object: name %q value %q err %v", it.Name(), it.Value(), it.Err())
	}
	it.Object([]byte(`{"plain":1}`))
	if !it.Next() || string(it.Name()) != "plain" {
		t.Errorf("escaped flag leaked: name %q", it.Name())
	}
	// An Iter at the end of a walk, restarted, starts again.
	data := []byte(`[1]`)
	for range 3 {
		it.Array(data)
		n := 0
		for it.Next() {
			n++
		}
		if n != 1 || it.Err() != nil {
			t.Errorf("restart: %d elements, %v", n, it.Err())
		}
	}
	// The zero Iter yields nothing and no error.
	var zero jsonscan.Iter
	if zero.Next() {
		t.Error("zero Iter: Next = true")
	}
}

func TestMember(t *testing.T) {
	tests := []struct {
		in, key string
		value   string
		ok      bool
		wantErr error
	}{
		{`{"a":1,"b":"x"}`, "b", `"x"`, true, nil},
		{`{"a":1,"b":"x"}`, "a", `1`, true, nil},
		{`{"a":1,"b":"x"}`, "c", ``, false, nil},
		{`{"a":1,"a":2}`, "a", `1`, true, nil},
		{`{"\u0061":{"b":[]}}`, "a", `{"b":[]}`, true, nil},
		{`{"a\"":1}`, `a"`, `1`, true, nil},
		{`{"A":1}`, "a", ``, false, nil},
		{`{"":5}`, "", `5`, true, nil},
		{`{}`, "a", ``, false, nil},
		{`{"a":{"b":1}}`, "b", ``, false, nil}, // not recursive
		{`{"a":1,"b":2,`, "a", `1`, true, nil}, // found before the error
		{`{"a":1,"b":2,`, "c", ``, false, jsonscan.ErrSyntax},
		{`{"a":1} x`, "b", ``, false, jsonscan.ErrSyntax},
		{`[{"a":1}]`, "a", ``, false, jsonscan.ErrType},
		{``, "a", ``, false, jsonscan.ErrType},
	}
	for _, tt := range tests {
		v, ok, err := jsonscan.Member([]byte(tt.in), tt.key)
		if string(v) != tt.value || ok != tt.ok || err != tt.wantErr {
			t.Errorf("Member(%q, %q) = %q, %v, %v; want %q, %v, %v", tt.in, tt.key, v, ok, err, tt.value, tt.ok, tt.wantErr)
		}
	}
}

func TestKeyIs(t *testing.T) {
	long := strings.Repeat("k", 100)
	longEsc := strings.Repeat(`\u006b`, 100)
	tests := []struct {
		raw, key string
		want     bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a", "", false},
		{"", "", true},
		{"", "a", false},
		{`\u0061`, "a", true},
		{`\u0061`, `\u0061`, false},
		{`\\`, `\`, true},
		{`\\`, `\\`, false},
		{`a\"b`, `a"b`, true},
		{`\uD83D\uDE00`, "\U0001F600", true},
		{`\uD83D`, "\ufffd", true},
		{`\/`, "/", true},
		{long, long, true},
		{longEsc, long, true}, // longer than KeyIs's stack buffer
		{longEsc, long + "k", false},
		{longEsc, long[1:], false},
		{`\q`, "q", false},  // a bad escape never matches
		{`\`, "", false},    // nor a dangling backslash
		{`\u00`, "", false}, // nor a short \u
		{"é", "é", true},
	}
	for _, tt := range tests {
		if got := jsonscan.KeyIs([]byte(tt.raw), tt.key); got != tt.want {
			t.Errorf("KeyIs(%q, %q) = %v, want %v", tt.raw, tt.key, got, tt.want)
		}
	}
}

func TestNameLongEscapedKeys(t *testing.T) {
	// Name reuses its buffer: a short escaped key after a long one must not
	// keep the long one's tail.
	in := `{"` + strings.Repeat(`\u0078`, 50) + `":1,"\u0079":2,"` + strings.Repeat(`\n`, 3) + `":3}`
	want := []string{strings.Repeat("x", 50), "y", "\n\n\n"}
	var it jsonscan.Iter
	var got []string
	for it.Object([]byte(in)); it.Next(); {
		got = append(got, string(it.Name()))
	}
	if it.Err() != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("names %q, err %v", got, it.Err())
	}
}

func TestNoAllocs(t *testing.T) {
	data := []byte(`{"alg":"HS256","kid":"key-1","n":[1,2,{"x":null}],"t":true}`)
	var it jsonscan.Iter
	allocs := testing.AllocsPerRun(100, func() {
		for it.Object(data); it.Next(); {
			switch string(it.Name()) {
			case "alg", "kid":
				if !jsonscan.KeyIs(it.Key(), "alg") && !jsonscan.KeyIs(it.Key(), "kid") {
					panic("KeyIs")
				}
			}
		}
		if it.Err() != nil {
			panic(it.Err())
		}
		if !jsonscan.Valid(data) {
			panic("Valid")
		}
		if _, err := jsonscan.Int([]byte("12345")); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Errorf("walking unescaped JSON allocates %v times, want 0", allocs)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	if errors.Is(jsonscan.ErrSyntax, jsonscan.ErrType) || jsonscan.ErrSyntax == nil || jsonscan.ErrType == nil {
		t.Fatal("ErrSyntax and ErrType must be distinct, non-nil errors")
	}
}
