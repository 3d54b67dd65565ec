package jwt_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/talowa/wedge/sdk/internal/jsontest"
	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/sdk/jwt"
	"github.com/talowa/wedge/wasm/abi"
)

var fuzzHeaders = []string{
	hdrHS256,
	`{"alg":"RS256","kid":"2024-01"}`,
	`{"alg":"none"}`,
	`{}`,
	`{"alg":"ES256","kid":"k\u00e9","typ":"at+jwt","x5t":"abc"}`,
	`{"alg":"HS256","crit":["exp"]}`,
	`{"alg":1}`,
	`{"kid":"a","kid":"b","\u0074yp":"c"}`,
	" { \"alg\" : \"HS256\" , \"kid\" :\t\"k\" } ",
	`{"kid":1,"kid":"x"}`,
	`[]`,
	`{"alg":"HS256"`,
}

var fuzzPayloads = []string{
	payload1,
	`{}`,
	`{"iss":"https://issuer","sub":"u","jti":"j","aud":["a","b"],"exp":1900000000,"nbf":1.5e9,"iat":1600000000.5}`,
	`{"aud":"api","exp":9223372036854775808,"nbf":-1e300}`,
	`{"iss":"\uD83D\uDE00\uD800","sub":"\u0000"}`,
	`{"exp":"1","aud":1}`,
	`{"aud":[1,"x",null]}`,
	`{"a":{"b":[1,2,{"c":"d"}]}}`,
	`{"exp":1e400}`,
	`{"iss":"a",}`,
	`[]`,
	` {}`,
	"{\"iss\":\"\xff\"}",
}

func FuzzParse(f *testing.F) {
	seeds := parseSeeds()
	for _, s := range seeds {
		f.Add(s)
	}
	var reused jwt.Token
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, &reused, data)
	})
}

// parseSeeds are real tokens and near misses.
func parseSeeds() [][]byte {
	seeds := []string{
		benchToken,
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
	}
	for _, h := range fuzzHeaders {
		for _, p := range fuzzPayloads[:4] {
			seeds = append(seeds, sign(h, p))
		}
	}
	for _, p := range fuzzPayloads {
		seeds = append(seeds, sign(hdrHS256, p))
	}
	good := sign(hdrHS256, payload1)
	parts := strings.Split(good, ".")
	h, p, s := parts[0], parts[1], parts[2]
	seeds = append(seeds,
		"", ".", "..", "...", "a.b", "a.b.c", "a.b.c.d", good+".", good+"."+s, h+"."+p,
		good[:len(good)-1], good[:len(good)-2], good[1:], h[:len(h)-1]+"."+p+"."+s,
		h+"=."+p+"."+s, h+"."+p+"=."+s, good+"=", good+"==",
		h+"."+p+"."+s[:5]+"\n"+s[5:], h[:3]+"\r\n"+h[3:]+"."+p+"."+s,
		good+"\n", good+" ", " "+good, h+".."+s, "."+p+"."+s,
		h+"."+enc(`[]`)+"."+s, h+"."+enc(` {}`)+"."+s,
		h+"."+p+"."+strings.Repeat("A", jwt.MaxTokenSize-len(h)-len(p)-2),
		h+"."+p+"."+strings.Repeat("A", jwt.MaxTokenSize-len(h)-len(p)-1),
		strings.ReplaceAll(good, "-", "+"), strings.ReplaceAll(good, "_", "/"),
	)
	out := make([][]byte, len(seeds))
	for i, s := range seeds {
		out[i] = []byte(s)
	}
	return out
}

// FuzzClaims builds tokens from arbitrary header and payload JSON, which
// reaches the JSON handling far more often than mutating base64 does.
func FuzzClaims(f *testing.F) {
	for _, h := range fuzzHeaders {
		for _, p := range fuzzPayloads {
			f.Add([]byte(h), []byte(p))
		}
	}
	var reused jwt.Token
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		fuzzClaims(t, &reused, header, payload)
	})
}

func fuzzClaims(t testing.TB, reused *jwt.Token, header, payload []byte) {
	si := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	raw := []byte(si + "." + base64.RawURLEncoding.EncodeToString(mac(si)))
	tok := checkParse(t, reused, raw)
	if len(raw) > jwt.MaxTokenSize {
		return
	}
	// Parse refuses exactly what its header and payload rules refuse.
	hdrOK := headerOK(header)
	payloadOK := len(payload) > 0 && payload[0] == '{'
	if (tok != nil) != (hdrOK && payloadOK) {
		t.Fatalf("header %q payload %q: parsed %v, header ok %v, payload ok %v", header, payload, tok != nil, hdrOK, payloadOK)
	}
	if tok != nil && !bytes.Equal(tok.Signature, mac(si)) {
		t.Fatalf("Signature %x, want %x", tok.Signature, mac(si))
	}
}

