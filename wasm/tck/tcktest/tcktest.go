// Package tcktest is the host's side of the conformance kit (package tck):
// the kit's configuration (fresh keys of every family, with a message each
// signs), the fixture request and origin, and [Check], which holds what a
// host did with the kit to one standard, whichever way it ran: through the
// harness (wasm/wasmtest, sdk/sdktest: wasm/tck's tests) or in a live edge
// node over a socket (edge/tck_test.go), as http-wasm's TCK runs against a
// server.
package tcktest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/internal/jwstest"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/tck"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// Config is the kit's configuration: keys of every family, each with a
// message it signed, and what the host assigns the request itself where
// it is not the fixture's (the zero tck.Assigned for the harness).
func Config(t testing.TB, a tck.Assigned) []byte {
	t.Helper()
	keys, err := kitKeys()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(map[string]any{"keys": keys, "assigned": a})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// kitKeys are fresh keys of every family, made once per process: making
// them (RSA's above all) was a good part of a conformance run under -race,
// and a test process runs the kit several times (the harness, a live node,
// each guest).
var kitKeys = sync.OnceValues(func() ([]tck.Key, error) {
	msg := []byte("the quick brown fox")
	b64 := base64.StdEncoding.EncodeToString
	var keys []tck.Key
	// add signs msg with priv under alg and lists the key in format.
	add := func(alg string, format abi.KeyFormat, key []byte, priv any) error {
		sig, err := jwstest.Sign(alg, priv, msg)
		keys = append(keys, tck.Key{Alg: alg, Format: format, Key: b64(key), Msg: b64(msg), Sig: b64(sig)})
		return err
	}
	jwk := func(key any) []byte {
		b, _ := json.Marshal(jwstest.JWK(key, "", "")) // a map of strings
		return b
	}
	// Secrets as long as the hash, the least key_register takes.
	hs256, hs512 := bytes.Repeat([]byte("hs256-secret"), 3)[:32], bytes.Repeat([]byte("hs512-secret"), 6)[:64]
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		return nil, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	point, err := ek.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	ek384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ek384.PublicKey)
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	err = errors.Join(
		add("HS256", abi.KeyRaw, hs256, hs256),
		add("HS512", abi.KeyJWK, jwk(hs512), hs512),
		add("RS256", abi.KeyPKIX, rsaDER, rk),
		add("PS256", abi.KeyJWK, jwk(rk), rk),
		add("ES256", abi.KeyRaw, point, ek),
		add("ES256", abi.KeyJWK, jwk(ek), ek),
		add("ES384", abi.KeyPKIX, ecDER, ek384),
		add("EdDSA", abi.KeyRaw, pub, priv),
		add("EdDSA", abi.KeyJWK, jwk(priv), priv),
	)
	return keys, err
})

// Request is the fixture request as the harness hands it to a host.
func Request() host.Request {
	r := host.Request{Method: tck.Method, Scheme: tck.Scheme, Host: tck.Host, Path: tck.Path, RawQuery: tck.RawQuery,
		Proto: tck.Proto, ClientAddr: tck.ClientAddr, ID: tck.RequestID, Body: []byte(tck.Body)}
	for _, h := range tck.Headers {
		r.Header.Add(h[0], h[1])
	}
	return r
}

// RawRequest is the fixture request as a client sends it to a live host:
// HTTP/1.1 bytes, its fields in the fixture's order, framed by
// Content-Length (which a host takes for framing, not for plugins).
func RawRequest() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s?%s %s\r\nHost: %s\r\n", tck.Method, tck.Path, tck.RawQuery, tck.Proto, tck.Host)
	for _, h := range tck.Headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(tck.Body), tck.Body)
	return b.Bytes()
}

// OriginResponse is the origin's answer of the fixture.
func OriginResponse() host.Response {
	resp := host.Response{Status: tck.OriginStatus, Body: []byte(tck.OriginBody)}
	for _, h := range tck.OriginHeaders {
		resp.Header.Add(h[0], h[1])
	}
	return resp
}

