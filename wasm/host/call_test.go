package host

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/wasm/abi"
)

// logRecorder is a slog.Handler that keeps every record it is given.
type logRecorder struct {
	mu    sync.Mutex
	level slog.Level
	recs  []slog.Record
}

func (l *logRecorder) Enabled(_ context.Context, lv slog.Level) bool { return lv >= l.level }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) records() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]slog.Record(nil), l.recs...)
}

func attrsOf(r slog.Record) [][2]string {
	var out [][2]string
	r.Attrs(func(a slog.Attr) bool {
		out = append(out, [2]string{a.Key, a.Value.String()})
		return true
	})
	return out
}

// fixture is a Call with every store configured, over a known exchange.
type fixture struct {
	env  *Env
	ex   *MemExchange
	call *Call
	now  time.Time // Env.Now
	clk  *testClock
	logs *logRecorder
	reg  *prometheus.Registry
}

var fixtureSecret = []byte("fixture secret, 32 bytes for HS256")[:32]

func newFixture(t testing.TB, phase abi.Phase) *fixture {
	t.Helper()
	f := &fixture{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), logs: &logRecorder{level: slog.LevelDebug}, reg: prometheus.NewRegistry()}
	g, clk := newTestGCRA(1024)
	f.clk = clk
	f.env = &Env{
		Plugin: "p", Version: "v1",
		Config:  []byte("cfg"),
		Cache:   NewMemCache(1 << 20),
		Limiter: g,
		Keys:    NewKeyring(NewVerifyCache(64)),
		Metrics: NewMetrics(NewMetricFamilies(f.reg), "p", "v1"),
		Log:     slog.New(f.logs),
		Now:     func() time.Time { return f.now },
	}
	if h := f.env.Keys.Register(abi.AlgHS256, abi.KeyRaw, fixtureSecret); h != 0 {
		t.Fatalf("fixture key handle %d", h)
	}
	if h := f.env.Metrics.Define(abi.MetricCounter, []byte("hits")); h != 0 {
		t.Fatalf("fixture metric handle %d", h)
	}
	f.ex = &MemExchange{Req: Request{
		Method: "GET", Scheme: "https", Host: "example.com", Path: "/p", RawQuery: "q=1",
		Proto: "HTTP/1.1", ClientAddr: "203.0.113.7:51234", ID: "req-1",
		Header: Header{Fields: []HeaderField{{"X-A", "1"}}},
		Body:   []byte("req body"),
	}}
	if phase == abi.PhaseResponse {
		f.ex.Resp = Response{Status: 201, Header: Header{Fields: []HeaderField{{"Server", "origin"}}}, Body: []byte("origin body")}
	}
	f.call = &Call{}
	var ex Exchange
	if phase != abi.PhaseConfigure {
		ex = f.ex
	}
	f.call.Reset(f.env, phase, ex)
	return f
}

func fixtureMAC(msg []byte) []byte {
	m := hmac.New(sha256.New, fixtureSecret)
	m.Write(msg)
	return m.Sum(nil)
}

var phases = []abi.Phase{abi.PhaseConfigure, abi.PhaseRequest, abi.PhaseResponse}

// TestCallPhases is the phase column of the spec: what each host function
// returns in configure, request and response.
func TestCallPhases(t *testing.T) {
	const (
		P = abi.ErrPhase
		N = abi.ErrNotFound
	)
	buf := make([]byte, 64)
	var rr [abi.RateResultSize]byte
	rows := []struct {
		name string
		fn   func(c *Call) int32
		want [3]int32 // configure, request, response
	}{
		{"config_read", func(c *Call) int32 { return c.ConfigRead(buf) }, [3]int32{3, 3, 3}},
		{"error_set", func(c *Call) int32 { return c.ErrorSet([]byte("e")) }, [3]int32{0, 0, 0}},
		{"field_get", func(c *Call) int32 { return c.FieldGet(abi.FieldMethod, buf) }, [3]int32{P, 3, 3}},
		{"field_set", func(c *Call) int32 { return c.FieldSet(abi.FieldPath, []byte("/x")) }, [3]int32{P, 0, P}},
		{"status_get", func(c *Call) int32 { return c.StatusGet() }, [3]int32{P, 0, 201}},
		{"status_set", func(c *Call) int32 { return c.StatusSet(204) }, [3]int32{P, 0, 0}},
		{"header_get request", func(c *Call) int32 { return c.HeaderGet(abi.MsgRequest, []byte("x-a"), buf) }, [3]int32{P, 1, 1}},
		{"header_get response", func(c *Call) int32 { return c.HeaderGet(abi.MsgResponse, []byte("server"), buf) }, [3]int32{P, N, 6}},
		{"header_values", func(c *Call) int32 { return c.HeaderValues(abi.MsgRequest, []byte("X-A"), buf) }, [3]int32{P, 2, 2}},
		{"header_names", func(c *Call) int32 { return c.HeaderNames(abi.MsgRequest, buf) }, [3]int32{P, 4, 4}},
		{"header_set request", func(c *Call) int32 { return c.HeaderSet(abi.MsgRequest, []byte("X-B"), []byte("v")) }, [3]int32{P, 0, P}},
		{"header_set response", func(c *Call) int32 { return c.HeaderSet(abi.MsgResponse, []byte("X-B"), []byte("v")) }, [3]int32{P, 0, 0}},
		{"header_add request", func(c *Call) int32 { return c.HeaderAdd(abi.MsgRequest, []byte("X-B"), []byte("v")) }, [3]int32{P, 0, P}},
		{"header_add response", func(c *Call) int32 { return c.HeaderAdd(abi.MsgResponse, []byte("X-B"), []byte("v")) }, [3]int32{P, 0, 0}},
		{"header_remove request", func(c *Call) int32 { return c.HeaderRemove(abi.MsgRequest, []byte("X-A")) }, [3]int32{P, 0, P}},
		{"header_remove response", func(c *Call) int32 { return c.HeaderRemove(abi.MsgResponse, []byte("Server")) }, [3]int32{P, 0, 0}},
		{"body_read", func(c *Call) int32 { return c.BodyRead(abi.MsgRequest, 0, buf) }, [3]int32{P, 8, 8}},
		{"body_set request", func(c *Call) int32 { return c.BodySet(abi.MsgRequest, []byte("b")) }, [3]int32{P, 0, P}},
		{"body_set response", func(c *Call) int32 { return c.BodySet(abi.MsgResponse, []byte("b")) }, [3]int32{P, 0, 0}},
		{"value_get", func(c *Call) int32 { return c.ValueGet([]byte("v"), buf) }, [3]int32{P, N, N}},
		{"value_set", func(c *Call) int32 { return c.ValueSet([]byte("v"), []byte("x"), 0) }, [3]int32{P, 0, 0}},
		{"cache_lookup", func(c *Call) int32 { return c.CacheLookup([]byte("none"), buf) }, [3]int32{P, N, N}},
		{"cache_store", func(c *Call) int32 { return c.CacheStore([]byte("k"), nil, 1000, 0, nil) }, [3]int32{P, abi.ErrInvalid, 0}}, // no status yet in the request phase
		{"cache_serve", func(c *Call) int32 { return c.CacheServe([]byte("none")) }, [3]int32{P, N, N}},
		{"cache_purge", func(c *Call) int32 { return c.CachePurge(abi.PurgeKey, []byte("none")) }, [3]int32{P, 0, 0}},
		{"cache_revalidate", func(c *Call) int32 { return c.CacheRevalidate([]byte("k")) }, [3]int32{P, 1, P}},
		{"cache_request", func(c *Call) int32 { return c.CacheRequest([]byte("c")) }, [3]int32{P, 4, P}},       // a miss: forward
		{"cache_response", func(c *Call) int32 { return c.CacheResponse([]byte("c"), 0) }, [3]int32{P, P, 1}},  // no state: settled
		{"range_apply", func(c *Call) int32 { return c.RangeApply([]byte("bytes=0-1")) }, [3]int32{P, 0, 201}}, // ranges apply to a 200 only
		{"ratelimit_take", func(c *Call) int32 { return c.RatelimitTake([]byte("k"), 1, 1000, 1, 1, rr[:]) }, [3]int32{P, 1, 1}},
		{"key_register", func(c *Call) int32 {
			return c.KeyRegister(abi.AlgHS256, abi.KeyRaw, []byte("a second secret, 32 bytes for HS256")[:32])
		}, [3]int32{1, P, P}},
		{"verify", func(c *Call) int32 { return c.Verify(0, []byte("m"), fixtureMAC([]byte("m"))) }, [3]int32{1, 1, 1}},
		{"digest", func(c *Call) int32 { return c.Digest(abi.DigestSHA256, []byte("m"), buf) }, [3]int32{32, 32, 32}},
		{"token_policy", func(c *Call) int32 {
			return c.TokenPolicy((&abi.TokenPolicy{Keys: []abi.TokenKey{{Key: 0}}}).Append(nil))
		}, [3]int32{0, P, P}},
		{"token_verify", func(c *Call) int32 { return c.TokenVerify(0, []byte("a.b.c"), buf) }, [3]int32{N, N, N}}, // no policy registered
		{"random_fill", func(c *Call) int32 { return c.RandomFill(buf[:8]) }, [3]int32{0, 0, 0}},
		{"log", func(c *Call) int32 { return c.Log(abi.LevelInfo, []byte("m"), nil) }, [3]int32{0, 0, 0}},
		{"metric_define", func(c *Call) int32 { return c.MetricDefine(abi.MetricGauge, []byte("other")) }, [3]int32{1, P, P}},
		{"metric_record", func(c *Call) int32 { return c.MetricRecord(0, 1) }, [3]int32{0, 0, 0}},
	}
	for _, tc := range rows {
		for i, ph := range phases {
			t.Run(tc.name+"/"+abi.PhaseName(ph), func(t *testing.T) {
				f := newFixture(t, ph)
				if got := tc.fn(f.call); got != tc.want[i] {
					t.Fatalf("= %s, want %s", errnoOr(got), errnoOr(tc.want[i]))
				}
			})
		}
	}
	// Every host function has a row (time_now returns i64: TestCallTimeNow).
	for _, fn := range abi.Funcs {
		found := fn.Name == "time_now"
		for _, r := range rows {
			found = found || r.name == fn.Name || strings.HasPrefix(r.name, fn.Name+" ")
		}
		if !found {
			t.Errorf("host function %s has no phase row", fn.Name)
		}
	}
}

