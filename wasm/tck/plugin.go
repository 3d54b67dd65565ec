package tck

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm/abi"
)

// Key is one verification key of the kit's config, with a message signed by
// it. Format is an abi.KeyFormat; Key, Msg and Sig are base64 (std).
type Key struct {
	Alg    string `json:"alg"`
	Format int32  `json:"format"`
	Key    string `json:"key"`
	Msg    string `json:"msg"`
	Sig    string `json:"sig"`
}

// Plugin is the conformance plugin. Register it with sdk.Register; run it
// with a pool of one instance so all three phases see the same state.
type Plugin struct {
	lines    []string
	keys     []regKey
	counter  int32
	gauge    int32
	hist     int32
	policy   int32    // token_policy handle (token.go)
	assigned Assigned // the fixture's request fields, or what the config says the host assigns
}

type regKey struct {
	name          string
	handle        int32
	format        abi.KeyFormat
	key, msg, sig []byte
}

func (p *Plugin) check(fn, what string, ok bool, detail ...any) {
	if ok {
		p.lines = append(p.lines, "PASS "+fn+": "+what)
		return
	}
	p.lines = append(p.lines, "FAIL "+fn+": "+what+": "+fmt.Sprint(detail...))
}

func (p *Plugin) eq(fn, what string, got, want int32) {
	p.check(fn, what, got == want, "got ", got, " want ", want)
}

func (p *Plugin) errno(fn, what string, got, want int32) {
	p.check(fn, what+" -> "+abi.ErrnoName(want), got == want, "got ", got)
}

func (p *Plugin) eqBytes(fn, what string, got []byte, want string) {
	p.check(fn, what, string(got) == want, fmt.Sprintf("got %q want %q", got, want))
}

// read calls a "buffer + limit" function with a buffer of n bytes.
func read(n int, call func([]byte) int32) ([]byte, int32) {
	buf := make([]byte, n)
	r := call(buf)
	if r < 0 {
		return nil, r
	}
	return buf[:min(int(r), n)], r
}

func b(s string) []byte { return []byte(s) }

// Configure implements sdk.Configurer: the configure-phase checks.
func (p *Plugin) Configure(cfg []byte) error {
	// config_read
	probe := hostcall.ConfigRead(nil)
	p.eq("config_read", "probe returns the full length", probe, int32(len(cfg)))
	got, n := read(len(cfg), hostcall.ConfigRead)
	p.eqBytes("config_read", "reads the config", got, string(cfg))
	short, n2 := read(3, hostcall.ConfigRead)
	p.check("config_read", "short buffer copies a prefix and returns the full length",
		n2 == n && string(short) == string(cfg[:3]), n2, " ", short)
	p.eq("error_set", "returns 0", hostcall.ErrorSet(b("not a failure")), 0)

	// Request and response functions are not available.
	p.errno("field_get", "in configure", hostcall.FieldGet(abi.FieldMethod, nil), abi.ErrPhase)
	p.errno("field_set", "in configure", hostcall.FieldSet(abi.FieldPath, b("/x")), abi.ErrPhase)
	p.errno("status_get", "in configure", hostcall.StatusGet(), abi.ErrPhase)
	p.errno("status_set", "in configure", hostcall.StatusSet(200), abi.ErrPhase)
	p.errno("header_get", "in configure", hostcall.HeaderGet(abi.MsgRequest, b("Accept"), nil), abi.ErrPhase)
	p.errno("header_values", "in configure", hostcall.HeaderValues(abi.MsgRequest, b("Accept"), nil), abi.ErrPhase)
	p.errno("header_names", "in configure", hostcall.HeaderNames(abi.MsgRequest, nil), abi.ErrPhase)
	p.errno("header_set", "in configure", hostcall.HeaderSet(abi.MsgResponse, b("A"), b("b")), abi.ErrPhase)
	p.errno("header_add", "in configure", hostcall.HeaderAdd(abi.MsgResponse, b("A"), b("b")), abi.ErrPhase)
	p.errno("header_remove", "in configure", hostcall.HeaderRemove(abi.MsgResponse, b("A")), abi.ErrPhase)
	p.errno("body_read", "in configure", hostcall.BodyRead(abi.MsgRequest, 0, nil), abi.ErrPhase)
	p.errno("body_set", "in configure", hostcall.BodySet(abi.MsgResponse, b("x")), abi.ErrPhase)
	p.errno("value_get", "in configure", hostcall.ValueGet(b("k"), nil), abi.ErrPhase)
	p.errno("value_set", "in configure", hostcall.ValueSet(b("k"), b("v"), 0), abi.ErrPhase)
	p.errno("cache_lookup", "in configure", hostcall.CacheLookup(b("k"), nil), abi.ErrPhase)
	p.errno("cache_store", "in configure", hostcall.CacheStore(b("k"), nil, 1, 0, nil), abi.ErrPhase)
	p.errno("cache_serve", "in configure", hostcall.CacheServe(b("k")), abi.ErrPhase)
	p.errno("cache_purge", "in configure", hostcall.CachePurge(abi.PurgeKey, b("k")), abi.ErrPhase)
	p.errno("cache_revalidate", "in configure", hostcall.CacheRevalidate(b("k")), abi.ErrPhase)
	p.errno("cache_request", "in configure", hostcall.CacheRequest(b("tck")), abi.ErrPhase)
	p.errno("cache_response", "in configure", hostcall.CacheResponse(b("tck"), 0), abi.ErrPhase)
	p.errno("range_apply", "in configure", hostcall.RangeApply(b("bytes=0-1")), abi.ErrPhase)
	var rr [abi.RateResultSize]byte
	p.errno("ratelimit_take", "in configure", hostcall.RatelimitTake(b("k"), 1, 1000, 1, 1, rr[:]), abi.ErrPhase)

	p.configureAssigned(cfg)
	p.configureKeys(cfg)
	p.configureTokens()
	p.configureMetrics()
	return nil
}

