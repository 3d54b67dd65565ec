package jwt_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/sdk/jwt"
	"github.com/talowa/wedge/wasm/abi"
)

var testKey = []byte("test-secret-key")

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// mac is the HS256 signature of signingInput under testKey.
func mac(signingInput string) []byte {
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte(signingInput))
	return m.Sum(nil)
}

// sign builds an HS256-signed compact JWS of the header and payload JSON.
func sign(header, payload string) string {
	si := enc(header) + "." + enc(payload)
	return si + "." + base64.RawURLEncoding.EncodeToString(mac(si))
}

const (
	hdrHS256 = `{"alg":"HS256","kid":"k1","typ":"JWT"}`
	payload1 = `{"sub":"user-1","exp":1900000000}`
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name, header, payload string
		alg                   abi.Alg
		kid, typ              string
	}{
		{"HS256 with kid and typ", hdrHS256, payload1, abi.AlgHS256, "k1", "JWT"},
		{"alg only", `{"alg":"HS256"}`, `{}`, abi.AlgHS256, "", ""},
		{"HS384", `{"alg":"HS384"}`, `{}`, abi.AlgHS384, "", ""},
		{"HS512", `{"alg":"HS512"}`, `{}`, abi.AlgHS512, "", ""},
		{"RS256", `{"alg":"RS256"}`, `{}`, abi.AlgRS256, "", ""},
		{"RS384", `{"alg":"RS384"}`, `{}`, abi.AlgRS384, "", ""},
		{"RS512", `{"alg":"RS512"}`, `{}`, abi.AlgRS512, "", ""},
		{"PS256", `{"alg":"PS256"}`, `{}`, abi.AlgPS256, "", ""},
		{"PS384", `{"alg":"PS384"}`, `{}`, abi.AlgPS384, "", ""},
		{"PS512", `{"alg":"PS512"}`, `{}`, abi.AlgPS512, "", ""},
		{"ES256", `{"alg":"ES256"}`, `{}`, abi.AlgES256, "", ""},
		{"ES384", `{"alg":"ES384"}`, `{}`, abi.AlgES384, "", ""},
		{"EdDSA", `{"alg":"EdDSA"}`, `{}`, abi.AlgEdDSA, "", ""},
		{"none", `{"alg":"none"}`, `{}`, 0, "", ""},
		{"lower case alg", `{"alg":"hs256"}`, `{}`, 0, "", ""},
		{"unknown alg", `{"alg":"HS257"}`, `{}`, 0, "", ""},
		{"escaped alg", `{"alg":"HS\u0032\u00356"}`, `{}`, abi.AlgHS256, "", ""},
		{"no alg", `{"kid":"x"}`, `{}`, 0, "x", ""},
		{"empty header", `{}`, `{}`, 0, "", ""},
		{"escaped kid", `{"alg":"ES256","kid":"k\u00e9\/1\n"}`, `{}`, abi.AlgES256, "ké/1\n", ""},
		{"escaped member names", `{"\u0061lg":"RS256","\u006bid":"a","t\u0079p":"b"}`, `{}`, abi.AlgRS256, "a", "b"},
		{"empty kid", `{"alg":"HS256","kid":""}`, `{}`, abi.AlgHS256, "", ""},
		{"unicode kid", `{"alg":"HS256","kid":"ключ-🔑"}`, `{}`, abi.AlgHS256, "ключ-🔑", ""},
		{"other header fields", `{"alg":"HS256","jku":"https://x","x5c":["a","b"],"nested":{"crit":1},"typ":"at+jwt"}`, `{}`, abi.AlgHS256, "", "at+jwt"},
		{"whitespace in header", " { \"alg\" : \"HS256\" , \"kid\" : \"k\" } ", `{}`, abi.AlgHS256, "k", ""},
		{"duplicate kid, last wins", `{"kid":"a","kid":"b"}`, `{}`, 0, "b", ""},
		{"rich payload", hdrHS256, `{"a":[1,2,{"b":null}],"c":"\u00e9"}`, abi.AlgHS256, "k1", "JWT"},
		{"payload not validated by Parse", hdrHS256, `{"a":`, abi.AlgHS256, "k1", "JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := sign(tt.header, tt.payload)
			tok, err := jwt.Parse([]byte(raw))
			if err != nil {
				t.Fatalf("Parse(%q): %v", raw, err)
			}
			si := raw[:strings.LastIndexByte(raw, '.')]
			if tok.Alg != tt.alg || string(tok.Kid) != tt.kid || string(tok.Typ) != tt.typ {
				t.Errorf("Alg %d Kid %q Typ %q; want %d %q %q", tok.Alg, tok.Kid, tok.Typ, tt.alg, tt.kid, tt.typ)
			}
			if string(tok.Header) != tt.header || string(tok.Payload) != tt.payload {
				t.Errorf("Header %q Payload %q; want %q %q", tok.Header, tok.Payload, tt.header, tt.payload)
			}
			if string(tok.SigningInput) != si {
				t.Errorf("SigningInput %q, want %q", tok.SigningInput, si)
			}
			if !hmac.Equal(tok.Signature, mac(si)) || !hmac.Equal(mac(string(tok.SigningInput)), tok.Signature) {
				t.Errorf("Signature %x does not verify", tok.Signature)
			}
		})
	}
}