// Logs is a slog.Handler that keeps every record, for [Check].
type Logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

// Enabled implements slog.Handler: every level.
func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (l *Logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler; the attributes are not kept.
func (l *Logs) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup implements slog.Handler.
func (l *Logs) WithGroup(string) slog.Handler { return l }

// Has reports whether a record with message msg has the attribute key set
// to value.
func (l *Logs) Has(msg, key, value string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		found := false
		r.Attrs(func(a slog.Attr) bool {
			found = found || a.Key == key && a.Value.String() == value
			return true
		})
		if r.Message == msg && found {
			return true
		}
	}
	return false
}

// Observed is what a host did with one run of the kit, as [Check] holds it.
type Observed struct {
	// Resp is the response the client got.
	Resp *host.Response
	// Failed is the failures the host reported of the kit's phases.
	Failed error
	// Origin is the request the origin got, and Forwarded the request
	// values that went with it (those set with abi.ValueForward).
	Origin    *host.Request
	Forwarded map[string]string
	// RequestID is the id the host gave the request.
	RequestID string
	// Cache is the host's response cache.
	Cache host.Cache
	// Metrics gathers the plugin's metrics, which carry Labels.
	Metrics prometheus.Gatherer
	Labels  map[string]string
	// Logs is the host's log.
	Logs *Logs
}

// Check holds the kit's report and the host's view of what the kit did to
// one standard, whichever way the kit ran, and returns how many of the
// kit's checks passed.
func Check(t testing.TB, o Observed) (passed int) {
	t.Helper()
	if o.Failed != nil {
		t.Fatalf("phases failed: %v", o.Failed)
	}
	passed, failures, funcs := tck.Summary(o.Resp.Body)
	for _, f := range failures {
		t.Error(f)
	}
	for _, f := range abi.Funcs {
		if !funcs[f.Name] {
			t.Errorf("the kit never checked %s", f.Name)
		}
	}
	if passed < 200 {
		t.Errorf("only %d checks passed; the kit has more", passed)
	}
	t.Logf("%d checks passed", passed)

	// What the origin received.
	if o.Origin.Path != tck.RewrittenPath || o.Origin.Method != tck.RewrittenMethod || string(o.Origin.Body) != tck.RequestBody {
		t.Errorf("origin got %s %s %q", o.Origin.Method, o.Origin.Path, o.Origin.Body)
	}
	if v, _ := o.Origin.Header.Get("X-Added"); v != "1" {
		t.Errorf("origin did not get the added header: %q", v)
	}
	if _, ok := o.Origin.Header.Get("X-Remove-Me"); ok {
		t.Error("origin got the removed header")
	}
	// What the client receives.
	if o.Resp.Status != tck.FinalStatus {
		t.Errorf("status %d, want %d", o.Resp.Status, tck.FinalStatus)
	}
	for _, h := range []string{"X-From-Request", "X-Response-Phase"} {
		if v, _ := o.Resp.Header.Get(h); v != "yes" {
			t.Errorf("response header %s = %q", h, v)
		}
	}
	// Request values, cache, metrics, logs.
	if o.Forwarded[tck.ForwardKey] != tck.ForwardValue {
		t.Error("forwarded value missing from the request values")
	}
	e, ok := o.Cache.Get([]byte(tck.CacheKey))
	if !ok || e.Response.Status != tck.OriginStatus || string(e.Response.Body) != tck.OriginBody || strings.Join(e.Tags, ",") != "t1,t2" {
		t.Errorf("cache entry: %v %+v", ok, e)
	}
	// The kit's revalidation was dropped (its request continued) and gave
	// its key back.
	if rv, ok := o.Cache.(host.Revalidator); !ok {
		t.Error("the kit's cache admits no revalidations")
	} else if release, ok := rv.BeginRevalidation([]byte(tck.RevalidateKey)); !ok {
		t.Error("the dropped revalidation still holds its key")
	} else {
		release()
	}
	if n := wasmtest.Metric(t, o.Metrics, "wedge_plugin_tck_checks", o.Labels); n != float64(passed) {
		t.Errorf("tck_checks counter %v, want %d", n, passed)
	}
	if n := wasmtest.Metric(t, o.Metrics, "wedge_plugin_tck_gauge", o.Labels); n != tck.GaugeValue {
		t.Errorf("tck_gauge %v", n)
	}
	if n := wasmtest.Metric(t, o.Metrics, "wedge_plugin_tck_hist", o.Labels); n != 1 {
		t.Errorf("tck_hist count %v", n)
	}
	if o.RequestID == "" || !o.Logs.Has(tck.LogMessage, "k", "v") || !o.Logs.Has(tck.LogMessage, "request_id", o.RequestID) {
		t.Errorf("the kit's log call did not arrive with its attributes and request id %q", o.RequestID)
	}
	return passed
}