// checkParse parses data with a fresh Token and with reused, checks they
// agree, checks what a successful parse yields against encoding/json, and
// checks reused still parses a good token afterwards. It returns the fresh
// Token when the parse succeeded.
func checkParse(t testing.TB, reused *jwt.Token, data []byte) *jwt.Token {
	fresh := new(jwt.Token)
	errF := fresh.Parse(data)
	errR := reused.Parse(data)
	if (errF == nil) != (errR == nil) {
		t.Fatalf("Parse(%q): fresh Token %v, reused Token %v", data, errF, errR)
	}
	if errF != nil {
		if !errors.Is(errF, jwt.ErrMalformed) || !errors.Is(errR, jwt.ErrMalformed) {
			t.Fatalf("Parse(%q) = %v, %v; want ErrMalformed", data, errF, errR)
		}
		// Misuse, but it must not panic.
		_, _ = reused.Claims()
		_, _ = fresh.Claims()
	} else {
		if !sameToken(fresh, reused) {
			t.Fatalf("Parse(%q): reused Token differs from a fresh one", data)
		}
		checkToken(t, data, fresh)
		checkClaims(t, fresh, reused)
	}

	// The reused Token then parses a good token correctly, and data again
	// the same way.
	good := sign(hdrHS256, payload1)
	if err := reused.Parse([]byte(good)); err != nil {
		t.Fatalf("good token after %q: %v", data, err)
	}
	checkGood(t, reused, good)
	if err := reused.Parse(data); (err == nil) != (errF == nil) {
		t.Fatalf("Parse(%q) after a good token: %v, first time %v", data, err, errF)
	}
	if errF != nil {
		return nil
	}
	if !sameToken(fresh, reused) {
		t.Fatalf("Parse(%q) after a good token differs from a fresh parse", data)
	}
	checkClaims(t, fresh, reused)
	return fresh
}

// checkToken checks the fields of a successfully parsed token.
func checkToken(t testing.TB, data []byte, tok *jwt.Token) {
	if len(data) > jwt.MaxTokenSize {
		t.Fatalf("Parse accepted %d bytes", len(data))
	}
	parts := bytes.Split(data, []byte("."))
	if len(parts) != 3 {
		t.Fatalf("Parse accepted %d parts: %q", len(parts), data)
	}
	for i, got := range [][]byte{tok.Header, tok.Payload, tok.Signature} {
		// Strict decoding without line breaks: one encoding per value.
		if enc := base64.RawURLEncoding.EncodeToString(got); enc != string(parts[i]) {
			t.Fatalf("part %d %q decoded to %q, which encodes as %q", i, parts[i], got, enc)
		}
	}
	if !bytes.Equal(tok.SigningInput, data[:len(parts[0])+1+len(parts[1])]) {
		t.Fatalf("SigningInput %q of %q", tok.SigningInput, data)
	}
	if !headerOK(tok.Header) {
		t.Fatalf("Parse accepted header %q", tok.Header)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(tok.Header, &m); err != nil {
		t.Fatalf("header %q: %v", tok.Header, err)
	}
	var wantAlg abi.Alg
	if raw, ok := m["alg"]; ok {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("header %q: alg: %v", tok.Header, err)
		}
		wantAlg = abi.AlgByName([]byte(s))
	}
	if tok.Alg != wantAlg {
		t.Fatalf("header %q: Alg %d, want %d", tok.Header, tok.Alg, wantAlg)
	}
	for name, got := range map[string][]byte{"kid": tok.Kid, "typ": tok.Typ} {
		var want string
		if raw, ok := m[name]; ok {
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("header %q: %s: %v", tok.Header, name, err)
			}
		}
		if jsontest.ToValidUTF8(string(got)) != want {
			t.Fatalf("header %q: %s %q, want %q", tok.Header, name, got, want)
		}
	}
	if tok.Payload[0] != '{' {
		t.Fatalf("payload %q is not an object", tok.Payload)
	}
}

// headerOK reports whether Parse should accept header, by encoding/json: a
// JSON object within jsonscan.MaxDepth, with string alg, kid and typ
// members (every occurrence) and no crit.
func headerOK(header []byte) bool {
	members, ok := members(header)
	if !ok {
		return false
	}
	for _, m := range members {
		switch m.key {
		case "crit":
			return false
		case "alg", "kid", "typ":
			if m.value[0] != '"' {
				return false
			}
		}
	}
	return true
}

type member struct {
	key   string
	value json.RawMessage
}

// members lists every member of a JSON object, duplicates included, in
// order; ok is false unless data is a JSON object within MaxDepth.
func members(data []byte) (ms []member, ok bool) {
	if !json.Valid(data) || jsontest.Depth(data) > jsonscan.MaxDepth {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		ms = append(ms, member{tok.(string), v})
	}
	return ms, true
}