// errnoOr renders a host function result: an Errno by name, else the number.
func errnoOr(v int32) string {
	if v < 0 {
		return abi.ErrnoName(v)
	}
	return strconv.Itoa(int(v))
}

func TestCallReleaseAndReset(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	c := f.call
	c.ErrorSet([]byte("boom"))
	if c.ErrorMessage() != "boom" || c.Phase() != abi.PhaseRequest {
		t.Fatalf("ErrorMessage %q, Phase %d", c.ErrorMessage(), c.Phase())
	}
	c.Release()
	if got := c.StatusGet(); got != abi.ErrPhase {
		t.Fatalf("StatusGet after Release = %d, want ErrPhase", got)
	}
	c.Reset(f.env, abi.PhaseResponse, f.ex)
	if c.ErrorMessage() != "" {
		t.Fatalf("Reset kept the error message %q", c.ErrorMessage())
	}
	if c.Phase() != abi.PhaseResponse || c.StatusGet() != 0 {
		t.Fatalf("after Reset: phase %d, status %d", c.Phase(), c.StatusGet())
	}
}

func TestCallTimeNow(t *testing.T) {
	for _, ph := range phases {
		f := newFixture(t, ph)
		if got := f.call.TimeNow(); got != f.now.UnixNano() {
			t.Errorf("%s: TimeNow = %d, want %d", abi.PhaseName(ph), got, f.now.UnixNano())
		}
	}
	var c Call
	c.Reset(&Env{}, abi.PhaseConfigure, nil) // nil Env.Now: the wall clock
	before := time.Now().UnixNano()
	got := c.TimeNow()
	if after := time.Now().UnixNano(); got < before || got > after {
		t.Fatalf("TimeNow = %d outside [%d, %d]", got, before, after)
	}
}

func TestCallRandomFill(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	a, b := make([]byte, 32), make([]byte, 32)
	f.call.RandomFill(a)
	f.call.RandomFill(b)
	if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 32)) {
		t.Fatalf("RandomFill gave %x and %x", a, b)
	}
	if got := f.call.RandomFill(nil); got != 0 {
		t.Fatalf("RandomFill(nil) = %d", got)
	}
}

func TestCallConfigRead(t *testing.T) {
	f := newFixture(t, abi.PhaseConfigure)
	for _, tc := range []struct {
		n    int
		want string
	}{{0, ""}, {2, "cf"}, {3, "cfg"}, {10, "cfg"}} {
		buf := make([]byte, tc.n)
		if got := f.call.ConfigRead(buf); got != 3 || string(buf[:min(tc.n, 3)]) != tc.want {
			t.Errorf("ConfigRead(buf of %d) = %d %q", tc.n, got, buf)
		}
	}
}

func TestCallErrorSet(t *testing.T) {
	long := bytes.Repeat([]byte("x"), abi.MaxErrorLen+100)
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"empty", nil, ""},
		{"short", []byte("bad config"), "bad config"},
		{"at the limit", long[:abi.MaxErrorLen], string(long[:abi.MaxErrorLen])},
		{"one past", long[:abi.MaxErrorLen+1], string(long[:abi.MaxErrorLen])},
		{"far past", long, string(long[:abi.MaxErrorLen])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, abi.PhaseRequest)
			f.call.ErrorSet([]byte("an earlier message, longer than some"))
			msg := bytes.Clone(tc.msg)
			if got := f.call.ErrorSet(msg); got != 0 {
				t.Fatalf("ErrorSet = %d", got)
			}
			for i := range msg { // guest memory changes after the call
				msg[i] = '!'
			}
			if got := f.call.ErrorMessage(); got != tc.want {
				t.Fatalf("ErrorMessage = %q (%d bytes), want %d bytes", got[:min(len(got), 40)], len(got), len(tc.want))
			}
		})
	}
}

func TestCallFieldGet(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	for _, tc := range []struct {
		field abi.Field
		want  string
	}{
		{abi.FieldMethod, "GET"}, {abi.FieldScheme, "https"}, {abi.FieldHost, "example.com"},
		{abi.FieldPath, "/p"}, {abi.FieldRawQuery, "q=1"}, {abi.FieldProto, "HTTP/1.1"},
		{abi.FieldClientAddr, "203.0.113.7:51234"}, {abi.FieldRequestID, "req-1"},
	} {
		buf := make([]byte, 64)
		if got := f.call.FieldGet(tc.field, buf); got != int32(len(tc.want)) || string(buf[:got]) != tc.want {
			t.Errorf("FieldGet(%d) = %d %q, want %q", tc.field, got, buf[:max(got, 0)], tc.want)
		}
		short := make([]byte, 2)
		if got := f.call.FieldGet(tc.field, short); got != int32(len(tc.want)) || string(short) != tc.want[:2] {
			t.Errorf("FieldGet(%d) into 2 bytes = %d %q", tc.field, got, short)
		}
	}
	for _, bad := range []abi.Field{-1, 8, 1 << 20} {
		if got := f.call.FieldGet(bad, nil); got != abi.ErrInvalid {
			t.Errorf("FieldGet(%d) = %d, want ErrInvalid", bad, got)
		}
	}
}