func TestParseSizes(t *testing.T) {
	// A token of exactly MaxTokenSize is accepted, one byte more is not.
	// Pad the payload so that the signature fills the rest with a length
	// base64 allows (not 4n+1).
	pl := payload1
	si := enc(hdrHS256) + "." + enc(pl)
	for (jwt.MaxTokenSize-len(si)-1)%4 == 1 {
		pl += " "
		si = enc(hdrHS256) + "." + enc(pl)
	}
	sigLen := jwt.MaxTokenSize - len(si) - 1
	raw := si + "." + strings.Repeat("A", sigLen)
	var tok jwt.Token
	if err := tok.Parse([]byte(raw)); err != nil || len(raw) != jwt.MaxTokenSize || len(tok.Signature) != sigLen*3/4 {
		t.Errorf("Parse(%d bytes): %v, signature %d bytes", len(raw), err, len(tok.Signature))
	}
	for _, n := range []int{jwt.MaxTokenSize + 1, jwt.MaxTokenSize + 3, 1 << 20} {
		raw := si + "." + strings.Repeat("A", n-len(si)-1)
		if err := tok.Parse([]byte(raw)); !errors.Is(err, jwt.ErrMalformed) {
			t.Errorf("Parse(%d bytes) = %v, want ErrMalformed", len(raw), err)
		}
	}
	// Big but legal parts, and an empty signature.
	big := `{"data":"` + strings.Repeat("x", 8000) + `"}`
	if err := tok.Parse([]byte(sign(hdrHS256, big))); err != nil || string(tok.Payload) != big {
		t.Errorf("big payload: %v", err)
	}
	if err := tok.Parse([]byte(si + ".")); err != nil || len(tok.Signature) != 0 || string(tok.Payload) != pl {
		t.Errorf("empty signature: %v, %q", err, tok.Signature)
	}
}