// checkClaims checks the claims of a parsed token against encoding/json and
// against the same token parsed into another Token.
func checkClaims(t testing.TB, tok, other *jwt.Token) {
	c, err := tok.Claims()
	c2, err2 := other.Claims()
	if (err == nil) != (err2 == nil) || !sameClaims(c, c2) {
		t.Fatalf("payload %q: Claims differ between Tokens: %v, %v", tok.Payload, err, err2)
	}
	// Claims again: the same (it reuses its buffer).
	if c3, err3 := tok.Claims(); (err3 == nil) != (err == nil) || !sameClaims(c, c3) {
		t.Fatalf("payload %q: second Claims differs", tok.Payload)
	}

	ms, jsonOK := members(tok.Payload)
	want := jwt.Claims{}
	wantOK := jsonOK
	var auds []string
	hasAud, hasExp := false, false
	for _, m := range ms {
		hasExp = hasExp || m.key == "exp"
		var s string
		strErr := json.Unmarshal(m.value, &s)
		switch m.key {
		case "iss", "sub", "jti":
			if m.value[0] != '"' || strErr != nil { // Unmarshal takes null too
				wantOK = false
			}
			b := []byte(s)
			switch m.key {
			case "iss":
				want.Issuer = b
			case "sub":
				want.Subject = b
			case "jti":
				want.ID = b
			}
		case "exp", "nbf", "iat":
			n, ok := numericDate(m.value)
			if !ok {
				wantOK = false
			}
			switch m.key {
			case "exp":
				want.Expiry, want.HasExpiry = n, true
			case "nbf":
				want.NotBefore, want.HasNotBefore = n, true
			case "iat":
				want.IssuedAt, want.HasIssuedAt = n, true
			}
		case "aud":
			hasAud = true
			auds = auds[:0]
			switch m.value[0] {
			case '"':
				auds = append(auds, s)
			case '[':
				var elems []json.RawMessage
				_ = json.Unmarshal(m.value, &elems)
				for _, e := range elems {
					var s string
					if e[0] == '"' && json.Unmarshal(e, &s) == nil {
						auds = append(auds, s)
					}
				}
			default:
				wantOK = false
			}
		}
	}
	if (err == nil) != wantOK {
		t.Fatalf("payload %q: Claims err = %v, encoding/json says ok = %v", tok.Payload, err, wantOK)
	}
	if err != nil {
		if !errors.Is(err, jwt.ErrMalformed) {
			t.Fatalf("payload %q: Claims = %v, want ErrMalformed", tok.Payload, err)
		}
		return
	}
	if jsontest.ToValidUTF8(string(c.Issuer)) != string(want.Issuer) || jsontest.ToValidUTF8(string(c.Subject)) != string(want.Subject) ||
		jsontest.ToValidUTF8(string(c.ID)) != string(want.ID) || c.Expiry != want.Expiry || c.NotBefore != want.NotBefore ||
		c.IssuedAt != want.IssuedAt {
		t.Fatalf("payload %q: Claims %+v, encoding/json %+v", tok.Payload, c, want)
	}
	for _, a := range auds {
		if utf8.ValidString(a) && !c.HasAudience(a) {
			t.Fatalf("payload %q: HasAudience(%q) = false", tok.Payload, a)
		}
	}
	if !hasAud && (c.HasAudience("") || c.HasAudience("api")) {
		t.Fatalf("payload %q: HasAudience true without aud", tok.Payload)
	}
	// Validate never panics and returns only its own errors.
	for _, v := range []jwt.Validation{
		{},
		{Now: time.Unix(1_700_000_000, 0), Leeway: time.Minute, Issuer: "https://issuer", Audience: "api", RequireExpiry: true},
		{Now: time.Unix(c.Expiry, 0)},
		{Now: time.Unix(c.NotBefore, 0), Leeway: -time.Hour},
		{Now: time.Unix(math.MaxInt64, 0), Leeway: math.MaxInt64},
		{Now: time.Unix(math.MinInt64, 0), Leeway: math.MinInt64},
	} {
		switch err := c.Validate(v); err {
		case nil, jwt.ErrExpired, jwt.ErrNotYetValid, jwt.ErrIssuedLater, jwt.ErrIssuer, jwt.ErrAudience, jwt.ErrNoExpiry:
		default:
			t.Fatalf("Validate = %v", err)
		}
	}
	if _, ok := tok.Claim("exp"); ok != hasExp {
		t.Fatalf("payload %q: Claim(exp) = %v", tok.Payload, ok)
	}
}

// numericDate is the expected reading of a NumericDate: an int64 when the
// number is one, else the float truncated toward zero and saturated.
func numericDate(raw []byte) (int64, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil || len(raw) == 0 || raw[0] == 'n' {
		return 0, false // not a number (json.Number also accepts strings)
	}
	if raw[0] == '"' {
		return 0, false
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	switch {
	case err != nil:
		return 0, false
	case f >= math.MaxInt64:
		return math.MaxInt64, true
	case f <= math.MinInt64:
		return math.MinInt64, true
	}
	return int64(f), true
}

func sameClaims(a, b jwt.Claims) bool {
	return bytes.Equal(a.Issuer, b.Issuer) && bytes.Equal(a.Subject, b.Subject) && bytes.Equal(a.ID, b.ID) &&
		a.Expiry == b.Expiry && a.NotBefore == b.NotBefore && a.IssuedAt == b.IssuedAt &&
		a.HasExpiry == b.HasExpiry && a.HasNotBefore == b.HasNotBefore && a.HasIssuedAt == b.HasIssuedAt
}