// configureAssigned reads config member "assigned" (Assigned) over the
// fixture's values.
func (p *Plugin) configureAssigned(cfg []byte) {
	p.assigned = Assigned{Scheme: Scheme, ClientAddr: ClientAddr, RequestID: RequestID}
	raw, ok, err := jsonscan.Member(cfg, "assigned")
	if !ok || err != nil {
		return
	}
	_ = jsonscan.Object(raw, func(name, v []byte) bool {
		s, _ := jsonscan.String(v)
		switch {
		case s == "":
		case string(name) == "scheme":
			p.assigned.Scheme = s
		case string(name) == "client_addr":
			p.assigned.ClientAddr = s
		case string(name) == "request_id":
			p.assigned.RequestID = s
		}
		return true
	})
}

func (p *Plugin) configureKeys(cfg []byte) {
	keysRaw, ok, err := jsonscan.Member(cfg, "keys")
	if !ok || err != nil {
		p.check("key_register", "config has keys", false, err)
		return
	}
	dec := func(v []byte) []byte {
		s, _ := jsonscan.String(v)
		out, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			p.check("key_register", "config base64", false, err)
		}
		return out
	}
	_ = jsonscan.Array(keysRaw, func(el []byte) bool {
		var k regKey
		var alg abi.Alg
		_ = jsonscan.Object(el, func(name, v []byte) bool {
			switch string(name) {
			case "alg":
				a, _ := jsonscan.String(v)
				k.name, alg = a, abi.AlgByName([]byte(a))
			case "format":
				f, _ := jsonscan.Int(v)
				k.format = int32(f)
			case "key":
				k.key = dec(v)
			case "msg":
				k.msg = dec(v)
			case "sig":
				k.sig = dec(v)
			}
			return true
		})
		k.name += fmt.Sprintf("/format%d", k.format)
		k.handle = hostcall.KeyRegister(alg, k.format, k.key)
		p.check("key_register", "registers "+k.name, k.handle >= 0, "got ", k.handle)
		again := hostcall.KeyRegister(alg, k.format, k.key)
		p.eq("key_register", "the same key again gets the same handle ("+k.name+")", again, k.handle)
		p.keys = append(p.keys, k)
		return true
	})
	p.errno("key_register", "algorithm 0", hostcall.KeyRegister(0, abi.KeyRaw, b("secret")), abi.ErrInvalid)
	p.errno("key_register", "algorithm 99", hostcall.KeyRegister(99, abi.KeyRaw, b("secret")), abi.ErrInvalid)
	p.errno("key_register", "format 9", hostcall.KeyRegister(abi.AlgHS256, 9, b("secret")), abi.ErrInvalid)
	p.errno("key_register", "empty HMAC secret", hostcall.KeyRegister(abi.AlgHS256, abi.KeyRaw, nil), abi.ErrInvalid)
	p.errno("key_register", "HS256 secret shorter than the hash", hostcall.KeyRegister(abi.AlgHS256, abi.KeyRaw, make([]byte, 31)), abi.ErrInvalid)
	p.errno("key_register", "HS512 secret shorter than the hash", hostcall.KeyRegister(abi.AlgHS512, abi.KeyRaw, make([]byte, 63)), abi.ErrInvalid)
	p.errno("key_register", "garbage PKIX", hostcall.KeyRegister(abi.AlgRS256, abi.KeyPKIX, b("garbage")), abi.ErrInvalid)
	p.errno("key_register", "garbage JWK", hostcall.KeyRegister(abi.AlgRS256, abi.KeyJWK, b("{")), abi.ErrInvalid)
	p.errno("key_register", "raw key for RSA", hostcall.KeyRegister(abi.AlgRS256, abi.KeyRaw, make([]byte, 256)), abi.ErrInvalid)
	for _, k := range p.keys {
		if strings.HasPrefix(k.name, "RS256/") { // a key is bound to its algorithm family
			p.errno("key_register", "RSA key as ES256", hostcall.KeyRegister(abi.AlgES256, k.format, k.key), abi.ErrInvalid)
		}
		if strings.HasPrefix(k.name, "EdDSA/") {
			p.errno("key_register", "Ed25519 key as ES256", hostcall.KeyRegister(abi.AlgES256, k.format, k.key), abi.ErrInvalid)
		}
	}
	// verify works in configure too, for plugins that check a fixture.
	if len(p.keys) > 0 {
		k := p.keys[0]
		p.eq("verify", "valid signature in configure ("+k.name+")", hostcall.Verify(k.handle, k.msg, k.sig), 1)
	}
}