func TestParseMalformed(t *testing.T) {
	good := sign(hdrHS256, payload1)
	parts := strings.Split(good, ".")
	h, p, s := parts[0], parts[1], parts[2]
	std := base64.URLEncoding.EncodeToString // with padding
	tests := []struct {
		name string
		raw  string
	}{
		{"empty", ""},
		{"no dots", h},
		{"one dot", h + "." + p},
		{"four parts", good + "." + s},
		{"five parts", good + ".."},
		{"trailing dot", good + "."},
		{"dots only", ".."},
		{"empty header", "." + p + "." + s},
		{"empty payload", h + ".." + s},
		{"all empty but header", h + ".."},
		// Header encoding.
		{"header bad char", "*" + h[1:] + "." + p + "." + s},
		{"header std alphabet +", h[:4] + "+" + h[5:] + "." + p + "." + s},
		{"header std alphabet /", h[:4] + "/" + h[5:] + "." + p + "." + s},
		{"header padding", std([]byte(`{"alg":"HS256" }`)) + "." + p + "." + s},
		{"header one pad", enc(`{"alg":"HS256"}`) + "=." + p + "." + s},
		{"header length 4n+1", len41(h) + "." + p + "." + s},
		{"header non-canonical bits", enc(`{}`)[:2] + "z." + p + "." + s}, // "e30" -> "e3z"
		{"header space", h[:4] + " " + h[4:] + "." + p + "." + s},
		{"header newline", h[:4] + "\n" + h[4:] + "." + p + "." + s},
		{"header CRLF", h[:4] + "\r\n" + h[4:] + "." + p + "." + s},
		{"header trailing newline", h + "\n." + p + "." + s},
		// Header content.
		{"header not JSON", enc("hello") + "." + p + "." + s},
		{"header array", enc(`["alg","HS256"]`) + "." + p + "." + s},
		{"header string", enc(`"HS256"`) + "." + p + "." + s},
		{"header null", enc(`null`) + "." + p + "." + s},
		{"header truncated", enc(`{"alg":"HS256"`) + "." + p + "." + s},
		{"header trailing garbage", enc(`{"alg":"HS256"}x`) + "." + p + "." + s},
		{"header two objects", enc(`{"alg":"HS256"}{}`) + "." + p + "." + s},
		{"header trailing comma", enc(`{"alg":"HS256",}`) + "." + p + "." + s},
		{"header bad value late", enc(`{"alg":"HS256","x":tru}`) + "." + p + "." + s},
		{"header bad escape", enc(`{"alg":"HS256","kid":"\x"}`) + "." + p + "." + s},
		{"header control char", enc("{\"alg\":\"HS\x01256\"}") + "." + p + "." + s},
		{"alg not a string", enc(`{"alg":256}`) + "." + p + "." + s},
		{"alg null", enc(`{"alg":null}`) + "." + p + "." + s},
		{"alg array", enc(`{"alg":["HS256"]}`) + "." + p + "." + s},
		{"kid number", enc(`{"alg":"HS256","kid":1}`) + "." + p + "." + s},
		{"kid object", enc(`{"alg":"HS256","kid":{}}`) + "." + p + "." + s},
		{"typ bool", enc(`{"alg":"HS256","typ":true}`) + "." + p + "." + s},
		{"crit", enc(`{"alg":"HS256","crit":["exp"],"exp":1}`) + "." + p + "." + s},
		{"crit empty", enc(`{"alg":"HS256","crit":[]}`) + "." + p + "." + s},
		{"crit first", enc(`{"crit":["b64"],"b64":false,"alg":"HS256"}`) + "." + p + "." + s},
		{"crit escaped name", enc(`{"alg":"HS256","\u0063rit":["x"]}`) + "." + p + "." + s},
		{"header too deep", enc(`{"a":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`) + "." + p + "." + s},
		// Payload.
		{"payload bad char", h + ".*" + p[1:] + "." + s},
		{"payload padding", h + "." + std([]byte(`{"a":1}`)) + "." + s},
		{"payload length 4n+1", h + "." + len41(p) + "." + s},
		{"payload newline", h + "." + p[:3] + "\n" + p[3:] + "." + s},
		{"payload CR", h + "." + p[:3] + "\r" + p[3:] + "." + s},
		{"payload array", h + "." + enc(`[{"a":1}]`) + "." + s},
		{"payload string", h + "." + enc(`"{}"`) + "." + s},
		{"payload number", h + "." + enc(`1`) + "." + s},
		{"payload null", h + "." + enc(`null`) + "." + s},
		{"payload leading space", h + "." + enc(` {}`) + "." + s},
		{"payload not JSON", h + "." + enc(`hello`) + "." + s},
		// Signature.
		{"signature bad char", h + "." + p + "." + s[:4] + "*"},
		{"signature padding", h + "." + p + "." + s + "="},
		{"signature std padding", h + "." + p + "." + std(mac(h+"."+p))},
		{"signature length 4n+1", h + "." + p + "." + len41(s)},
		{"signature newline", h + "." + p + "." + s[:5] + "\n" + s[5:]},
		{"signature trailing newline", h + "." + p + "." + s + "\n"},
		{"signature trailing CRLF", h + "." + p + "." + s + "\r\n"},
		{"signature space", h + "." + p + "." + s + " "},
		// JWE (five parts) and nested dots.
		{"JWE", h + ".." + p + "." + s + "." + s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := jwt.Parse([]byte(tt.raw))
			if !errors.Is(err, jwt.ErrMalformed) {
				t.Fatalf("Parse(%q) = %v, want ErrMalformed", tt.raw, err)
			}
			if tok == nil {
				t.Fatal("Parse returned a nil Token")
			}
			// A Token that failed, reused, parses a good token correctly.
			if err := tok.Parse([]byte(good)); err != nil {
				t.Fatalf("good token after %q: %v", tt.raw, err)
			}
			checkGood(t, tok, good)
		})
	}
}

// len41 extends a base64 segment to a length of the form 4n+1, which no
// unpadded base64 encoding has.
func len41(s string) string {
	for len(s)%4 != 1 {
		s += "A"
	}
	return s
}

// checkGood checks tok holds the fields of sign(hdrHS256, payload1).
func checkGood(t testing.TB, tok *jwt.Token, raw string) {
	t.Helper()
	si := raw[:strings.LastIndexByte(raw, '.')]
	if tok.Alg != abi.AlgHS256 || string(tok.Kid) != "k1" || string(tok.Typ) != "JWT" ||
		string(tok.Header) != hdrHS256 || string(tok.Payload) != payload1 ||
		string(tok.SigningInput) != si || !hmac.Equal(tok.Signature, mac(si)) {
		t.Errorf("token fields: Alg %d Kid %q Typ %q Header %q Payload %q SigningInput %q",
			tok.Alg, tok.Kid, tok.Typ, tok.Header, tok.Payload, tok.SigningInput)
	}
	c, err := tok.Claims()
	if err != nil || string(c.Subject) != "user-1" || c.Expiry != 1900000000 {
		t.Errorf("claims: %q %d %v", c.Subject, c.Expiry, err)
	}
}