func TestCallFieldSet(t *testing.T) {
	long := "/" + strings.Repeat("a", maxFieldLen-1)
	for _, tc := range []struct {
		field abi.Field
		value string
		want  int32
	}{
		{abi.FieldMethod, "POST", 0},
		{abi.FieldMethod, "M-SEARCH", 0},
		{abi.FieldMethod, "PROPFIND", 0},
		{abi.FieldMethod, "", abi.ErrInvalid},
		{abi.FieldMethod, "GET ", abi.ErrInvalid},
		{abi.FieldMethod, "GE\x00T", abi.ErrInvalid},
		{abi.FieldMethod, "GET\r\nX: y", abi.ErrInvalid},
		{abi.FieldMethod, "G(T", abi.ErrInvalid},
		{abi.FieldHost, "api.example:8443", 0},
		{abi.FieldHost, "[::1]:80", 0},
		{abi.FieldHost, "", abi.ErrInvalid},
		{abi.FieldHost, "a/b", abi.ErrInvalid},
		{abi.FieldHost, "a?b", abi.ErrInvalid},
		{abi.FieldHost, "a#b", abi.ErrInvalid},
		{abi.FieldHost, "user@host", abi.ErrInvalid},
		{abi.FieldHost, `a\b`, abi.ErrInvalid},
		{abi.FieldHost, "a b", abi.ErrInvalid},
		{abi.FieldHost, "a\x7f", abi.ErrInvalid},
		{abi.FieldHost, "h\xc3\xa9", abi.ErrInvalid},
		{abi.FieldPath, "/", 0},
		{abi.FieldPath, "/v1/items%2F7", 0},
		{abi.FieldPath, "/a;b=c@d:e!$&'()*+,", 0},
		{abi.FieldPath, long, 0},
		{abi.FieldPath, long + "a", abi.ErrTooLarge},
		{abi.FieldPath, "", abi.ErrInvalid},
		{abi.FieldPath, "relative", abi.ErrInvalid},
		{abi.FieldPath, "/a?b", abi.ErrInvalid},
		{abi.FieldPath, "/a#b", abi.ErrInvalid},
		{abi.FieldPath, "/a b", abi.ErrInvalid},
		{abi.FieldPath, "/a\tb", abi.ErrInvalid},
		{abi.FieldPath, "/a\r\nb", abi.ErrInvalid},
		{abi.FieldPath, "/\x00", abi.ErrInvalid},
		{abi.FieldPath, "/\x80", abi.ErrInvalid},
		{abi.FieldRawQuery, "", 0},
		{abi.FieldRawQuery, "a=1&b=2", 0},
		{abi.FieldRawQuery, "a=?/", 0},
		{abi.FieldRawQuery, "a#b", abi.ErrInvalid},
		{abi.FieldRawQuery, "a b", abi.ErrInvalid},
		{abi.FieldRawQuery, "a\nb", abi.ErrInvalid},
		{abi.FieldScheme, "http", abi.ErrInvalid},
		{abi.FieldProto, "HTTP/2", abi.ErrInvalid},
		{abi.FieldClientAddr, "1.2.3.4:5", abi.ErrInvalid},
		{abi.FieldRequestID, "x", abi.ErrInvalid},
		{-1, "x", abi.ErrInvalid},
		{8, "x", abi.ErrInvalid},
	} {
		t.Run(strconv.Itoa(int(tc.field))+"/"+tc.value[:min(len(tc.value), 20)], func(t *testing.T) {
			f := newFixture(t, abi.PhaseRequest)
			ok := abi.ValidField(tc.field)
			var before []byte
			if ok {
				before = bytes.Clone(f.ex.Field(tc.field))
			}
			v := []byte(tc.value)
			if got := f.call.FieldSet(tc.field, v); got != tc.want {
				t.Fatalf("FieldSet = %s, want %s", errnoOr(got), errnoOr(tc.want))
			}
			if !ok {
				return
			}
			want := before
			if tc.want == 0 {
				want = []byte(tc.value)
				for i := range v { // the exchange copied the guest's bytes
					v[i] = 'Z'
				}
			}
			if got := f.ex.Field(tc.field); !bytes.Equal(got, want) {
				t.Fatalf("field is %q, want %q", got, want)
			}
		})
	}
}

func TestCallStatus(t *testing.T) {
	for _, tc := range []struct {
		code int32
		want int32
	}{
		{200, 0}, {204, 0}, {304, 0}, {418, 0}, {599, 0},
		{199, abi.ErrInvalid}, {600, abi.ErrInvalid}, {0, abi.ErrInvalid}, {-200, abi.ErrInvalid},
		{100, abi.ErrInvalid}, {math.MaxInt32, abi.ErrInvalid}, {math.MinInt32, abi.ErrInvalid},
	} {
		for _, ph := range []abi.Phase{abi.PhaseRequest, abi.PhaseResponse} {
			f := newFixture(t, ph)
			before := f.call.StatusGet()
			if got := f.call.StatusSet(tc.code); got != tc.want {
				t.Errorf("%s: StatusSet(%d) = %d, want %d", abi.PhaseName(ph), tc.code, got, tc.want)
			}
			want := before
			if tc.want == 0 {
				want = tc.code
			}
			if got := f.call.StatusGet(); got != want {
				t.Errorf("%s: StatusGet after StatusSet(%d) = %d, want %d", abi.PhaseName(ph), tc.code, got, want)
			}
		}
	}
}

// TestCallHeaderWriteBudget: one call's header writes are bounded in
// number and bytes (a plugin added 1500 fields of 16 KB: a 24 MB header
// section to the client, 450 MB of heap for 8 requests); the next call
// has its own budget.
func TestCallHeaderWriteBudget(t *testing.T) {
	f := newFixture(t, abi.PhaseResponse)
	for i := range maxHeaderWrites {
		if got := f.call.HeaderAdd(abi.MsgResponse, []byte("X-N"), []byte("v")); got != 0 {
			t.Fatalf("write %d: %d", i+1, got)
		}
	}
	if got := f.call.HeaderAdd(abi.MsgResponse, []byte("X-N"), []byte("v")); got != abi.ErrTooLarge {
		t.Fatalf("write %d: %d, want ErrTooLarge", maxHeaderWrites+1, got)
	}
	big := []byte(strings.Repeat("v", maxHeaderValueLen))
	f.call.Reset(f.env, abi.PhaseResponse, f.ex)
	for i := range maxHeaderWriteBytes / (maxHeaderValueLen + 3) {
		if got := f.call.HeaderSet(abi.MsgResponse, []byte("X-B"), big); got != 0 {
			t.Fatalf("%d KiB written: %d", (i+1)*16, got)
		}
	}
	if got := f.call.HeaderAdd(abi.MsgResponse, []byte("X-B"), big); got != abi.ErrTooLarge {
		t.Fatalf("past %d bytes: %d, want ErrTooLarge", maxHeaderWriteBytes, got)
	}
}

// TestCallHeaderWriteBudgetEmptyValues: an empty value, which the engine
// hands over as nil, is a write like any other, counted in number and by
// its name's bytes; only header_remove is not. An empty value passed for a
// removal, so a plugin added 20,000 empty-valued fields in one call.
func TestCallHeaderWriteBudgetEmptyValues(t *testing.T) {
	f := newFixture(t, abi.PhaseResponse)
	for i := range maxHeaderWrites {
		if got := f.call.HeaderAdd(abi.MsgResponse, []byte("X-E"+strconv.Itoa(i)), nil); got != 0 {
			t.Fatalf("write %d: %d", i+1, got)
		}
	}
	if got := f.call.HeaderSet(abi.MsgResponse, []byte("X-E"), nil); got != abi.ErrTooLarge {
		t.Fatalf("write %d: %d, want ErrTooLarge", maxHeaderWrites+1, got)
	}
	if got := f.call.HeaderRemove(abi.MsgResponse, []byte("X-E0")); got != 0 {
		t.Fatalf("removal past the budget: %d", got)
	}

	// Names count: 16 KiB of value, then 192 names of 256 bytes pass 64 KiB.
	f.call.Reset(f.env, abi.PhaseResponse, f.ex)
	if got := f.call.HeaderSet(abi.MsgResponse, []byte("X-B"), []byte(strings.Repeat("v", maxHeaderValueLen))); got != 0 {
		t.Fatalf("16 KiB value: %d", got)
	}
	written := 3 + maxHeaderValueLen
	for i := 0; ; i++ {
		name := fmt.Sprintf("X-%0254d", i)
		got := f.call.HeaderAdd(abi.MsgResponse, []byte(name), nil)
		if written += len(name); written <= maxHeaderWriteBytes {
			if got != 0 {
				t.Fatalf("%d bytes written: %d", written, got)
			}
			continue
		}
		if got != abi.ErrTooLarge {
			t.Fatalf("past %d bytes of names: %d, want ErrTooLarge", maxHeaderWriteBytes, got)
		}
		break
	}
}

// TestHeaderNamesMany: header_names over many fields, names repeated in
// other cases and out of order, gives each name once in order of first
// appearance (MemExchange.AppendHeaderNames sorts them to find the first).
func TestHeaderNamesMany(t *testing.T) {
	var h Header
	var want []byte
	const n = 1000
	for i := range n {
		name := "X-N" + strconv.Itoa(i)
		h.Add(name, "1")
		want = abi.AppendList(want, []byte(name))
		h.Add(strings.ToLower(name), "2")
		h.Add("x-n"+strconv.Itoa(i/2), "3") // seen before
	}
	x := &MemExchange{Resp: Response{Header: h}}
	if got := x.AppendHeaderNames(nil, abi.MsgResponse); !bytes.Equal(got, want) {
		t.Fatalf("%d bytes of names, want %d: %.200q...", len(got), len(want), got)
	}
	// The first of a name is kept with its case.
	x.Resp.Header.Fields = []HeaderField{{"x-b", ""}, {"X-A", ""}, {"X-B", ""}, {"x-a", ""}, {"X-C", ""}}
	if got := x.AppendHeaderNames(nil, abi.MsgResponse); string(got) != "x-b\x00X-A\x00X-C\x00" {
		t.Fatalf("%q", got)
	}
}