func (p *Plugin) configureMetrics() {
	p.counter = hostcall.MetricDefine(abi.MetricCounter, b("tck_checks"))
	p.check("metric_define", "counter", p.counter >= 0, p.counter)
	p.gauge = hostcall.MetricDefine(abi.MetricGauge, b("tck_gauge"))
	p.check("metric_define", "gauge", p.gauge >= 0, p.gauge)
	p.hist = hostcall.MetricDefine(abi.MetricHistogram, b("tck_hist"))
	p.check("metric_define", "histogram", p.hist >= 0, p.hist)
	p.eq("metric_define", "same name and kind again gets the same handle", hostcall.MetricDefine(abi.MetricCounter, b("tck_checks")), p.counter)
	p.errno("metric_define", "same name, other kind", hostcall.MetricDefine(abi.MetricGauge, b("tck_checks")), abi.ErrInvalid)
	p.errno("metric_define", "invalid name", hostcall.MetricDefine(abi.MetricCounter, b("Bad-Name")), abi.ErrInvalid)
	p.errno("metric_define", "kind 9", hostcall.MetricDefine(9, b("tck_other")), abi.ErrInvalid)
}

// OnRequest implements sdk.RequestHandler: the request-phase checks.
func (p *Plugin) OnRequest(sdk.Request, sdk.Response) sdk.Action {
	p.fields()
	p.headers()
	p.bodies()
	p.values()
	p.requestStores()
	p.crypto()
	p.tokens()
	p.misc()
	p.errno("key_register", "in request", hostcall.KeyRegister(abi.AlgHS256, abi.KeyRaw, b("s")), abi.ErrPhase)
	p.errno("metric_define", "in request", hostcall.MetricDefine(abi.MetricCounter, b("tck_late")), abi.ErrPhase)
	return sdk.Continue
}

func (p *Plugin) fields() {
	for _, f := range []struct {
		field abi.Field
		want  string
	}{
		{abi.FieldMethod, Method}, {abi.FieldScheme, p.assigned.Scheme}, {abi.FieldHost, Host}, {abi.FieldPath, Path},
		{abi.FieldRawQuery, RawQuery}, {abi.FieldProto, Proto}, {abi.FieldClientAddr, p.assigned.ClientAddr}, {abi.FieldRequestID, p.assigned.RequestID},
	} {
		got, _ := read(256, func(buf []byte) int32 { return hostcall.FieldGet(f.field, buf) })
		if f.want == AnyRequestID {
			p.check("field_get", fmt.Sprintf("field %d", f.field), len(got) > 0, "empty")
			continue
		}
		p.eqBytes("field_get", fmt.Sprintf("field %d", f.field), got, f.want)
	}
	p.eq("field_get", "probe", hostcall.FieldGet(abi.FieldHost, nil), int32(len(Host)))
	p.errno("field_get", "field 99", hostcall.FieldGet(99, nil), abi.ErrInvalid)
	p.errno("field_get", "field -1", hostcall.FieldGet(-1, nil), abi.ErrInvalid)

	p.eq("field_set", "path", hostcall.FieldSet(abi.FieldPath, b(RewrittenPath)), 0)
	got, _ := read(64, func(buf []byte) int32 { return hostcall.FieldGet(abi.FieldPath, buf) })
	p.eqBytes("field_set", "path reads back", got, RewrittenPath)
	p.eq("field_set", "method", hostcall.FieldSet(abi.FieldMethod, b(RewrittenMethod)), 0)
	p.eq("field_set", "query", hostcall.FieldSet(abi.FieldRawQuery, b("q=1")), 0)
	p.eq("field_set", "host", hostcall.FieldSet(abi.FieldHost, b(Host)), 0)
	p.errno("field_set", "scheme is read-only", hostcall.FieldSet(abi.FieldScheme, b("http")), abi.ErrInvalid)
	p.errno("field_set", "field 99", hostcall.FieldSet(99, b("x")), abi.ErrInvalid)
	p.errno("field_set", "path without slash", hostcall.FieldSet(abi.FieldPath, b("nope")), abi.ErrInvalid)
	p.errno("field_set", "path with space", hostcall.FieldSet(abi.FieldPath, b("/a b")), abi.ErrInvalid)
	p.errno("field_set", "path with CRLF", hostcall.FieldSet(abi.FieldPath, b("/a\r\nX: y")), abi.ErrInvalid)
	p.errno("field_set", "method with space", hostcall.FieldSet(abi.FieldMethod, b("GE T")), abi.ErrInvalid)
	p.errno("field_set", "host with slash", hostcall.FieldSet(abi.FieldHost, b("a/b")), abi.ErrInvalid)
	p.errno("field_set", "query with #", hostcall.FieldSet(abi.FieldRawQuery, b("a#b")), abi.ErrInvalid)
	p.errno("field_set", "path of 9 KiB", hostcall.FieldSet(abi.FieldPath, append(b("/"), bytes.Repeat(b("a"), 9<<10)...)), abi.ErrTooLarge)

	p.eq("status_get", "no answer yet", hostcall.StatusGet(), 0)
	p.errno("status_set", "99", hostcall.StatusSet(99), abi.ErrInvalid)
	p.errno("status_set", "199", hostcall.StatusSet(199), abi.ErrInvalid)
	p.errno("status_set", "600", hostcall.StatusSet(600), abi.ErrInvalid)
}