func TestTokenReuse(t *testing.T) {
	const (
		hdrRS     = `{"alg":"RS256"}`
		hdrES     = `{"alg":"ES256","kid":"a-much-longer-key-identifier-than-before","typ":"at+jwt"}`
		hdrKid    = `{"kid":"\u00e9"}`
		hdrSpaced = `{"alg":"HS256", "kid":"k1","typ":"JWT"}` // same JSON, other bytes
		hdrTypKid = `{"typ":"x","kid":"y"}`
		hdrCrit   = `{"alg":"HS256","kid":"k1","typ":"JWT","crit":["x"]}`
		hdrBadKid = `{"alg":"HS256","kid":7}`
	)
	type want struct {
		alg       abi.Alg
		kid, typ  string
		header    string
		payload   string
		malformed bool
	}
	ok := func(alg abi.Alg, kid, typ, header, payload string) want {
		return want{alg, kid, typ, header, payload, false}
	}
	bad := want{malformed: true}
	good := sign(hdrHS256, payload1)
	h, p, s := func() (string, string, string) {
		x := strings.Split(good, ".")
		return x[0], x[1], x[2]
	}()
	steps := []struct {
		name string
		raw  string
		want want
	}{
		{"first", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"same again (cached header)", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"cached header, new payload", sign(hdrHS256, `{"sub":"user-2"}`), ok(abi.AlgHS256, "k1", "JWT", hdrHS256, `{"sub":"user-2"}`)},
		{"header without kid and typ", sign(hdrRS, `{"n":1}`), ok(abi.AlgRS256, "", "", hdrRS, `{"n":1}`)},
		{"back to the first header", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"longer header", sign(hdrES, `{}`), ok(abi.AlgES256, "a-much-longer-key-identifier-than-before", "at+jwt", hdrES, `{}`)},
		{"shorter header after longer", sign(hdrKid, `{"x":"y"}`), ok(0, "é", "", hdrKid, `{"x":"y"}`)},
		{"kid and typ swapped order", sign(hdrTypKid, `{}`), ok(0, "y", "x", hdrTypKid, `{}`)},
		{"same JSON, other bytes", sign(hdrSpaced, `{}`), ok(abi.AlgHS256, "k1", "JWT", hdrSpaced, `{}`)},
		{"crit header after cached one", sign(hdrCrit, `{}`), bad},
		{"good after crit", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"bad kid type", sign(hdrBadKid, `{}`), bad},
		{"cached header after failed header", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"cached header, bad payload", h + ".!!!." + s, bad},
		{"good after bad payload", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"cached header, bad signature", h + "." + p + ".!!!", bad},
		{"good after bad signature", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"cached header, non-object payload", h + "." + enc(`[]`) + "." + s, bad},
		{"header that extends the cached one", h + "A." + p + "." + s, bad},
		{"header that is a prefix of the cached one", h[:len(h)-4] + "." + p + "." + s, bad},
		{"good after prefix", good, ok(abi.AlgHS256, "k1", "JWT", hdrHS256, payload1)},
		{"too long", good + "." + strings.Repeat("A", jwt.MaxTokenSize), bad},
		{"last", sign(hdrRS, payload1), ok(abi.AlgRS256, "", "", hdrRS, payload1)},
	}
	var tok jwt.Token
	for _, st := range steps {
		raw := []byte(st.raw)
		err := tok.Parse(raw)
		if st.want.malformed {
			if !errors.Is(err, jwt.ErrMalformed) {
				t.Fatalf("%s: Parse = %v, want ErrMalformed", st.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Parse: %v", st.name, err)
		}
		w := st.want
		if tok.Alg != w.alg || string(tok.Kid) != w.kid || string(tok.Typ) != w.typ ||
			string(tok.Header) != w.header || string(tok.Payload) != w.payload {
			t.Fatalf("%s: Alg %d Kid %q Typ %q Header %q Payload %q; want %d %q %q %q %q", st.name,
				tok.Alg, tok.Kid, tok.Typ, tok.Header, tok.Payload, w.alg, w.kid, w.typ, w.header, w.payload)
		}
		// A fresh Token agrees with the reused one.
		fresh, err := jwt.Parse(raw)
		if err != nil || !sameToken(fresh, &tok) {
			t.Fatalf("%s: fresh Parse differs from the reused Token (%v)", st.name, err)
		}
		si := st.raw[:strings.LastIndexByte(st.raw, '.')]
		if string(tok.SigningInput) != si || !hmac.Equal(tok.Signature, mac(si)) {
			t.Fatalf("%s: SigningInput %q or Signature wrong", st.name, tok.SigningInput)
		}
	}
}

func sameToken(a, b *jwt.Token) bool {
	return a.Alg == b.Alg && bytes.Equal(a.Kid, b.Kid) && bytes.Equal(a.Typ, b.Typ) &&
		bytes.Equal(a.Header, b.Header) && bytes.Equal(a.Payload, b.Payload) &&
		bytes.Equal(a.SigningInput, b.SigningInput) && bytes.Equal(a.Signature, b.Signature)
}

func TestTokenOwnsHeaderFields(t *testing.T) {
	raw := []byte(sign(hdrHS256, payload1))
	var tok jwt.Token
	if err := tok.Parse(raw); err != nil {
		t.Fatal(err)
	}
	// Kid and Typ are copies: the caller may reuse its input buffer.
	clear(raw)
	if string(tok.Kid) != "k1" || string(tok.Typ) != "JWT" || string(tok.Header) != hdrHS256 {
		t.Errorf("after clearing the input: Kid %q Typ %q Header %q", tok.Kid, tok.Typ, tok.Header)
	}
	// Appending to the exposed slices must not corrupt the header cache.
	raw = []byte(sign(hdrHS256, payload1))
	if err := tok.Parse(raw); err != nil {
		t.Fatal(err)
	}
	_ = append(tok.Header, "XXXXXXXX"...)
	_ = append(tok.Kid, "YYYYYYYY"...)
	_ = append(tok.Payload, "ZZZZZZZZ"...)
	if err := tok.Parse(raw); err != nil {
		t.Fatal(err)
	}
	checkGood(t, &tok, string(raw))
}

func TestParseAllocs(t *testing.T) {
	raw := []byte(sign(hdrHS256, `{"iss":"https:\/\/issuer","sub":"user-\u00e9","aud":["a","b"],"exp":1900000000}`))
	var tok jwt.Token
	if err := tok.Parse(raw); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := tok.Parse(raw); err != nil {
			panic(err)
		}
		c, err := tok.Claims()
		if err != nil || !c.HasAudience("b") || string(c.Subject) != "user-é" {
			panic("claims")
		}
	})
	if allocs != 0 {
		t.Errorf("reused Parse + Claims allocates %v times, want 0", allocs)
	}
}