func TestCallHeaderWriteValidation(t *testing.T) {
	longName := strings.Repeat("n", abi.MaxHeaderNameLen)
	longValue := strings.Repeat("v", maxHeaderValueLen)
	for _, tc := range []struct {
		name, value string
		want        int32
	}{
		{"X-Ok", "v", 0},
		{"x-lower", "", 0},
		{"!#$%&'*+-.^_`|~09azAZ", "v", 0},
		{longName, "v", 0},
		{longName + "n", "v", abi.ErrInvalid},
		{"", "v", abi.ErrInvalid},
		{"X A", "v", abi.ErrInvalid},
		{"X:A", "v", abi.ErrInvalid},
		{"X-A:", "v", abi.ErrInvalid},
		{"X\x00", "v", abi.ErrInvalid},
		{"X\r\nY", "v", abi.ErrInvalid},
		{"X\t", "v", abi.ErrInvalid},
		{"h\xc3\xa9", "v", abi.ErrInvalid},
		{"(x)", "v", abi.ErrInvalid},
		{"a,b", "v", abi.ErrInvalid},
		{"a/b", "v", abi.ErrInvalid},
		{"a;b", "v", abi.ErrInvalid},
		{"a=b", "v", abi.ErrInvalid},
		{"a\"b", "v", abi.ErrInvalid},
		{"{a}", "v", abi.ErrInvalid},
		{"Content-Length", "1", abi.ErrInvalid},
		{"content-length", "1", abi.ErrInvalid},
		{"CONTENT-LENGTH", "1", abi.ErrInvalid},
		{"Transfer-Encoding", "chunked", abi.ErrInvalid},
		{"transfer-encoding", "chunked", abi.ErrInvalid},
		{"Content-Length-X", "1", 0},
		{"Content-Type", "text/plain; charset=utf-8", 0},
		{"X-V", "a b", 0},
		{"X-V", "a\tb", 0},
		{"X-V", "\t lead and trail \t", 0},
		{"X-V", "obs-text \x80\xff caf\xc3\xa9", 0},
		{"X-V", `"quoted", (comment) ~!@#$%^&*`, 0},
		{"X-V", longValue, 0},
		{"X-V", longValue + "v", abi.ErrTooLarge},
		{"X-V", "a\rb", abi.ErrInvalid},
		{"X-V", "a\nb", abi.ErrInvalid},
		{"X-V", "a\r\nX-Injected: 1", abi.ErrInvalid},
		{"X-V", "a\x00b", abi.ErrInvalid},
		{"X-V", "\x01", abi.ErrInvalid},
		{"X-V", "\x1b[31m", abi.ErrInvalid},
		{"X-V", "\x1f", abi.ErrInvalid},
		{"X-V", "del\x7f", abi.ErrInvalid},
		{"X-V", "\x0b\x0c", abi.ErrInvalid},
	} {
		t.Run(tc.name[:min(len(tc.name), 24)]+"="+tc.value[:min(len(tc.value), 24)], func(t *testing.T) {
			for _, op := range []struct {
				name string
				fn   func(c *Call, msg abi.Msg, n, v []byte) int32
			}{
				{"set", func(c *Call, msg abi.Msg, n, v []byte) int32 { return c.HeaderSet(msg, n, v) }},
				{"add", func(c *Call, msg abi.Msg, n, v []byte) int32 { return c.HeaderAdd(msg, n, v) }},
			} {
				for _, msg := range []abi.Msg{abi.MsgRequest, abi.MsgResponse} {
					f := newFixture(t, abi.PhaseRequest)
					before := len(f.ex.header(msg).Fields)
					if got := op.fn(f.call, msg, []byte(tc.name), []byte(tc.value)); got != tc.want {
						t.Fatalf("%s msg %d: = %s, want %s", op.name, msg, errnoOr(got), errnoOr(tc.want))
					}
					after := len(f.ex.header(msg).Fields)
					if tc.want != 0 && after != before {
						t.Fatalf("%s msg %d: a refused write changed the headers", op.name, msg)
					}
					if tc.want == 0 {
						if v, ok := f.ex.header(msg).Get(tc.name); !ok || v != tc.value {
							t.Fatalf("%s msg %d: header reads %q %v", op.name, msg, v, ok)
						}
					}
				}
			}
			// Removal validates the name the same way (no value).
			f := newFixture(t, abi.PhaseRequest)
			wantRemove := tc.want
			if tc.want == abi.ErrTooLarge || abi.ValidHeaderName([]byte(tc.name)) && !isReservedHeader([]byte(tc.name)) {
				wantRemove = 0
			}
			if got := f.call.HeaderRemove(abi.MsgRequest, []byte(tc.name)); got != wantRemove {
				t.Fatalf("remove = %s, want %s", errnoOr(got), errnoOr(wantRemove))
			}
		})
	}
}

func TestCallHeaderMsgValidation(t *testing.T) {
	buf := make([]byte, 16)
	for _, msg := range []abi.Msg{-1, 2, 100} {
		f := newFixture(t, abi.PhaseRequest)
		c := f.call
		for name, got := range map[string]int32{
			"header_get":    c.HeaderGet(msg, []byte("X-A"), buf),
			"header_values": c.HeaderValues(msg, []byte("X-A"), buf),
			"header_names":  c.HeaderNames(msg, buf),
			"header_set":    c.HeaderSet(msg, []byte("X-A"), []byte("v")),
			"header_add":    c.HeaderAdd(msg, []byte("X-A"), []byte("v")),
			"header_remove": c.HeaderRemove(msg, []byte("X-A")),
			"body_read":     c.BodyRead(msg, 0, buf),
			"body_set":      c.BodySet(msg, []byte("b")),
		} {
			if got != abi.ErrInvalid {
				t.Errorf("%s(msg %d) = %s, want ErrInvalid", name, msg, errnoOr(got))
			}
		}
	}
}

func TestCallHeaderReads(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	f.ex.Req.Header = Header{Fields: []HeaderField{
		{"Accept", "text/html"}, {"X-Multi", "one"}, {"x-multi", "two"}, {"X-Empty", ""}, {"X-MULTI", "three"},
	}}
	c := f.call
	for _, tc := range []struct {
		name string
		fn   func(buf []byte) int32
		want string
		ret  int32
	}{
		{"get", func(b []byte) int32 { return c.HeaderGet(abi.MsgRequest, []byte("accept"), b) }, "text/html", 9},
		{"get first of many", func(b []byte) int32 { return c.HeaderGet(abi.MsgRequest, []byte("X-MULTI"), b) }, "one", 3},
		{"get empty value", func(b []byte) int32 { return c.HeaderGet(abi.MsgRequest, []byte("x-empty"), b) }, "", 0},
		{"get absent", func(b []byte) int32 { return c.HeaderGet(abi.MsgRequest, []byte("Nope"), b) }, "", abi.ErrNotFound},
		{"values", func(b []byte) int32 { return c.HeaderValues(abi.MsgRequest, []byte("x-multi"), b) }, "one\x00two\x00three\x00", 14},
		{"values of empty", func(b []byte) int32 { return c.HeaderValues(abi.MsgRequest, []byte("X-Empty"), b) }, "\x00", 1},
		{"values absent", func(b []byte) int32 { return c.HeaderValues(abi.MsgRequest, []byte("Nope"), b) }, "", 0},
		{"names", func(b []byte) int32 { return c.HeaderNames(abi.MsgRequest, b) }, "Accept\x00X-Multi\x00X-Empty\x00", 23},
		{"names of empty response", func(b []byte) int32 { return c.HeaderNames(abi.MsgResponse, b) }, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 64)
			if got := tc.fn(buf); got != tc.ret {
				t.Fatalf("= %d, want %d", got, tc.ret)
			}
			if tc.ret > 0 && string(buf[:tc.ret]) != tc.want {
				t.Fatalf("buf = %q, want %q", buf[:tc.ret], tc.want)
			}
			// Probe and short buffers: full length, partial copy.
			if got := tc.fn(nil); got != tc.ret {
				t.Fatalf("probe = %d, want %d", got, tc.ret)
			}
			if tc.ret > 2 {
				short := make([]byte, 2)
				if got := tc.fn(short); got != tc.ret || string(short) != tc.want[:2] {
					t.Fatalf("short = %d %q", got, short)
				}
			}
		})
	}
}

func TestCallHeaderWrites(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	c := f.call
	f.ex.Req.Header = Header{Fields: []HeaderField{{"A", "1"}, {"B", "2"}, {"a", "3"}, {"C", "4"}}}
	name, value := []byte("a"), []byte("new")
	if got := c.HeaderSet(abi.MsgRequest, name, value); got != 0 {
		t.Fatal(got)
	}
	name[0], value[0] = 'Z', 'Z' // the exchange copied them
	if want := []HeaderField{{"A", "new"}, {"B", "2"}, {"C", "4"}}; !slices.Equal(f.ex.Req.Header.Fields, want) {
		t.Fatalf("after set: %v, want %v", f.ex.Req.Header.Fields, want)
	}
	c.HeaderAdd(abi.MsgRequest, []byte("b"), []byte("5"))
	if want := []HeaderField{{"A", "new"}, {"B", "2"}, {"C", "4"}, {"b", "5"}}; !slices.Equal(f.ex.Req.Header.Fields, want) {
		t.Fatalf("after add: %v, want %v", f.ex.Req.Header.Fields, want)
	}
	c.HeaderRemove(abi.MsgRequest, []byte("B"))
	if got := c.HeaderRemove(abi.MsgRequest, []byte("Absent")); got != 0 {
		t.Fatalf("removing an absent header = %d", got)
	}
	if want := []HeaderField{{"A", "new"}, {"C", "4"}}; !slices.Equal(f.ex.Req.Header.Fields, want) {
		t.Fatalf("after remove: %v, want %v", f.ex.Req.Header.Fields, want)
	}
	c.HeaderSet(abi.MsgResponse, []byte("X-New"), []byte("v"))
	if want := []HeaderField{{"X-New", "v"}}; !slices.Equal(f.ex.Resp.Header.Fields, want) {
		t.Fatalf("response: %v", f.ex.Resp.Header.Fields)
	}
}