func (p *Plugin) headers() {
	req, resp := abi.MsgRequest, abi.MsgResponse
	get := func(m abi.Msg, name string) ([]byte, int32) {
		return read(256, func(buf []byte) int32 { return hostcall.HeaderGet(m, b(name), buf) })
	}
	v, _ := get(req, "accept")
	p.eqBytes("header_get", "case-insensitive name", v, "text/html")
	v, _ = get(req, "X-Multi")
	p.eqBytes("header_get", "first of several values", v, "one")
	_, r := get(req, "X-Missing")
	p.errno("header_get", "missing", r, abi.ErrNotFound)
	p.errno("header_get", "msg 7", hostcall.HeaderGet(7, b("Accept"), nil), abi.ErrInvalid)
	p.eq("header_get", "probe", hostcall.HeaderGet(req, b("Accept"), nil), int32(len("text/html")))
	short, r := read(4, func(buf []byte) int32 { return hostcall.HeaderGet(req, b("Accept"), buf) })
	p.check("header_get", "short buffer", string(short) == "text" && r == 9, short, r)

	vals, _ := read(256, func(buf []byte) int32 { return hostcall.HeaderValues(req, b("x-multi"), buf) })
	p.eqBytes("header_values", "all values as a list", vals, "one\x00two\x00")
	p.eq("header_values", "missing is empty", hostcall.HeaderValues(req, b("X-Missing"), nil), 0)
	p.errno("header_values", "msg 7", hostcall.HeaderValues(7, b("A"), nil), abi.ErrInvalid)

	names, _ := read(256, func(buf []byte) int32 { return hostcall.HeaderNames(req, buf) })
	p.eqBytes("header_names", "each name once, in order", names, "Accept\x00X-Multi\x00Content-Type\x00X-Remove-Me\x00")
	p.errno("header_names", "msg 7", hostcall.HeaderNames(7, nil), abi.ErrInvalid)

	p.eq("header_set", "request header", hostcall.HeaderSet(req, b("X-Added"), b("1")), 0)
	v, _ = get(req, "x-added")
	p.eqBytes("header_set", "reads back", v, "1")
	p.eq("header_set", "response header in the request phase", hostcall.HeaderSet(resp, b("X-From-Request"), b("yes")), 0)
	for _, bad := range []struct{ what, name, value string }{
		{"name with space", "Bad Name", "v"}, {"empty name", "", "v"}, {"name with colon", "A:b", "v"},
		{"value with CRLF", "X-Inject", "a\r\nSet-Cookie: x"}, {"value with LF", "X-Inject", "a\nb"},
		{"value with NUL", "X-Inject", "a\x00b"}, {"Content-Length", "Content-Length", "0"},
		{"Transfer-Encoding", "transfer-encoding", "chunked"}, {"Connection", "Connection", "close"},
		{"Upgrade", "upgrade", "websocket"}, {"Host", "Host", "evil.example"},
	} {
		p.errno("header_set", bad.what, hostcall.HeaderSet(req, b(bad.name), b(bad.value)), abi.ErrInvalid)
		p.errno("header_add", bad.what, hostcall.HeaderAdd(resp, b(bad.name), b(bad.value)), abi.ErrInvalid)
	}
	p.errno("header_set", "value of 17 KiB", hostcall.HeaderSet(req, b("X-Big"), bytes.Repeat(b("v"), 17<<10)), abi.ErrTooLarge)
	p.errno("header_set", "msg 7", hostcall.HeaderSet(7, b("A"), b("b")), abi.ErrInvalid)
	p.eq("header_set", "tab inside a value", hostcall.HeaderSet(req, b("X-Tab"), b("a\tb")), 0)

	p.eq("header_add", "third value", hostcall.HeaderAdd(req, b("X-Multi"), b("three")), 0)
	vals, _ = read(256, func(buf []byte) int32 { return hostcall.HeaderValues(req, b("X-Multi"), buf) })
	p.eqBytes("header_add", "appended in order", vals, "one\x00two\x00three\x00")
	p.errno("header_add", "msg 7", hostcall.HeaderAdd(7, b("A"), b("b")), abi.ErrInvalid)

	p.eq("header_remove", "present", hostcall.HeaderRemove(req, b("x-remove-me")), 0)
	_, r = get(req, "X-Remove-Me")
	p.errno("header_remove", "gone afterwards", r, abi.ErrNotFound)
	p.eq("header_remove", "absent", hostcall.HeaderRemove(req, b("X-Never")), 0)
	p.errno("header_remove", "invalid name", hostcall.HeaderRemove(req, b("a b")), abi.ErrInvalid)
	p.errno("header_remove", "Content-Length", hostcall.HeaderRemove(req, b("Content-Length")), abi.ErrInvalid)
	p.errno("header_remove", "msg 7", hostcall.HeaderRemove(7, b("A")), abi.ErrInvalid)
}