// claimsOf parses a token with the given payload and returns its claims.
func claimsOf(t *testing.T, payload string) (jwt.Claims, error) {
	t.Helper()
	tok, err := jwt.Parse([]byte(sign(hdrHS256, payload)))
	if err != nil {
		t.Fatalf("Parse(payload %q): %v", payload, err)
	}
	return tok.Claims()
}

func TestClaims(t *testing.T) {
	tests := []struct {
		name          string
		payload       string
		iss, sub, jti string
		exp, nbf, iat int64
		malformed     bool
	}{
		{name: "empty", payload: `{}`},
		{name: "all", payload: `{"iss":"https://issuer","sub":"user-1","jti":"id-1","exp":1900000000,"nbf":1600000000,"iat":1600000001,"aud":"api"}`,
			iss: "https://issuer", sub: "user-1", jti: "id-1", exp: 1900000000, nbf: 1600000000, iat: 1600000001},
		{name: "escaped strings", payload: `{"iss":"https:\/\/issuer","sub":"\u00e9\"\\\n","jti":"\uD83D\uDE00"}`,
			iss: "https://issuer", sub: "é\"\\\n", jti: "\U0001F600"},
		{name: "lone surrogate", payload: `{"sub":"a\uD800b"}`, sub: "a\ufffdb"},
		{name: "escaped names", payload: `{"\u0069ss":"i","s\u0075b":"s","\u006a\u0074\u0069":"j","\u0065xp":5}`,
			iss: "i", sub: "s", jti: "j", exp: 5},
		{name: "unknown claims and whitespace", payload: "{ \"x\" : {\"iss\":\"no\"} , \"iss\" : \"yes\" ,\n\"y\":[\"exp\",1] }", iss: "yes"},
		{name: "claim names are case sensitive", payload: `{"ISS":"x","Exp":1}`},
		{name: "duplicates: last wins", payload: `{"iss":"a","iss":"b","exp":1,"exp":2}`, iss: "b", exp: 2},
		{name: "empty strings", payload: `{"iss":"","sub":"","jti":""}`},
		{name: "negative dates", payload: `{"exp":-1,"nbf":-2,"iat":-3}`, exp: -1, nbf: -2, iat: -3},
		{name: "fractional", payload: `{"exp":1900000000.75,"nbf":1600000000.5,"iat":1600000000.999}`,
			exp: 1900000000, nbf: 1600000000, iat: 1600000000},
		{name: "negative fraction truncates toward zero", payload: `{"exp":-1.5}`, exp: -1},
		{name: "exponents", payload: `{"exp":1.9e9,"nbf":16E8,"iat":1.6e+9}`, exp: 1900000000, nbf: 1600000000, iat: 1600000000},
		{name: "integral float", payload: `{"exp":1900000000.0}`, exp: 1900000000},
		{name: "int64 limits", payload: `{"exp":9223372036854775807,"nbf":-9223372036854775808}`, exp: math.MaxInt64, nbf: math.MinInt64},
		{name: "one past int64 limits saturates", payload: `{"exp":9223372036854775808,"nbf":-9223372036854775809}`, exp: math.MaxInt64, nbf: math.MinInt64},
		{name: "huge saturates", payload: `{"exp":1e300,"nbf":1e300,"iat":-1e300}`, exp: math.MaxInt64, nbf: math.MaxInt64, iat: math.MinInt64},
		{name: "huge integer saturates", payload: `{"exp":` + strings.Repeat("9", 40) + `}`, exp: math.MaxInt64},
		{name: "tiny", payload: `{"exp":1e-300}`, exp: 0},
		{name: "aud array", payload: `{"aud":["a","b"],"sub":"s"}`, sub: "s"},
		{name: "iss number", payload: `{"iss":1}`, malformed: true},
		{name: "sub null", payload: `{"sub":null}`, malformed: true},
		{name: "jti array", payload: `{"jti":["x"]}`, malformed: true},
		{name: "exp string", payload: `{"exp":"1900000000"}`, malformed: true},
		{name: "exp bool", payload: `{"exp":true}`, malformed: true},
		{name: "exp null", payload: `{"exp":null}`, malformed: true},
		{name: "nbf object", payload: `{"nbf":{}}`, malformed: true},
		{name: "iat array", payload: `{"iat":[1]}`, malformed: true},
		{name: "exp out of float range", payload: `{"exp":1e400}`, malformed: true},
		{name: "aud number", payload: `{"aud":1}`, malformed: true},
		{name: "aud null", payload: `{"aud":null}`, malformed: true},
		{name: "aud object", payload: `{"aud":{"a":1}}`, malformed: true},
		{name: "aud bool", payload: `{"aud":true}`, malformed: true},
		{name: "bad type after good claims", payload: `{"iss":"a","exp":"x"}`, malformed: true},
		{name: "syntax error", payload: `{"iss":"a",}`, malformed: true},
		{name: "truncated", payload: `{"iss":"a"`, malformed: true},
		{name: "trailing garbage", payload: `{"iss":"a"} x`, malformed: true},
		{name: "bad escape", payload: `{"iss":"\q"}`, malformed: true},
		{name: "bad number", payload: `{"exp":01}`, malformed: true},
		{name: "too deep", payload: `{"x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, malformed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := claimsOf(t, tt.payload)
			if tt.malformed {
				if !errors.Is(err, jwt.ErrMalformed) {
					t.Fatalf("Claims = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Claims: %v", err)
			}
			if string(c.Issuer) != tt.iss || string(c.Subject) != tt.sub || string(c.ID) != tt.jti ||
				c.Expiry != tt.exp || c.NotBefore != tt.nbf || c.IssuedAt != tt.iat {
				t.Errorf("got iss %q sub %q jti %q exp %d nbf %d iat %d; want %q %q %q %d %d %d",
					c.Issuer, c.Subject, c.ID, c.Expiry, c.NotBefore, c.IssuedAt,
					tt.iss, tt.sub, tt.jti, tt.exp, tt.nbf, tt.iat)
			}
		})
	}
}

func TestClaimsRepeatable(t *testing.T) {
	tok, err := jwt.Parse([]byte(sign(hdrHS256, `{"iss":"\u0069ssuer","sub":"\u0073ubject","jti":"\u006a"}`)))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := tok.Claims()
		if err != nil || string(c.Issuer) != "issuer" || string(c.Subject) != "subject" || string(c.ID) != "j" {
			t.Fatalf("Claims: %q %q %q %v", c.Issuer, c.Subject, c.ID, err)
		}
	}
	// Claims of a later token on the same Token reflect that token.
	if err := tok.Parse([]byte(sign(hdrHS256, `{"iss":"other"}`))); err != nil {
		t.Fatal(err)
	}
	c, err := tok.Claims()
	if err != nil || string(c.Issuer) != "other" || c.Subject != nil || c.ID != nil {
		t.Fatalf("Claims after reparse: %q %q %q %v", c.Issuer, c.Subject, c.ID, err)
	}
	// Before any Parse, Claims fails cleanly.
	var zero jwt.Token
	if _, err := zero.Claims(); !errors.Is(err, jwt.ErrMalformed) {
		t.Errorf("zero Token Claims = %v, want ErrMalformed", err)
	}
}

func TestClaim(t *testing.T) {
	tok, err := jwt.Parse([]byte(sign(hdrHS256, `{"exp":1900000000,"roles":["a","b"],"\u006eame":"n","x":null}`)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"exp", "1900000000", true},
		{"roles", `["a","b"]`, true},
		{"name", `"n"`, true},
		{"x", "null", true},
		{"missing", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		v, ok := tok.Claim(tt.name)
		if string(v) != tt.value || ok != tt.ok {
			t.Errorf("Claim(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.value, tt.ok)
		}
	}
	// A claim behind a syntax error is not found.
	tok, err = jwt.Parse([]byte(sign(hdrHS256, `{"a":1,,"b":2}`)))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := tok.Claim("b"); ok {
		t.Errorf("Claim behind a syntax error = %q, true", v)
	}
}

func TestHasAudience(t *testing.T) {
	tests := []struct {
		payload, aud string
		want         bool
	}{
		{`{"aud":"api"}`, "api", true},
		{`{"aud":"api"}`, "API", false},
		{`{"aud":"api"}`, "ap", false},
		{`{"aud":"api"}`, "apis", false},
		{`{"aud":"api"}`, "", false},
		{`{"aud":""}`, "", true},
		{`{"aud":"\u0061pi"}`, "api", true},
		{`{"aud":"a\"b"}`, `a"b`, true},
		{`{"aud":"a\"b"}`, `a\"b`, false},
		{`{"aud":["a","api"]}`, "api", true},
		{`{"aud":["a","api"]}`, "a", true},
		{`{"aud":["a","api"]}`, "b", false},
		{`{"aud":[]}`, "api", false},
		{`{"aud":[]}`, "", false},
		{`{"aud":["\u0061pi"]}`, "api", true},
		{`{"aud":[1,null,{"api":1},["api"],"api"]}`, "api", true},
		{`{"aud":[1,null,{"api":1},["api"]]}`, "api", false},
		{`{"aud":["a"],"aud":"b"}`, "b", true}, // last aud wins
		{`{"aud":["a"],"aud":"b"}`, "a", false},
		{`{}`, "api", false},
		{`{}`, "", false},
		{`{"x":{"aud":"api"}}`, "api", false},
	}
	for _, tt := range tests {
		c, err := claimsOf(t, tt.payload)
		if err != nil {
			t.Fatalf("Claims(%q): %v", tt.payload, err)
		}
		if got := c.HasAudience(tt.aud); got != tt.want {
			t.Errorf("payload %s: HasAudience(%q) = %v, want %v", tt.payload, tt.aud, got, tt.want)
		}
	}
	var zero jwt.Claims
	if zero.HasAudience("") || zero.HasAudience("x") {
		t.Error("zero Claims has an audience")
	}
}

func TestValidate(t *testing.T) {
	const now = 1_700_000_000
	at := func(d int64) string { return fmt.Sprint(now + d) }
	tests := []struct {
		name    string
		payload string
		v       jwt.Validation
		want    error
	}{
		{"no claims", `{}`, jwt.Validation{}, nil},
		{"all good", `{"iss":"https://issuer","aud":["x","api"],"exp":` + at(60) + `,"nbf":` + at(-60) + `,"iat":` + at(-60) + `}`,
			jwt.Validation{Issuer: "https://issuer", Audience: "api", RequireExpiry: true}, nil},
		// Expiry.
		{"require expiry, none", `{}`, jwt.Validation{RequireExpiry: true}, jwt.ErrNoExpiry},
		{"exp 0 is an expiry at the epoch", `{"exp":0}`, jwt.Validation{RequireExpiry: true}, jwt.ErrExpired},
		{"exp 0 without RequireExpiry", `{"exp":0}`, jwt.Validation{}, jwt.ErrExpired},
		{"nbf 0 is in the past", `{"nbf":0}`, jwt.Validation{}, nil},
		{"require expiry, present", `{"exp":` + at(1) + `}`, jwt.Validation{RequireExpiry: true}, nil},
		{"exp in the future", `{"exp":` + at(1) + `}`, jwt.Validation{}, nil},
		{"exp now", `{"exp":` + at(0) + `}`, jwt.Validation{}, jwt.ErrExpired},
		{"exp past", `{"exp":` + at(-1) + `}`, jwt.Validation{}, jwt.ErrExpired},
		{"exp long past", `{"exp":1}`, jwt.Validation{}, jwt.ErrExpired},
		{"exp negative", `{"exp":-1}`, jwt.Validation{}, jwt.ErrExpired},
		{"exp now, leeway 1s", `{"exp":` + at(0) + `}`, jwt.Validation{Leeway: time.Second}, nil},
		{"exp 10s ago, leeway 10s", `{"exp":` + at(-10) + `}`, jwt.Validation{Leeway: 10 * time.Second}, jwt.ErrExpired},
		{"exp 10s ago, leeway 11s", `{"exp":` + at(-10) + `}`, jwt.Validation{Leeway: 11 * time.Second}, nil},
		{"exp now, sub-second leeway", `{"exp":` + at(0) + `}`, jwt.Validation{Leeway: 999 * time.Millisecond}, jwt.ErrExpired},
		{"exp fractional past", `{"exp":` + at(-1) + `.9}`, jwt.Validation{}, jwt.ErrExpired},
		{"exp max int64 with leeway", `{"exp":9223372036854775807}`, jwt.Validation{Leeway: time.Hour}, nil},
		{"exp huge with leeway", `{"exp":1e300}`, jwt.Validation{Leeway: time.Minute}, nil},
		{"exp past max int64", `{"exp":9223372036854775808}`, jwt.Validation{}, nil},
		{"exp min int64", `{"exp":-9223372036854775808}`, jwt.Validation{Leeway: time.Hour}, jwt.ErrExpired},
		{"exp hugely negative", `{"exp":-1e300}`, jwt.Validation{}, jwt.ErrExpired},
		// Not before.
		{"nbf future", `{"nbf":` + at(1) + `}`, jwt.Validation{}, jwt.ErrNotYetValid},
		{"nbf now", `{"nbf":` + at(0) + `}`, jwt.Validation{}, nil},
		{"nbf past", `{"nbf":` + at(-1) + `}`, jwt.Validation{}, nil},
		{"nbf 10s ahead, leeway 10s", `{"nbf":` + at(10) + `}`, jwt.Validation{Leeway: 10 * time.Second}, nil},
		{"nbf 10s ahead, leeway 9s", `{"nbf":` + at(10) + `}`, jwt.Validation{Leeway: 9 * time.Second}, jwt.ErrNotYetValid},
		{"nbf huge", `{"nbf":1e300}`, jwt.Validation{Leeway: time.Hour}, jwt.ErrNotYetValid},
		{"nbf past max int64", `{"nbf":9223372036854775808}`, jwt.Validation{}, jwt.ErrNotYetValid},
		{"nbf hugely negative", `{"nbf":-1e300}`, jwt.Validation{}, nil},
		// Issued at.
		{"iat future", `{"iat":` + at(1) + `}`, jwt.Validation{}, jwt.ErrIssuedLater},
		{"iat now", `{"iat":` + at(0) + `}`, jwt.Validation{}, nil},
		{"iat past", `{"iat":` + at(-3600) + `}`, jwt.Validation{}, nil},
		{"iat 5s ahead, leeway 5s", `{"iat":` + at(5) + `}`, jwt.Validation{Leeway: 5 * time.Second}, nil},
		{"iat 5s ahead, leeway 4s", `{"iat":` + at(5) + `}`, jwt.Validation{Leeway: 4 * time.Second}, jwt.ErrIssuedLater},
		{"iat huge", `{"iat":1e300}`, jwt.Validation{}, jwt.ErrIssuedLater},
		// Issuer.
		{"issuer match", `{"iss":"https://issuer"}`, jwt.Validation{Issuer: "https://issuer"}, nil},
		{"issuer escaped match", `{"iss":"https:\/\/issuer"}`, jwt.Validation{Issuer: "https://issuer"}, nil},
		{"issuer mismatch", `{"iss":"https://evil"}`, jwt.Validation{Issuer: "https://issuer"}, jwt.ErrIssuer},
		{"issuer prefix", `{"iss":"https://issuer/"}`, jwt.Validation{Issuer: "https://issuer"}, jwt.ErrIssuer},
		{"issuer case", `{"iss":"HTTPS://ISSUER"}`, jwt.Validation{Issuer: "https://issuer"}, jwt.ErrIssuer},
		{"issuer missing", `{}`, jwt.Validation{Issuer: "https://issuer"}, jwt.ErrIssuer},
		{"issuer empty", `{"iss":""}`, jwt.Validation{Issuer: "https://issuer"}, jwt.ErrIssuer},
		{"issuer not checked", `{"iss":"anything"}`, jwt.Validation{}, nil},
		// Audience.
		{"audience string", `{"aud":"api"}`, jwt.Validation{Audience: "api"}, nil},
		{"audience array", `{"aud":["web","api"]}`, jwt.Validation{Audience: "api"}, nil},
		{"audience mismatch", `{"aud":"web"}`, jwt.Validation{Audience: "api"}, jwt.ErrAudience},
		{"audience array mismatch", `{"aud":["web","apis"]}`, jwt.Validation{Audience: "api"}, jwt.ErrAudience},
		{"audience missing", `{}`, jwt.Validation{Audience: "api"}, jwt.ErrAudience},
		{"audience empty array", `{"aud":[]}`, jwt.Validation{Audience: "api"}, jwt.ErrAudience},
		{"audience not checked", `{"aud":"web"}`, jwt.Validation{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := claimsOf(t, tt.payload)
			if err != nil {
				t.Fatalf("Claims: %v", err)
			}
			tt.v.Now = time.Unix(now, 0)
			if err := c.Validate(tt.v); err != tt.want {
				t.Errorf("Validate = %v, want %v", err, tt.want)
			}
			// Sub-second parts of Now are ignored.
			tt.v.Now = time.Unix(now, 999_999_999)
			if err := c.Validate(tt.v); err != tt.want {
				t.Errorf("Validate with Now+999ms = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestErrorsWrapMalformed(t *testing.T) {
	// Every structural error is ErrMalformed and none of the validation
	// errors.
	_, err := jwt.Parse([]byte("x"))
	for _, e := range []error{jwt.ErrExpired, jwt.ErrNotYetValid, jwt.ErrIssuedLater, jwt.ErrIssuer, jwt.ErrAudience, jwt.ErrNoExpiry} {
		if errors.Is(err, e) || errors.Is(e, jwt.ErrMalformed) {
			t.Errorf("%v and %v are confused", err, e)
		}
	}
	if !errors.Is(err, jwt.ErrMalformed) {
		t.Errorf("Parse(x) = %v", err)
	}
}

func TestClaimsAfterFailedParse(t *testing.T) {
	var tok jwt.Token
	if err := tok.Parse([]byte(sign(`{"alg":"HS256"}`, `{"sub":"a"}`))); err != nil {
		t.Fatal(err)
	}
	if err := tok.Parse([]byte("not.a.token!")); err == nil {
		t.Fatal("parsed garbage")
	}
	if _, err := tok.Claims(); !errors.Is(err, jwt.ErrMalformed) {
		t.Fatalf("Claims after a failed Parse: %v, want ErrMalformed", err)
	}
	if tok.Alg != 0 || tok.Signature != nil {
		t.Fatal("a failed Parse left the previous token's fields")
	}
}
