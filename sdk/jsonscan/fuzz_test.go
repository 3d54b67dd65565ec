package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/talowa/wedge/sdk/internal/jsontest"
	"github.com/talowa/wedge/sdk/jsonscan"
)

var fuzzSeeds = []string{
	``, ` `, `0`, `-0`, `1.5e-3`, `-12345678901234567890`, `9223372036854775807`,
	`-9223372036854775808`, `9223372036854775808`, `1e400`, `01`, `1.`, `-`, `1e`, `.5`,
	`true`, `false`, `null`, `nul`, `truex`,
	`""`, `"abc"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\uD800"`, `"\uDC00\uD800"`,
	`"\uD800\uD800\uDC00"`, `"\u12"`, `"\x"`, "\"a\x01b\"", "\"\xff\xfe\"", "\"\xed\xa0\x80\"",
	"\"\xc3\\u00a9\"", " \"a\" ", `"a" "b"`,
	`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"\u0061":"\u0062","b":[1,{"c":null}]}`,
	`{"a":1,}`, `{"a" 1}`, `{"a":1} x`, `{"a":{"b":{"c":{}}}}`, "{\"\xff\":1}",
	`{"\uD83D":1,"x\uDE00":2}`, " { \"k\" : [ true , false ] } ",
	`[]`, `[1,2,3]`, `[1,]`, `[,1]`, `[1 2]`, `[[[[]]]]`, `["a",{"b":"c"},[-1.5e+10]]`,
	strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth),
	strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1),
	strings.Repeat(`{"a":`, jsonscan.MaxDepth) + "1" + strings.Repeat("}", jsonscan.MaxDepth),
	strings.Repeat(`{"a":`, jsonscan.MaxDepth+1) + "1" + strings.Repeat("}", jsonscan.MaxDepth+1),
	`{"alg":"HS256","typ":"JWT","kid":"k\/1"}`,
	`{"sub":"1234567890","name":"John Doe","iat":1516239022,"aud":["a","b"],"exp":1.5e9}`,
}

func FuzzJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzJSON(t, data) })
}

func fuzzJSON(t testing.TB, data []byte) {
	valid := jsonscan.Valid(data)
	if std := json.Valid(data); valid != std {
		// The only allowed difference is jsonscan's lower nesting limit.
		if !std || jsontest.Depth(data) <= jsonscan.MaxDepth {
			t.Fatalf("Valid(%q) = %v, json.Valid = %v (depth %d)", data, valid, std, jsontest.Depth(data))
		}
	}
	if valid && jsontest.Depth(data) > jsonscan.MaxDepth {
		t.Fatalf("Valid(%q) accepts depth %d > MaxDepth", data, jsontest.Depth(data))
	}

	checkScalars(t, data, valid)

	trimmed := bytes.Trim(data, " \t\r\n")
	if len(trimmed) == 0 {
		return
	}
	switch trimmed[0] {
	case '{':
		checkObject(t, data, valid)
	case '[':
		checkArray(t, data, valid)
	}
	if valid {
		walk(t, trimmed, 0)
	}
}

// checkScalars checks String, Int, Float and Bool on data as a raw value.
func checkScalars(t testing.TB, data []byte, valid bool) {
	s, err := jsonscan.String(data)
	isLit := len(data) >= 2 && data[0] == '"' && data[len(data)-1] == '"' && valid
	if (err == nil) != isLit {
		t.Fatalf("String(%q) err = %v, but string literal = %v", data, err, isLit)
	}
	if err == nil {
		var std string
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("String(%q) = %q, but encoding/json: %v", data, s, err)
		}
		// encoding/json turns each invalid UTF-8 byte into U+FFFD; jsonscan
		// passes raw bytes through. Escapes must decode identically.
		if utf8.Valid(data) && s != std || jsontest.ToValidUTF8(s) != std {
			t.Fatalf("String(%q) = %q, encoding/json: %q", data, s, std)
		}
		if !jsonscan.KeyIs(data[1:len(data)-1], s) {
			t.Fatalf("KeyIs(%q, %q) = false", data[1:len(data)-1], s)
		}
		b, err := jsonscan.AppendString([]byte("x"), data)
		if err != nil || string(b) != "x"+s {
			t.Fatalf("AppendString(%q) = %q, %v", data, b, err)
		}
	}

	plainValue := len(data) > 0 && !bytes.Equal(data, []byte("null")) &&
		bytes.Equal(bytes.Trim(data, " \t\r\n"), data)

	i, err := jsonscan.Int(data)
	var stdI int64
	stdErr := json.Unmarshal(data, &stdI)
	if plainValue && (err == nil) != (stdErr == nil) || err == nil && (stdErr != nil || i != stdI) {
		t.Fatalf("Int(%q) = %d, %v; encoding/json: %d, %v", data, i, err, stdI, stdErr)
	}

	fl, err := jsonscan.Float(data)
	var stdF float64
	stdErr = json.Unmarshal(data, &stdF)
	if plainValue && (err == nil) != (stdErr == nil) || err == nil && (stdErr != nil || fl != stdF) {
		t.Fatalf("Float(%q) = %g, %v; encoding/json: %g, %v", data, fl, err, stdF, stdErr)
	}

	bl, err := jsonscan.Bool(data)
	var stdB bool
	stdErr = json.Unmarshal(data, &stdB)
	if plainValue && (err == nil) != (stdErr == nil) || err == nil && (stdErr != nil || bl != stdB) {
		t.Fatalf("Bool(%q) = %v, %v; encoding/json: %v, %v", data, bl, err, stdB, stdErr)
	}
}