func TestCallBody(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	c := f.call
	for _, tc := range []struct {
		offset int32
		buf    int
		ret    int32
		want   string
	}{
		{0, 64, 8, "req body"},
		{4, 64, 8, "body"},
		{4, 2, 8, "bo"},
		{8, 64, 8, ""},
		{100, 64, 8, ""},
		{0, 0, 8, ""},
		{-1, 64, abi.ErrInvalid, ""},
	} {
		buf := make([]byte, tc.buf)
		got := c.BodyRead(abi.MsgRequest, tc.offset, buf)
		n := min(max(int(got)-int(tc.offset), 0), tc.buf)
		if got != tc.ret || got >= 0 && string(buf[:n]) != tc.want {
			t.Errorf("BodyRead(offset %d, buf %d) = %d %q, want %d %q", tc.offset, tc.buf, got, buf[:n], tc.ret, tc.want)
		}
	}

	f.env.MaxBodySize = 16
	body := []byte("a new body")
	if got := c.BodySet(abi.MsgResponse, body); got != 0 {
		t.Fatal(got)
	}
	body[0] = 'Z'
	if string(f.ex.Resp.Body) != "a new body" {
		t.Fatalf("response body %q: not copied", f.ex.Resp.Body)
	}
	for _, tc := range []struct {
		n    int
		want int32
	}{{16, 0}, {17, abi.ErrTooLarge}, {0, 0}} {
		if got := c.BodySet(abi.MsgRequest, make([]byte, tc.n)); got != tc.want {
			t.Errorf("BodySet(%d bytes) with a 16-byte limit = %d, want %d", tc.n, got, tc.want)
		}
	}
	f.env.MaxBodySize = 0 // the default
	if got := c.BodySet(abi.MsgRequest, make([]byte, DefaultMaxBodySize)); got != 0 {
		t.Errorf("BodySet at the default limit = %d", got)
	}
	if got := c.BodySet(abi.MsgRequest, make([]byte, DefaultMaxBodySize+1)); got != abi.ErrTooLarge {
		t.Errorf("BodySet past the default limit = %d", got)
	}
}

// TestCallStreamedBody: of a body that streams, body_read gives the prefix
// the host holds with the whole body's length (BodyLengthUnknown when there
// is none, or it does not fit), refuses a read past the prefix, and
// body_set refuses to replace it, request or response.
func TestCallStreamedBody(t *testing.T) {
	f := newFixture(t, abi.PhaseResponse)
	for _, tc := range []struct {
		size int64
		want int32
	}{{5_000_000, 5_000_000}, {-1, abi.BodyLengthUnknown}, {5 << 30, abi.BodyLengthUnknown}} {
		f.ex.Req.Streamed = tc.size
		f.call.Reset(f.env, abi.PhaseRequest, f.ex)
		buf := make([]byte, 8)
		if got := f.call.BodyRead(abi.MsgRequest, 0, buf); got != tc.want || string(buf) != "req body" {
			t.Errorf("size %d: BodyRead of the prefix = %d %q, want %d \"req body\"", tc.size, got, buf, tc.want)
		}
		if got := f.call.BodyRead(abi.MsgRequest, 4, buf[:4]); got != tc.want || string(buf[:4]) != "body" {
			t.Errorf("size %d: BodyRead(offset 4) = %d %q, want %d \"body\"", tc.size, got, buf[:4], tc.want)
		}
		if got := f.call.BodyRead(abi.MsgRequest, 0, nil); got != tc.want {
			t.Errorf("size %d: BodyRead probe = %d, want %d", tc.size, got, tc.want)
		}
		for _, r := range [][2]int{{0, 9}, {9, 0}, {7, 2}, {100, 0}} {
			if got := f.call.BodyRead(abi.MsgRequest, int32(r[0]), make([]byte, r[1])); got != abi.ErrTooLarge {
				t.Errorf("size %d: BodyRead(offset %d, buf %d) past the prefix = %d, want ErrTooLarge", tc.size, r[0], r[1], got)
			}
		}
		if got := f.call.BodySet(abi.MsgRequest, []byte("redacted")); got != abi.ErrTooLarge || string(f.ex.Req.Body) != "req body" {
			t.Errorf("size %d: BodySet on a streamed request = %d, body %q: want ErrTooLarge and the body kept", tc.size, got, f.ex.Req.Body)
		}
		f.call.Release()
	}
	f.ex.Resp.Body, f.ex.Resp.Streamed = nil, 20<<20 // the host holds none of a streamed response
	f.call.Reset(f.env, abi.PhaseResponse, f.ex)
	if got := f.call.BodyRead(abi.MsgResponse, 0, nil); got != 20<<20 {
		t.Errorf("BodyRead probe of a streamed response = %d, want its length", got)
	}
	if got := f.call.BodyRead(abi.MsgResponse, 0, make([]byte, 1)); got != abi.ErrTooLarge {
		t.Errorf("BodyRead of a streamed response = %d, want ErrTooLarge", got)
	}
	for _, b := range []string{"<!-- injected -->", ""} {
		if got := f.call.BodySet(abi.MsgResponse, []byte(b)); got != abi.ErrTooLarge || f.ex.Resp.Body != nil {
			t.Errorf("BodySet(%q) on a streamed response = %d, body %q: want ErrTooLarge and no body set", b, got, f.ex.Resp.Body)
		}
	}
	// Only an exchange that can store a response once it has streamed
	// by (host.BodyStreamer, the edge's) stores one: not this one.
	f.ex.Resp.Status = 200
	if got := f.call.CacheStore([]byte("k"), nil, 1000, 0, nil); got != abi.ErrTooLarge {
		t.Errorf("CacheStore of a streamed response = %d, want ErrTooLarge", got)
	}
	// A stored response served in its place is held whole.
	f.ex.LoadResponse(&StoredResponse{Status: 200, Body: []byte("stored")})
	if got := f.call.BodySet(abi.MsgResponse, []byte("mine")); got != 0 || string(f.ex.Resp.Body) != "mine" {
		t.Errorf("BodySet on a loaded response = %d, body %q: want it set", got, f.ex.Resp.Body)
	}
}

func TestCallValues(t *testing.T) {
	key := func(n int) []byte { return bytes.Repeat([]byte("k"), n) }
	for _, tc := range []struct {
		name       string
		key, value []byte
		flags      abi.ValueFlag
		want       int32
	}{
		{"plain", []byte("user"), []byte("alice"), 0, 0},
		{"forward", []byte("user"), []byte("alice"), abi.ValueForward, 0},
		{"empty value", []byte("k"), nil, 0, 0},
		{"empty key", nil, []byte("v"), 0, 0},
		{"key at the limit", key(abi.MaxValueKeyLen), []byte("v"), 0, 0},
		{"key past the limit", key(abi.MaxValueKeyLen + 1), []byte("v"), 0, abi.ErrTooLarge},
		{"value at the limit", []byte("k"), make([]byte, abi.MaxValueLen), 0, 0},
		{"value past the limit", []byte("k"), make([]byte, abi.MaxValueLen+1), 0, abi.ErrTooLarge},
		{"unknown flag", []byte("k"), []byte("v"), 2, abi.ErrInvalid},
		{"negative flags", []byte("k"), []byte("v"), -1, abi.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, abi.PhaseRequest)
			k, v := bytes.Clone(tc.key), bytes.Clone(tc.value)
			if got := f.call.ValueSet(k, v, tc.flags); got != tc.want {
				t.Fatalf("ValueSet = %s, want %s", errnoOr(got), errnoOr(tc.want))
			}
			if len(k) > 0 {
				k[0] ^= 0xff // guest memory changes after the call
			}
			if len(v) > 0 {
				v[0] ^= 0xff
			}
			buf := make([]byte, len(tc.value)+1)
			got := f.call.ValueGet(tc.key, buf)
			if tc.want != 0 {
				if got != abi.ErrNotFound || f.ex.Vals.Len() != 0 {
					t.Fatalf("a refused value is readable: %d", got)
				}
				return
			}
			if got != int32(len(tc.value)) || !bytes.Equal(buf[:got], tc.value) {
				t.Fatalf("ValueGet = %d, value not the one set", got)
			}
			if _, _, fl := f.ex.Vals.At(0); fl != tc.flags {
				t.Fatalf("flags %d, want %d", fl, tc.flags)
			}
		})
	}
}