func (p *Plugin) bodies() {
	req := abi.MsgRequest
	got, n := read(256, func(buf []byte) int32 { return hostcall.BodyRead(req, 0, buf) })
	p.eqBytes("body_read", "whole body", got, Body)
	p.eq("body_read", "returns the full length", n, int32(len(Body)))
	got, _ = read(4, func(buf []byte) int32 { return hostcall.BodyRead(req, 2, buf) })
	p.eqBytes("body_read", "from an offset", got, Body[2:6])
	p.eq("body_read", "offset past the end", hostcall.BodyRead(req, 1000, make([]byte, 4)), int32(len(Body)))
	p.errno("body_read", "negative offset", hostcall.BodyRead(req, -1, nil), abi.ErrInvalid)
	p.errno("body_read", "msg 7", hostcall.BodyRead(7, 0, nil), abi.ErrInvalid)

	p.eq("body_set", "request body", hostcall.BodySet(req, b(RequestBody)), 0)
	got, _ = read(256, func(buf []byte) int32 { return hostcall.BodyRead(req, 0, buf) })
	p.eqBytes("body_set", "reads back", got, RequestBody)
	p.errno("body_set", "past the host's limit", hostcall.BodySet(req, make([]byte, MaxBodySize+1)), abi.ErrTooLarge)
	p.errno("body_set", "msg 7", hostcall.BodySet(7, nil), abi.ErrInvalid)
}

func (p *Plugin) values() {
	p.eq("value_set", "set", hostcall.ValueSet(b("tck.v"), b("1"), 0), 0)
	got, _ := read(16, func(buf []byte) int32 { return hostcall.ValueGet(b("tck.v"), buf) })
	p.eqBytes("value_get", "reads back", got, "1")
	p.eq("value_set", "replace", hostcall.ValueSet(b("tck.v"), b("2"), 0), 0)
	got, _ = read(16, func(buf []byte) int32 { return hostcall.ValueGet(b("tck.v"), buf) })
	p.eqBytes("value_get", "replaced", got, "2")
	p.errno("value_get", "missing", hostcall.ValueGet(b("tck.none"), nil), abi.ErrNotFound)
	p.eq("value_set", "forwarded", hostcall.ValueSet(b(ForwardKey), b(ForwardValue), abi.ValueForward), 0)
	p.errno("value_set", "unknown flag", hostcall.ValueSet(b("k"), b("v"), 4), abi.ErrInvalid)
	p.errno("value_set", "forwarded key with a space", hostcall.ValueSet(b("a b"), b("v"), abi.ValueForward), abi.ErrInvalid)
	p.errno("value_set", "forwarded value with CRLF", hostcall.ValueSet(b("k"), b("a\r\nb"), abi.ValueForward), abi.ErrInvalid)
	p.errno("value_set", "key of 257 bytes", hostcall.ValueSet(bytes.Repeat(b("k"), abi.MaxValueKeyLen+1), b("v"), 0), abi.ErrTooLarge)
	p.errno("value_set", "value past the limit", hostcall.ValueSet(b("k"), make([]byte, abi.MaxValueLen+1), 0), abi.ErrTooLarge)
	for i := 0; ; i++ { // fill up to the count limit
		r := hostcall.ValueSet(b(fmt.Sprintf("fill.%d", i)), b("x"), 0)
		if r != 0 || i > abi.MaxValues {
			p.errno("value_set", "more values than the limit", r, abi.ErrTooLarge)
			break
		}
	}
}