type rawMember struct {
	key   string
	value []byte
}

// checkObject walks data with Iter and, when it is valid, compares the walk
// with a json.Decoder token walk, which (unlike a map) keeps every member,
// duplicates included, in order.
func checkObject(t testing.TB, data []byte, valid bool) {
	var it jsonscan.Iter
	var names [][]byte
	var values [][]byte
	for it.Object(data); it.Next(); {
		if !jsonscan.KeyIs(it.Key(), string(it.Name())) {
			t.Fatalf("KeyIs(%q, Name %q) = false", it.Key(), it.Name())
		}
		names = append(names, bytes.Clone(it.Name()))
		values = append(values, it.Value())
	}
	if (it.Err() == nil) != valid {
		t.Fatalf("Iter.Object(%q): Err = %v, Valid = %v", data, it.Err(), valid)
	}
	n := 0
	err := jsonscan.Object(data, func(k, v []byte) bool { n++; return true })
	if err != it.Err() || n != len(names) {
		t.Fatalf("Object(%q): %d members, %v; Iter: %d, %v", data, n, err, len(names), it.Err())
	}
	if !valid {
		return
	}
	want := decodeObject(t, data)
	if len(want) != len(names) {
		t.Fatalf("Iter.Object(%q): %d members, encoding/json: %d", data, len(names), len(want))
	}
	for i, m := range want {
		if jsontest.ToValidUTF8(string(names[i])) != m.key || !bytes.Equal(values[i], m.value) {
			t.Fatalf("Iter.Object(%q) member %d: %q: %q; encoding/json: %q: %q", data, i, names[i], values[i], m.key, m.value)
		}
	}
	// Member finds the first member of each name (checking a bounded number
	// of names keeps huge objects from making this quadratic).
	first := make(map[string]int)
	for i, name := range names {
		if _, seen := first[string(name)]; !seen && len(first) < 16 {
			first[string(name)] = i
		}
	}
	for name, i := range first {
		v, ok, err := jsonscan.Member(data, name)
		if !ok || err != nil || !bytes.Equal(v, values[i]) {
			t.Fatalf("Member(%q, %q) = %q, %v, %v; want %q", data, name, v, ok, err, values[i])
		}
	}
}

func decodeObject(t testing.TB, data []byte) []rawMember {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("decoding %q: %v %v", data, tok, err)
	}
	var ms []rawMember
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			t.Fatalf("decoding %q: key %v %v", data, tok, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decoding %q: %v", data, err)
		}
		ms = append(ms, rawMember{key, v})
	}
	return ms
}

func checkArray(t testing.TB, data []byte, valid bool) {
	var it jsonscan.Iter
	var elems [][]byte
	for it.Array(data); it.Next(); {
		elems = append(elems, it.Value())
	}
	if (it.Err() == nil) != valid {
		t.Fatalf("Iter.Array(%q): Err = %v, Valid = %v", data, it.Err(), valid)
	}
	n := 0
	err := jsonscan.Array(data, func([]byte) bool { n++; return true })
	if err != it.Err() || n != len(elems) {
		t.Fatalf("Array(%q): %d elements, %v; Iter: %d, %v", data, n, err, len(elems), it.Err())
	}
	if !valid {
		return
	}
	var want []json.RawMessage
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	if len(want) != len(elems) {
		t.Fatalf("Iter.Array(%q): %d elements, encoding/json: %d", data, len(elems), len(want))
	}
	for i := range want {
		if !bytes.Equal(elems[i], want[i]) {
			t.Fatalf("Iter.Array(%q) element %d = %q, encoding/json: %q", data, i, elems[i], want[i])
		}
	}
}

// walk checks every value inside a valid value v, found at depth d.
func walk(t testing.TB, v []byte, d int) {
	if !jsonscan.Valid(v) {
		t.Fatalf("value %q at depth %d is not Valid on its own", v, d)
	}
	var it jsonscan.Iter
	switch c := v[0]; {
	case c == '{':
		for it.Object(v); it.Next(); {
			walk(t, it.Value(), d+1)
		}
	case c == '[':
		for it.Array(v); it.Next(); {
			walk(t, it.Value(), d+1)
		}
	case c == '"':
		if _, err := jsonscan.String(v); err != nil {
			t.Fatalf("String(%q): %v", v, err)
		}
	case c == 't' || c == 'f':
		if _, err := jsonscan.Bool(v); err != nil {
			t.Fatalf("Bool(%q): %v", v, err)
		}
	case c == 'n':
		if string(v) != "null" {
			t.Fatalf("value %q is not null", v)
		}
	default:
		_, err := jsonscan.Float(v)
		_, stdErr := strconv.ParseFloat(string(v), 64)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("Float(%q): %v; strconv: %v", v, err, stdErr)
		}
	}
	if it.Err() != nil {
		t.Fatalf("walking %q: %v", v, it.Err())
	}
}