func TestValuesLimitsAndReplace(t *testing.T) {
	var v Values
	for i := range abi.MaxValues {
		if got := v.Set([]byte("k"+strconv.Itoa(i)), []byte("v"), 0); got != 0 {
			t.Fatalf("value %d: %d", i, got)
		}
	}
	if got := v.Set([]byte("one more"), []byte("v"), 0); got != abi.ErrTooLarge {
		t.Fatalf("value %d: %d, want ErrTooLarge", abi.MaxValues, got)
	}
	// Replacing an existing key is not a new value, even when full.
	if got := v.Set([]byte("k7"), []byte("replaced"), abi.ValueForward); got != 0 {
		t.Fatalf("replace on a full set: %d", got)
	}
	if got, ok := v.Get([]byte("k7")); !ok || string(got) != "replaced" {
		t.Fatalf("Get(k7) = %q %v", got, ok)
	}
	if k, val, fl := v.At(7); string(k) != "k7" || string(val) != "replaced" || fl != abi.ValueForward {
		t.Fatalf("At(7) = %q %q %d: replacement moved or lost its flags", k, val, fl)
	}
	if v.Len() != abi.MaxValues {
		t.Fatalf("Len = %d", v.Len())
	}
}

// TestValuesResetReuse: Reset empties the set but keeps its storage, and
// nothing of the previous request shows through.
func TestValuesResetReuse(t *testing.T) {
	var v Values
	v.Set([]byte("first-key"), []byte("a long first value"), abi.ValueForward)
	v.Set([]byte("second"), []byte("2"), 0)
	k0, val0, _ := v.At(0)
	capItems := cap(v.items)
	v.Reset()
	if v.Len() != 0 {
		t.Fatalf("Len after Reset = %d", v.Len())
	}
	if _, ok := v.Get([]byte("first-key")); ok {
		t.Fatal("a value survived Reset")
	}
	v.Set([]byte("new"), []byte("short"), 0)
	k, val, fl := v.At(0)
	if string(k) != "new" || string(val) != "short" || fl != 0 {
		t.Fatalf("At(0) = %q %q %d", k, val, fl)
	}
	if &k[0] != &k0[0] || &val[0] != &val0[0] || cap(v.items) != capItems {
		t.Fatal("Reset did not keep the storage for reuse")
	}
	if _, ok := v.Get([]byte("second")); ok {
		t.Fatal("an old value shows through a reused slot")
	}
	if got, ok := v.Get([]byte("new")); !ok || string(got) != "short" {
		t.Fatalf("Get(new) = %q", got)
	}
	allocs := testing.AllocsPerRun(100, func() {
		v.Reset()
		v.Set([]byte("first-key"), []byte("value"), 0)
		v.Set([]byte("second"), []byte("2"), 0)
	})
	if allocs != 0 && !raceEnabled {
		t.Fatalf("a reused Values allocates %.1f times per request", allocs)
	}
}

func TestCallCacheStoreValidation(t *testing.T) {
	tags := func(n int) []byte {
		var b []byte
		for i := range n {
			b = abi.AppendList(b, []byte("t"+strconv.Itoa(i)))
		}
		return b
	}
	// A stored entry's ttl is long enough to outlive the test: the cache
	// expires entries by the wall clock (1 ms failed 1 run in 100).
	for _, tc := range []struct {
		name       string
		key, meta  []byte
		ttl, stale int64
		tags       []byte
		want       int32
		wantTags   []string
	}{
		{"minimal", []byte("k"), nil, 0, 0, nil, 0, nil},
		{"with meta and tags", []byte("k"), []byte("m1"), 60_000, 5_000, []byte("a\x00b\x00"), 0, []string{"a", "b"}},
		{"last tag unterminated", []byte("k"), nil, 60_000, 0, []byte("a\x00b"), 0, []string{"a", "b"}},
		{"max ttl and stale", []byte("k"), nil, maxCacheMs, maxCacheMs, nil, 0, nil},
		{"key at the limit", make([]byte, abi.MaxCacheKeyLen), nil, 60_000, 0, nil, 0, nil},
		{"meta at the limit", []byte("k"), make([]byte, abi.MaxCacheMetaLen), 60_000, 0, nil, 0, nil},
		{"tags at the limit", []byte("k"), nil, 60_000, 0, tags(abi.MaxTags), 0, nil},
		{"empty key", nil, nil, 1, 0, nil, abi.ErrInvalid, nil},
		{"negative ttl", []byte("k"), nil, -1, 0, nil, abi.ErrInvalid, nil},
		{"negative stale", []byte("k"), nil, 1, -1, nil, abi.ErrInvalid, nil},
		{"ttl past 400 days", []byte("k"), nil, maxCacheMs + 1, 0, nil, abi.ErrInvalid, nil},
		{"stale past 400 days", []byte("k"), nil, 1, maxCacheMs + 1, nil, abi.ErrInvalid, nil},
		{"huge ttl", []byte("k"), nil, math.MaxInt64, 0, nil, abi.ErrInvalid, nil},
		{"key past the limit", make([]byte, abi.MaxCacheKeyLen+1), nil, 1, 0, nil, abi.ErrTooLarge, nil},
		{"meta past the limit", []byte("k"), make([]byte, abi.MaxCacheMetaLen+1), 1, 0, nil, abi.ErrTooLarge, nil},
		{"tags past the limit", []byte("k"), nil, 1, 0, tags(abi.MaxTags + 1), abi.ErrTooLarge, nil},
		{"empty tag", []byte("k"), nil, 1, 0, []byte("a\x00\x00"), abi.ErrInvalid, nil},
		{"only an empty tag", []byte("k"), nil, 1, 0, []byte("\x00"), abi.ErrInvalid, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, abi.PhaseResponse)
			meta := bytes.Clone(tc.meta)
			if got := f.call.CacheStore(tc.key, meta, tc.ttl, tc.stale, tc.tags); got != tc.want {
				t.Fatalf("CacheStore = %s, want %s", errnoOr(got), errnoOr(tc.want))
			}
			e, ok := f.env.Cache.Get(tc.key)
			if ok != (tc.want == 0) {
				t.Fatalf("entry stored = %v", ok)
			}
			if !ok {
				return
			}
			if len(meta) > 0 {
				meta[0] ^= 0xff // guest memory changes after the call
			}
			if !bytes.Equal(e.Meta, tc.meta) || e.TTL != time.Duration(tc.ttl)*time.Millisecond ||
				e.Stale != time.Duration(tc.stale)*time.Millisecond || !e.Stored.Equal(f.now) {
				t.Fatalf("entry %+v", e)
			}
			if tc.wantTags != nil && !slices.Equal(e.Tags, tc.wantTags) {
				t.Fatalf("tags %q, want %q", e.Tags, tc.wantTags)
			}
			if e.Response.Status != 201 || string(e.Response.Body) != "origin body" {
				t.Fatalf("stored response %+v", e.Response)
			}
		})
	}
}

func TestCallCacheRoundTrip(t *testing.T) {
	f := newFixture(t, abi.PhaseResponse)
	c := f.call
	if got := c.CacheStore([]byte("/a"), []byte("m1"), 60_000, 0, []byte("t\x00")); got != 0 {
		t.Fatal(got)
	}
	f.ex.Resp.Body[0] = 'X' // the stored response is a copy
	f.now = f.now.Add(1500 * time.Millisecond)
	buf := make([]byte, 64)
	if got := c.CacheLookup([]byte("/a"), buf); got != abi.CacheInfoSize+2 {
		t.Fatalf("CacheLookup = %d", got)
	}
	// (The spec's worked example prints ttl_ms 58444 for this case; 60000-1500 is 58500.)
	if info := abi.ReadCacheInfo(buf); info != (abi.CacheInfo{AgeMs: 1500, TTLMs: 58_500}) || string(buf[16:18]) != "m1" {
		t.Fatalf("CacheLookup wrote %+v %q", info, buf[16:18])
	}
	f.now = f.now.Add(60 * time.Second)
	c.CacheLookup([]byte("/a"), buf)
	if info := abi.ReadCacheInfo(buf); info.TTLMs != -1500 || info.AgeMs != 61_500 {
		t.Fatalf("stale entry: %+v", info)
	}
	short := make([]byte, abi.CacheInfoSize-1)
	if got := c.CacheLookup([]byte("/a"), short); got != 18 || !bytes.Equal(short, make([]byte, len(short))) {
		t.Fatalf("CacheLookup with %d bytes = %d, wrote %x", len(short), got, short)
	}
	if got := c.CacheLookup([]byte("/none"), buf); got != abi.ErrNotFound {
		t.Fatalf("CacheLookup(missing) = %d", got)
	}

	g := newFixture(t, abi.PhaseRequest)
	g.env.Cache = f.env.Cache
	if got := g.call.CacheServe([]byte("/a")); got != 201 {
		t.Fatalf("CacheServe = %d", got)
	}
	if g.ex.Resp.Status != 201 || string(g.ex.Resp.Body) != "origin body" || !slices.Equal(g.ex.Resp.Header.Fields, []HeaderField{{"Server", "origin"}}) {
		t.Fatalf("served response %+v", g.ex.Resp)
	}

	for _, tc := range []struct {
		kind  abi.PurgeKind
		match string
		want  int32
	}{
		{abi.PurgeTag, "nope", 0}, {abi.PurgeKey, "/nope", 0}, {2, "/a", abi.ErrInvalid}, {-1, "t", abi.ErrInvalid},
		{abi.PurgeTag, "t", 1}, {abi.PurgeKey, "/a", 0},
	} {
		if got := c.CachePurge(tc.kind, []byte(tc.match)); got != tc.want {
			t.Errorf("CachePurge(%d, %q) = %d, want %d", tc.kind, tc.match, got, tc.want)
		}
	}
	c.CacheStore([]byte("/b"), nil, 1000, 0, nil)
	if got := c.CachePurge(abi.PurgeKey, []byte("/b")); got != 1 {
		t.Errorf("CachePurge(key /b) = %d", got)
	}
}