func (p *Plugin) requestStores() {
	p.errno("cache_lookup", "missing", hostcall.CacheLookup(b("tck-none"), nil), abi.ErrNotFound)
	p.errno("cache_store", "a response without a status", hostcall.CacheStore(b("k"), nil, 1000, 0, nil), abi.ErrInvalid)
	p.errno("cache_serve", "missing", hostcall.CacheServe(b("tck-none")), abi.ErrNotFound)
	p.errno("cache_purge", "kind 9", hostcall.CachePurge(9, b("k")), abi.ErrInvalid)
	p.errno("cache_revalidate", "empty key", hostcall.CacheRevalidate(nil), abi.ErrInvalid)
	p.errno("cache_revalidate", "key of 5 KiB", hostcall.CacheRevalidate(make([]byte, 5<<10)), abi.ErrTooLarge)
	p.eq("cache_revalidate", "scheduled", hostcall.CacheRevalidate(b(RevalidateKey)), 1)
	// The request continues, so the host drops it: tck_test.go checks that
	// the key is free again afterwards.
	p.eq("cache_revalidate", "a second one for the same request is skipped", hostcall.CacheRevalidate(b("tck-reval-2")), 0)
	p.errno("cache_request", "a name that is not a token", hostcall.CacheRequest(b("a b")), abi.ErrInvalid)
	p.errno("cache_request", "a "+RewrittenMethod+" is not looked up", hostcall.CacheRequest(b("tck")), abi.ErrInvalid)
	hostcall.FieldSet(abi.FieldMethod, b("GET"))
	// values() filled the request's values: a miss cannot save its state.
	p.errno("cache_request", "a miss with no room for its state", hostcall.CacheRequest(b("tck")), abi.ErrTooLarge)
	hostcall.FieldSet(abi.FieldMethod, b(RewrittenMethod))
	p.errno("cache_response", "in request", hostcall.CacheResponse(b("tck"), 0), abi.ErrPhase)
	p.eq("range_apply", "no answer yet: status 0, nothing to cut", hostcall.RangeApply(b("bytes=0-1")), 0)
	p.errno("range_apply", "value of 17 KiB", hostcall.RangeApply(bytes.Repeat(b("1"), 17<<10)), abi.ErrTooLarge)

	var out [abi.RateResultSize]byte
	take := func(cost int32) (int32, abi.RateResult) {
		r := hostcall.RatelimitTake(b("tck-rl"), 2, 60000, 2, cost, out[:])
		return r, abi.ReadRateResult(out[:])
	}
	r, res := take(1)
	p.check("ratelimit_take", "first of 2 allowed", r == 1 && res.Remaining == 1 && res.RetryAfterMs == 0, r, res)
	r, res = take(1)
	p.check("ratelimit_take", "second of 2 allowed", r == 1 && res.Remaining == 0, r, res)
	r, res = take(1)
	p.check("ratelimit_take", "third denied with a retry time", r == 0 && res.Remaining == 0 && res.RetryAfterMs > 0 && res.RetryAfterMs <= 30000, r, res)
	p.check("ratelimit_take", "reset within the period", res.ResetMs > 0 && res.ResetMs <= 60000, res)
	r, _ = take(0)
	p.eq("ratelimit_take", "cost 0 peeks", r, 1)
	for _, bad := range []struct {
		what               string
		limit, burst, cost int32
		period             int64
		buf                int
	}{
		{"limit 0", 0, 1, 1, 1000, 24}, {"period 0", 1, 1, 1, 0, 24}, {"burst 0", 1, 0, 1, 1000, 24},
		{"negative cost", 1, 1, -1, 1000, 24}, {"result buffer of 8 bytes", 1, 1, 1, 1000, 8},
	} {
		p.errno("ratelimit_take", bad.what, hostcall.RatelimitTake(b("k"), bad.limit, bad.period, bad.burst, bad.cost, make([]byte, bad.buf)), abi.ErrInvalid)
	}
	p.errno("ratelimit_take", "key of 2 KiB", hostcall.RatelimitTake(make([]byte, 2<<10), 1, 1000, 1, 1, out[:]), abi.ErrTooLarge)
}

func (p *Plugin) crypto() {
	for _, k := range p.keys {
		p.eq("verify", "valid signature ("+k.name+")", hostcall.Verify(k.handle, k.msg, k.sig), 1)
		p.eq("verify", "valid again, from the cache ("+k.name+")", hostcall.Verify(k.handle, k.msg, k.sig), 1)
		bad := append([]byte(nil), k.sig...)
		bad[len(bad)/2] ^= 0x55
		p.eq("verify", "tampered signature ("+k.name+")", hostcall.Verify(k.handle, k.msg, bad), 0)
		p.eq("verify", "other message ("+k.name+")", hostcall.Verify(k.handle, append(k.msg, '!'), k.sig), 0)
	}
	p.errno("verify", "unknown handle", hostcall.Verify(999, b("m"), b("s")), abi.ErrNotFound)
	p.errno("verify", "negative handle", hostcall.Verify(-1, b("m"), b("s")), abi.ErrNotFound)

	sum := sha256.Sum256([]byte("abc"))
	got, n := read(64, func(buf []byte) int32 { return hostcall.Digest(abi.DigestSHA256, b("abc"), buf) })
	p.check("digest", "SHA-256 of abc", n == 32 && bytes.Equal(got, sum[:]), hex.EncodeToString(got))
	got, n = read(64, func(buf []byte) int32 { return hostcall.Digest(abi.DigestSHA384, b("abc"), buf) })
	p.check("digest", "SHA-384 of abc", n == 48 && hex.EncodeToString(got[:4]) == "cb00753f", hex.EncodeToString(got))
	got, n = read(64, func(buf []byte) int32 { return hostcall.Digest(abi.DigestSHA512, b("abc"), buf) })
	p.check("digest", "SHA-512 of abc", n == 64 && hex.EncodeToString(got[:4]) == "ddaf35a1", hex.EncodeToString(got))
	p.eq("digest", "probe", hostcall.Digest(abi.DigestSHA256, b("abc"), nil), 32)
	keyed, n := read(64, func(buf []byte) int32 { return hostcall.Digest(abi.DigestKeyed, b("abc"), buf) })
	again, _ := read(64, func(buf []byte) int32 { return hostcall.Digest(abi.DigestKeyed, b("abc"), buf) })
	other, _ := read(64, func(buf []byte) int32 { return hostcall.Digest(abi.DigestKeyed, b("abd"), buf) })
	p.check("digest", "keyed: 32 bytes, stable, not SHA-256", n == 32 && bytes.Equal(keyed, again) &&
		!bytes.Equal(keyed, other) && !bytes.Equal(keyed, sum[:]), hex.EncodeToString(keyed))
	p.errno("digest", "algorithm 9", hostcall.Digest(9, b("abc"), nil), abi.ErrInvalid)
}