// Harness is what a harness run (host.Run, through wasmtest or sdktest)
// left: res, the request origin got, the stores, metrics and log the run
// used.
func Harness(res *host.Result, origin *host.Request, cache host.Cache, reg prometheus.Gatherer, lg *Logs, labels map[string]string) Observed {
	var failed error
	if res.RequestErr != nil || res.ResponseErr != nil {
		failed = fmt.Errorf("%w / %w", res.RequestErr, res.ResponseErr)
	}
	return Observed{Resp: &res.Resp, Failed: failed, Origin: origin, Forwarded: Forwarded(&res.Vals),
		RequestID: tck.RequestID, Cache: cache, Metrics: reg, Labels: labels, Logs: lg}
}

// RunWasm runs the kit as a Wasm plugin in a runtime of its own through
// wasmtest, checks it and returns how many of its checks passed: the
// count a live host's run must reach too.
func RunWasm(t testing.TB) (passed int) {
	t.Helper()
	return RunWasmGuest(t, GuestDir(t))
}

// RunWasmGuest is RunWasm with the kit's guest built from dir: GuestDir or
// RustGuestDir.
func RunWasmGuest(t testing.TB, dir string) (passed int) {
	t.Helper()
	reg := prometheus.NewRegistry()
	lg := &Logs{}
	cache := host.NewMemCache(8 << 20)
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1).WithRegisterer(reg).
		WithLogger(slog.New(lg)).WithStores(cache, host.NewGCRA(1024)).WithMaxBodySize(tck.MaxBodySize))
	p := wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "tck", Version: "1", Binary: wasmtest.Build(t, dir), Config: Config(t, tck.Assigned{})})
	var got host.Request
	p.Origin = func(r *host.Request) host.Response {
		got = *r
		return OriginResponse()
	}
	return Check(t, Harness(p.Do(Request()), &got, cache, reg, lg, map[string]string{"plugin": "tck", "version": "1"}))
}

// GuestDir is the folder of the kit's guest (wasm/tck/guest), for
// wasmtest.Build and the like from any package's tests.
func GuestDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("tcktest: no source location for the guest")
	}
	return filepath.Join(filepath.Dir(file), "..", "guest")
}

// RustGuestDir is the folder of the kit's guest in Rust
// (wasm/tck/rustguest), which performs the same checks.
func RustGuestDir(t testing.TB) string {
	return filepath.Join(GuestDir(t), "..", "rustguest")
}

// Forwarded lists the values of vals set with abi.ValueForward, which go
// to the origin.
func Forwarded(vals *host.Values) map[string]string {
	fwd := map[string]string{}
	for i := range vals.Len() {
		k, v, flags := vals.At(i)
		if flags&abi.ValueForward != 0 {
			fwd[string(k)] = string(v)
		}
	}
	return fwd
}