// TestCallCachePurgeDuringFetch: cache_purge keeps out of the cache what
// another exchange's fetch, in progress as it landed, brings back (a GET
// at the origin while a POST invalidated its URL), and lets the exchange
// that purged store its own. It left the purge position alone, and the
// other exchange stored its answer from before the purge.
func TestCallCachePurgeDuringFetch(t *testing.T) {
	own, other := newFixture(t, abi.PhaseResponse), newFixture(t, abi.PhaseResponse)
	other.env.Cache = own.env.Cache
	cache := own.env.Cache.(*MemCache)
	own.ex.Fetched, other.ex.Fetched = cache.Purges(), cache.Purges()
	if got := own.call.CachePurge(abi.PurgeTag, []byte("t")); got != 0 {
		t.Fatalf("CachePurge(tag) = %d", got)
	}
	if got := own.call.CachePurge(abi.PurgeKey, []byte("/k")); got != 0 {
		t.Fatalf("CachePurge(key) = %d", got)
	}
	if got := other.call.CacheStore([]byte("/k"), nil, 60_000, 0, nil); got != 0 {
		t.Fatalf("other CacheStore = %d", got)
	}
	if _, ok := cache.Get([]byte("/k")); ok {
		t.Fatal("a fetch in progress as cache_purge named its key was stored")
	}
	if got := own.call.CacheStore([]byte("/k"), nil, 60_000, 0, []byte("t\x00")); got != 0 {
		t.Fatalf("own CacheStore = %d", got)
	}
	if _, ok := cache.Get([]byte("/k")); !ok {
		t.Fatal("the exchange that purged could not store its own fetch")
	}
}

func TestCallStoresUnavailable(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	f.env.Cache, f.env.Limiter, f.env.Keys, f.env.Metrics = nil, nil, nil, nil
	c := f.call
	var rr [abi.RateResultSize]byte
	for name, got := range map[string]int32{
		"cache_lookup":     c.CacheLookup([]byte("k"), nil),
		"cache_store":      c.CacheStore([]byte("k"), nil, 1, 0, nil),
		"cache_serve":      c.CacheServe([]byte("k")),
		"cache_purge":      c.CachePurge(abi.PurgeKey, []byte("k")),
		"cache_revalidate": c.CacheRevalidate([]byte("k")),
		"ratelimit_take":   c.RatelimitTake([]byte("k"), 1, 1000, 1, 1, rr[:]),
		"verify":           c.Verify(0, nil, nil),
		"metric_record":    c.MetricRecord(0, 1),
	} {
		if got != abi.ErrUnavailable {
			t.Errorf("%s without its store = %s, want ErrUnavailable", name, errnoOr(got))
		}
	}
	g := newFixture(t, abi.PhaseConfigure)
	g.env.Keys, g.env.Metrics = nil, nil
	if got := g.call.KeyRegister(abi.AlgHS256, abi.KeyRaw, []byte("s")); got != abi.ErrUnavailable {
		t.Errorf("key_register without a ring = %d", got)
	}
	if got := g.call.MetricDefine(abi.MetricCounter, []byte("x")); got != abi.ErrUnavailable {
		t.Errorf("metric_define without metrics = %d", got)
	}
}

func TestCallRatelimitTakeValidation(t *testing.T) {
	for _, tc := range []struct {
		name         string
		key          []byte
		limit, burst int32
		cost         int32
		period       int64
		result       int
		want         int32
	}{
		{"ok", []byte("k"), 10, 2, 1, 1000, 24, 1},
		{"larger result buffer", []byte("k"), 10, 2, 1, 1000, 64, 1},
		{"cost 0", []byte("k"), 10, 2, 0, 1000, 24, 1},
		{"cost above burst", []byte("k"), 10, 2, 3, 1000, 24, 0},
		{"empty key", nil, 10, 2, 1, 1000, 24, 1},
		{"key at the limit", make([]byte, abi.MaxRateKeyLen), 10, 2, 1, 1000, 24, 1},
		{"period at the limit", []byte("k"), 1, 1, 1, maxCacheMs, 24, 1},
		{"limit 0", []byte("k"), 0, 1, 1, 1000, 24, abi.ErrInvalid},
		{"negative limit", []byte("k"), -1, 1, 1, 1000, 24, abi.ErrInvalid},
		{"period 0", []byte("k"), 1, 1, 1, 0, 24, abi.ErrInvalid},
		{"negative period", []byte("k"), 1, 1, 1, -1000, 24, abi.ErrInvalid},
		{"period past 400 days", []byte("k"), 1, 1, 1, maxCacheMs + 1, 24, abi.ErrInvalid},
		{"period overflowing a Duration", []byte("k"), 1, 1, 1, math.MaxInt64 / 1000, 24, abi.ErrInvalid},
		{"burst 0", []byte("k"), 1, 0, 1, 1000, 24, abi.ErrInvalid},
		{"negative burst", []byte("k"), 1, -1, 1, 1000, 24, abi.ErrInvalid},
		{"negative cost", []byte("k"), 1, 1, -1, 1000, 24, abi.ErrInvalid},
		{"result of 23 bytes", []byte("k"), 1, 1, 1, 1000, 23, abi.ErrInvalid},
		{"no result", []byte("k"), 1, 1, 1, 1000, 0, abi.ErrInvalid},
		{"key past the limit", make([]byte, abi.MaxRateKeyLen+1), 1, 1, 1, 1000, 24, abi.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, abi.PhaseRequest)
			result := bytes.Repeat([]byte{0xee}, tc.result)
			got := f.call.RatelimitTake(tc.key, tc.limit, tc.period, tc.burst, tc.cost, result)
			if got != tc.want {
				t.Fatalf("RatelimitTake = %s, want %s", errnoOr(got), errnoOr(tc.want))
			}
			if got < 0 {
				if !bytes.Equal(result, bytes.Repeat([]byte{0xee}, tc.result)) {
					t.Fatal("a refused call wrote the result")
				}
				if n := f.env.Limiter.(*GCRA).Len(); n != 0 {
					t.Fatalf("a refused call reached the limiter: %d keys", n)
				}
				return
			}
			// The record is what the limiter decided, little-endian.
			_, want := NewGCRAWithClock(f.clk).Take(tc.key, tc.limit, time.Duration(tc.period)*time.Millisecond, tc.burst, tc.cost)
			if r := abi.ReadRateResult(result); r != want {
				t.Fatalf("result %+v, want %+v", r, want)
			}
			if tc.result > abi.RateResultSize && !bytes.Equal(result[abi.RateResultSize:], bytes.Repeat([]byte{0xee}, tc.result-abi.RateResultSize)) {
				t.Fatal("RatelimitTake wrote past the record")
			}
		})
	}
}

// NewGCRAWithClock is a fresh limiter on clk, to compute expected records.
func NewGCRAWithClock(clk *testClock) *GCRA {
	g := NewGCRA(1024)
	g.now = clk.now
	return g
}

func TestCallRatelimitSequence(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	var out [abi.RateResultSize]byte
	take := func() (int32, abi.RateResult) {
		r := f.call.RatelimitTake([]byte("rl"), 10, 1000, 2, 1, out[:])
		return r, abi.ReadRateResult(out[:])
	}
	for i, want := range []struct {
		r   int32
		res abi.RateResult
	}{
		{1, abi.RateResult{Remaining: 1, ResetMs: 100}},
		{1, abi.RateResult{Remaining: 0, ResetMs: 200}},
		{0, abi.RateResult{Remaining: 0, ResetMs: 200, RetryAfterMs: 100}},
	} {
		if r, res := take(); r != want.r || res != want.res {
			t.Errorf("take %d = %d %+v, want %d %+v", i, r, res, want.r, want.res)
		}
	}
	f.clk.advanceMs(100)
	if r, res := take(); r != 1 || res.Remaining != 0 {
		t.Errorf("take after 100ms = %d %+v", r, res)
	}
}