func (p *Plugin) misc() {
	now := hostcall.TimeNow()
	p.check("time_now", "agrees with the guest's clock", math.Abs(float64(now-time.Now().UnixNano())) < float64(time.Minute), now)
	var r1, r2 [32]byte
	p.eq("random_fill", "returns 0", hostcall.RandomFill(r1[:]), 0)
	hostcall.RandomFill(r2[:])
	p.check("random_fill", "random", r1 != r2 && r1 != [32]byte{}, r1)
	p.eq("random_fill", "empty buffer", hostcall.RandomFill(nil), 0)

	p.eq("log", "message with attributes", hostcall.Log(abi.LevelInfo, b(LogMessage), b("k\x00v\x00")), 0)
	p.eq("log", "debug", hostcall.Log(abi.LevelDebug, b("tck debug"), nil), 0)
	p.errno("log", "odd attributes", hostcall.Log(abi.LevelInfo, b("x"), b("k\x00")), abi.ErrInvalid)
	p.errno("log", "message past the limit", hostcall.Log(abi.LevelInfo, make([]byte, abi.MaxLogLen+1), nil), abi.ErrTooLarge)

	p.eq("metric_record", "gauge", hostcall.MetricRecord(p.gauge, GaugeValue), 0)
	p.eq("metric_record", "histogram", hostcall.MetricRecord(p.hist, 0.25), 0)
	p.errno("metric_record", "negative counter", hostcall.MetricRecord(p.counter, -1), abi.ErrInvalid)
	p.errno("metric_record", "NaN", hostcall.MetricRecord(p.gauge, math.NaN()), abi.ErrInvalid)
	p.errno("metric_record", "infinity", hostcall.MetricRecord(p.hist, math.Inf(1)), abi.ErrInvalid)
	p.errno("metric_record", "unknown handle", hostcall.MetricRecord(99, 1), abi.ErrNotFound)
	p.eq("config_read", "in request", hostcall.ConfigRead(nil), hostcall.ConfigRead(nil))
}

// OnResponse implements sdk.ResponseHandler: the response-phase checks, then
// the report as the response body.
func (p *Plugin) OnResponse(sdk.Request, sdk.Response) sdk.Action {
	req, resp := abi.MsgRequest, abi.MsgResponse
	p.eq("status_get", "origin status", hostcall.StatusGet(), OriginStatus)
	got, _ := read(64, func(buf []byte) int32 { return hostcall.BodyRead(resp, 0, buf) })
	p.eqBytes("body_read", "origin body", got, OriginBody)
	v, _ := read(64, func(buf []byte) int32 { return hostcall.HeaderGet(resp, b("X-Origin"), buf) })
	p.eqBytes("header_get", "origin header", v, "yes")
	v, _ = read(64, func(buf []byte) int32 { return hostcall.HeaderGet(resp, b("X-From-Request"), buf) })
	p.eqBytes("header_get", "request-phase response header reached the response", v, "yes")
	v, _ = read(64, func(buf []byte) int32 { return hostcall.ValueGet(b("tck.v"), buf) })
	p.eqBytes("value_get", "request-phase value in the response phase", v, "2")
	v, _ = read(64, func(buf []byte) int32 { return hostcall.FieldGet(abi.FieldPath, buf) })
	p.eqBytes("field_get", "rewritten path in the response phase", v, RewrittenPath)

	p.errno("field_set", "in response", hostcall.FieldSet(abi.FieldPath, b("/x")), abi.ErrPhase)
	p.errno("header_set", "request header in response", hostcall.HeaderSet(req, b("A"), b("b")), abi.ErrPhase)
	p.errno("header_add", "request header in response", hostcall.HeaderAdd(req, b("A"), b("b")), abi.ErrPhase)
	p.errno("header_remove", "request header in response", hostcall.HeaderRemove(req, b("Accept")), abi.ErrPhase)
	p.errno("body_set", "request body in response", hostcall.BodySet(req, b("x")), abi.ErrPhase)
	p.eq("header_set", "response header in response", hostcall.HeaderSet(resp, b("X-Response-Phase"), b("yes")), 0)
	p.eq("header_remove", "response header in response", hostcall.HeaderRemove(resp, b("X-Origin")), 0)

	p.responseCache()

	p.eq("status_set", "299", hostcall.StatusSet(FinalStatus), 0)
	p.eq("status_get", "reads back", hostcall.StatusGet(), FinalStatus)
	// The count includes this check and the two lines added below.
	p.eq("metric_record", "counter", hostcall.MetricRecord(p.counter, float64(len(p.lines)+3)), 0)
	report := strings.Join(p.lines, "\n") + "\nPASS body_set: response body\nPASS metric_record: counter counts every check\n"
	p.lines = p.lines[:0]
	if r := hostcall.BodySet(resp, []byte(report)); r != 0 {
		hostcall.ErrorSet([]byte("tck: body_set of the report: " + abi.ErrnoName(r)))
		return abi.ActionFail
	}
	return sdk.Continue
}