func TestCallVerify(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	msg := []byte("header.payload")
	for _, tc := range []struct {
		name string
		h    int32
		sig  []byte
		want int32
	}{
		{"valid", 0, fixtureMAC(msg), 1},
		{"invalid", 0, flip(fixtureMAC(msg), 2), 0},
		{"empty", 0, nil, 0},
		{"unknown handle", 1, fixtureMAC(msg), abi.ErrNotFound},
		{"negative handle", -1, fixtureMAC(msg), abi.ErrNotFound},
	} {
		if got := f.call.Verify(tc.h, msg, tc.sig); got != tc.want {
			t.Errorf("%s: Verify = %d, want %d", tc.name, got, tc.want)
		}
	}
	// key_register through Call: the handle comes from the shared ring.
	g := newFixture(t, abi.PhaseConfigure)
	g.env.Keys = f.env.Keys
	if h := g.call.KeyRegister(abi.AlgHS256, abi.KeyRaw, fixtureSecret); h != 0 {
		t.Errorf("re-registering the fixture key = %d, want 0", h)
	}
	if h := g.call.KeyRegister(abi.AlgHS256, 9, fixtureSecret); h != abi.ErrInvalid {
		t.Errorf("unknown format = %d", h)
	}
}

// TestCallLogBudget: a plugin version's log lines are bounded in bytes a
// second (a loop of 8 KB lines wrote 24 MB in one request); what is over
// is dropped without failing the call, and the next line written says how
// many were.
func TestCallLogBudget(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	line := []byte(strings.Repeat("L", 8000))
	const calls = 2 * logBurst / 8000
	for range calls {
		if got := f.call.Log(int32(slog.LevelWarn), line, nil); got != 0 {
			t.Fatalf("Log over the budget: %d, want 0 (dropped, not failed)", got)
		}
	}
	written := len(f.logs.records())
	if written >= calls || written < logBurst/8000 {
		t.Fatalf("%d of %d lines of 8000 bytes written, want the burst's %d or so", written, calls, logBurst/8000)
	}
	testutil.Eventually(t, time.Minute, "a line written once the budget refills", func() bool {
		f.call.Log(int32(slog.LevelWarn), []byte("after"), nil)
		return len(f.logs.records()) > written
	})
	// The polls dropped before count too.
	rec := f.logs.records()[written]
	var dropped int
	for _, a := range attrsOf(rec) {
		if a[0] == "dropped" {
			dropped, _ = strconv.Atoi(a[1])
		}
	}
	if !strings.Contains(rec.Message, "plugin log lines dropped") || dropped < calls-written {
		t.Fatalf("after the drop: %q %v, want a count of at least the %d dropped", rec.Message, attrsOf(rec), calls-written)
	}
}

func TestCallLog(t *testing.T) {
	for _, tc := range []struct {
		name      string
		phase     abi.Phase
		level     abi.Level
		handlerLv slog.Level
		msg       string
		attrs     string
		want      int32
		logged    bool
		wantAttrs [][2]string
	}{
		{"no attributes", abi.PhaseConfigure, abi.LevelInfo, slog.LevelDebug, "hello", "", 0, true, nil},
		{"one pair", abi.PhaseConfigure, abi.LevelWarn, slog.LevelDebug, "m", "user\x00alice\x00", 0, true, [][2]string{{"user", "alice"}}},
		{"two pairs", abi.PhaseConfigure, abi.LevelError, slog.LevelDebug, "m", "a\x001\x00b\x002\x00", 0, true, [][2]string{{"a", "1"}, {"b", "2"}}},
		{"unterminated last value", abi.PhaseConfigure, abi.LevelInfo, slog.LevelDebug, "m", "k\x00v", 0, true, [][2]string{{"k", "v"}}},
		{"empty key and value", abi.PhaseConfigure, abi.LevelInfo, slog.LevelDebug, "m", "\x00\x00", 0, true, [][2]string{{"", ""}}},
		{"request id added", abi.PhaseRequest, abi.LevelInfo, slog.LevelDebug, "m", "k\x00v\x00", 0, true, [][2]string{{"k", "v"}, {"request_id", "req-1"}}},
		{"request id in response", abi.PhaseResponse, abi.LevelDebug, slog.LevelDebug, "m", "", 0, true, [][2]string{{"request_id", "req-1"}}},
		{"odd attributes", abi.PhaseRequest, abi.LevelInfo, slog.LevelDebug, "m", "k\x00", abi.ErrInvalid, false, nil},
		{"three items", abi.PhaseRequest, abi.LevelInfo, slog.LevelDebug, "m", "a\x00b\x00c", abi.ErrInvalid, false, nil},
		{"below the handler's level", abi.PhaseRequest, abi.LevelDebug, slog.LevelInfo, "m", "k\x00v\x00", 0, false, nil},
		{"odd attributes below the handler's level", abi.PhaseRequest, abi.LevelDebug, slog.LevelInfo, "m", "k\x00", abi.ErrInvalid, false, nil},
		{"custom level", abi.PhaseConfigure, 2, slog.LevelDebug, "m", "", 0, true, nil},
		{"message at the limit", abi.PhaseConfigure, abi.LevelInfo, slog.LevelDebug, strings.Repeat("m", abi.MaxLogLen-4), "k\x00v\x00", 0, true, [][2]string{{"k", "v"}}},
		{"message past the limit", abi.PhaseConfigure, abi.LevelInfo, slog.LevelDebug, strings.Repeat("m", abi.MaxLogLen-3), "k\x00v\x00", abi.ErrTooLarge, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.phase)
			f.logs.level = tc.handlerLv
			attrs := []byte(tc.attrs)
			if got := f.call.Log(tc.level, []byte(tc.msg), attrs); got != tc.want {
				t.Fatalf("Log = %s, want %s", errnoOr(got), errnoOr(tc.want))
			}
			for i := range attrs { // the record holds copies
				attrs[i] = '!'
			}
			recs := f.logs.records()
			if !tc.logged {
				if len(recs) != 0 {
					t.Fatalf("%d records logged", len(recs))
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			if r.Message != tc.msg || r.Level != slog.Level(tc.level) {
				t.Fatalf("record %q at %v", r.Message[:min(len(r.Message), 20)], r.Level)
			}
			if got := attrsOf(r); !slices.Equal(got, tc.wantAttrs) {
				t.Fatalf("attrs %q, want %q", got, tc.wantAttrs)
			}
		})
	}
	// A nil Env.Log discards, and still validates.
	var c Call
	c.Reset(&Env{}, abi.PhaseConfigure, nil)
	if got := c.Log(abi.LevelError, []byte("m"), []byte("k\x00v\x00")); got != 0 {
		t.Fatalf("Log to a nil logger = %d", got)
	}
	if got := c.Log(abi.LevelError, []byte("m"), []byte("k\x00")); got != abi.ErrInvalid {
		t.Fatalf("odd attributes to a nil logger = %d", got)
	}
}

func TestRun(t *testing.T) {
	req := Request{Method: "GET", Path: "/"}
	origin := func(r *Request) Response {
		return Response{Status: 200, Header: Header{Fields: []HeaderField{{"Server", "origin"}}}, Body: []byte("from origin " + r.Path)}
	}
	for _, tc := range []struct {
		name     string
		act      abi.Action
		answered bool
		status   int
		headers  []HeaderField
	}{
		{"continue", abi.ActionContinue, false, 200, []HeaderField{{"Server", "origin"}, {"X-Plugin", "1"}}},
		{"answer", abi.ActionAnswer, true, 403, []HeaderField{{"X-Plugin", "1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sawResponse bool
			r := Run(req, func(ex Exchange) (abi.Action, error) {
				ex.SetField(abi.FieldPath, []byte("/rewritten"))
				ex.HeaderAdd(abi.MsgResponse, []byte("X-Plugin"), []byte("1"))
				ex.SetStatus(403)
				return tc.act, nil
			}, origin, func(ex Exchange) error {
				sawResponse = true
				return nil
			})
			if r.Answered != tc.answered || r.Resp.Status != tc.status || !slices.Equal(r.Resp.Header.Fields, tc.headers) || !sawResponse {
				t.Fatalf("Run = answered %v status %d headers %v response phase %v", r.Answered, r.Resp.Status, r.Resp.Header.Fields, sawResponse)
			}
			if !tc.answered && string(r.Resp.Body) != "from origin /rewritten" {
				t.Fatalf("origin saw %q", r.Resp.Body)
			}
		})
	}
}