func (p *Plugin) responseCache() {
	key := b(CacheKey)
	p.eq("cache_store", "origin response", hostcall.CacheStore(key, b(CacheMeta), 60000, 5000, b("t1\x00t2\x00")), 0)
	info, n := read(64, func(buf []byte) int32 { return hostcall.CacheLookup(key, buf) })
	p.eq("cache_lookup", "returns info plus metadata", n, int32(abi.CacheInfoSize+len(CacheMeta)))
	if len(info) >= abi.CacheInfoSize {
		ci := abi.ReadCacheInfo(info)
		p.check("cache_lookup", "age and freshness", ci.AgeMs >= 0 && ci.AgeMs < 10000 && ci.TTLMs > 50000 && ci.TTLMs <= 60000, ci)
		p.eqBytes("cache_lookup", "metadata", info[abi.CacheInfoSize:], CacheMeta)
	}
	p.eq("cache_lookup", "probe", hostcall.CacheLookup(key, nil), int32(abi.CacheInfoSize+len(CacheMeta)))
	p.eq("cache_serve", "serves the stored response", hostcall.CacheServe(key), OriginStatus)
	got, _ := read(64, func(buf []byte) int32 { return hostcall.BodyRead(abi.MsgResponse, 0, buf) })
	p.eqBytes("cache_serve", "stored body", got, OriginBody)

	p.errno("cache_store", "negative TTL", hostcall.CacheStore(b("k"), nil, -1, 0, nil), abi.ErrInvalid)
	p.errno("cache_store", "empty key", hostcall.CacheStore(nil, nil, 1000, 0, nil), abi.ErrInvalid)
	p.errno("cache_store", "empty tag", hostcall.CacheStore(b("k"), nil, 1000, 0, b("\x00")), abi.ErrInvalid)
	p.errno("cache_store", "key of 5 KiB", hostcall.CacheStore(make([]byte, 5<<10), nil, 1000, 0, nil), abi.ErrTooLarge)
	p.errno("cache_store", "metadata past the limit", hostcall.CacheStore(b("k"), make([]byte, abi.MaxCacheMetaLen+1), 1000, 0, nil), abi.ErrTooLarge)
	p.errno("cache_store", "33 tags", hostcall.CacheStore(b("k"), nil, 1000, 0, bytes.Repeat(b("t\x00"), abi.MaxTags+1)), abi.ErrTooLarge)

	for _, k := range []string{"tck-p1", "tck-p2"} {
		hostcall.CacheStore(b(k), nil, 60000, 0, b("purge-me\x00"))
	}
	p.eq("cache_purge", "by tag", hostcall.CachePurge(abi.PurgeTag, b("purge-me")), 2)
	p.errno("cache_lookup", "purged entry", hostcall.CacheLookup(b("tck-p1"), nil), abi.ErrNotFound)
	hostcall.CacheStore(b("tck-p3"), nil, 60000, 0, nil)
	p.eq("cache_purge", "by key", hostcall.CachePurge(abi.PurgeKey, b("tck-p3")), 1)
	p.eq("cache_purge", "by key, again", hostcall.CachePurge(abi.PurgeKey, b("tck-p3")), 0)
	p.errno("cache_revalidate", "in response", hostcall.CacheRevalidate(key), abi.ErrPhase)
	p.errno("cache_request", "in response", hostcall.CacheRequest(b("tck")), abi.ErrPhase)
	p.errno("cache_response", "a name that is not a token", hostcall.CacheResponse(b("a b"), 0), abi.ErrInvalid)
	p.errno("cache_response", "an unknown option", hostcall.CacheResponse(b("tck"), 1<<7), abi.ErrInvalid)

	p.ranges(key)
}

// ranges checks range_apply on the stored response (OriginBody, 11 bytes),
// made a 200 first: ranges apply to a 200 only.
func (p *Plugin) ranges(key []byte) {
	hostcall.CacheServe(key)
	p.eq("range_apply", "a 201 is left alone", hostcall.RangeApply(b("bytes=0-5")), OriginStatus)
	header := func(name string) string {
		v, _ := read(64, func(buf []byte) int32 { return hostcall.HeaderGet(abi.MsgResponse, b(name), buf) })
		return string(v)
	}
	for _, c := range []struct {
		value        string
		status       int32
		body, cRange string
	}{
		{"bytes=0-5", 206, "origin", "bytes 0-5/11"},
		{"bytes=-4", 206, "body", "bytes 7-10/11"},
		{"BYTES=7-", 206, "body", "bytes 7-10/11"},
		{"bytes=11-", 416, "", "bytes */11"},
		{"bytes=0-1,3-4", 200, OriginBody, ""},
		{"items=0-1", 200, OriginBody, ""},
		{"bytes=5-2", 200, OriginBody, ""},
	} {
		hostcall.CacheServe(key)
		hostcall.StatusSet(200)
		p.eq("range_apply", c.value, hostcall.RangeApply(b(c.value)), c.status)
		got, _ := read(64, func(buf []byte) int32 { return hostcall.BodyRead(abi.MsgResponse, 0, buf) })
		p.eqBytes("range_apply", c.value+": body", got, c.body)
		p.check("range_apply", c.value+": Content-Range", header("Content-Range") == c.cRange, header("Content-Range"))
		p.eq("range_apply", c.value+": status_get agrees", hostcall.StatusGet(), c.status)
	}
	hostcall.CacheServe(key)
	got, _ := read(64, func(buf []byte) int32 { return hostcall.BodyRead(abi.MsgResponse, 0, buf) })
	p.eqBytes("range_apply", "the stored body stays whole", got, OriginBody)
	p.check("range_apply", "the stored response has no Content-Range", header("Content-Range") == "", header("Content-Range"))
}
