package tck_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/tck"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// config generates fresh keys of every family and signs a message with each.
func config(t *testing.T) []byte {
	t.Helper()
	msg := []byte("the quick brown fox")
	b64 := base64.StdEncoding.EncodeToString
	url := base64.RawURLEncoding.EncodeToString
	var keys []tck.Key
	add := func(alg string, format abi.KeyFormat, key, sig []byte) {
		keys = append(keys, tck.Key{Alg: alg, Format: format, Key: b64(key), Msg: b64(msg), Sig: b64(sig)})
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Secrets as long as the hash, the least key_register takes.
	hs256, hs512 := bytes.Repeat([]byte("hs256-secret"), 3)[:32], bytes.Repeat([]byte("hs512-secret"), 6)[:64]
	mac := hmac.New(sha256.New, hs256)
	mac.Write(msg)
	add("HS256", abi.KeyRaw, hs256, mac.Sum(nil))
	mac = hmac.New(sha512.New, hs512)
	mac.Write(msg)
	jwk, _ := json.Marshal(map[string]string{"kty": "oct", "k": url(hs512)})
	add("HS512", abi.KeyJWK, jwk, mac.Sum(nil))

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	h256 := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, h256[:])
	must(err)
	der, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	must(err)
	add("RS256", abi.KeyPKIX, der, sig)
	sig, err = rsa.SignPSS(rand.Reader, rk, crypto.SHA256, h256[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	must(err)
	jwk, _ = json.Marshal(map[string]string{"kty": "RSA", "n": url(rk.N.Bytes()), "e": url(big.NewInt(int64(rk.E)).Bytes())})
	add("PS256", abi.KeyJWK, jwk, sig)

	ecSig := func(k *ecdsa.PrivateKey, digest []byte, size int) []byte {
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		must(err)
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	point, err := ek.PublicKey.Bytes()
	must(err)
	add("ES256", abi.KeyRaw, point, ecSig(ek, h256[:], 32))
	jwk, _ = json.Marshal(map[string]string{"kty": "EC", "crv": "P-256",
		"x": url(point[1:33]), "y": url(point[33:])})
	add("ES256", abi.KeyJWK, jwk, ecSig(ek, h256[:], 32))
	ek384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	der, err = x509.MarshalPKIXPublicKey(&ek384.PublicKey)
	must(err)
	h384 := sha512.Sum384(msg)
	add("ES384", abi.KeyPKIX, der, ecSig(ek384, h384[:], 48))

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	must(err)
	add("EdDSA", abi.KeyRaw, pub, ed25519.Sign(priv, msg))
	jwk, _ = json.Marshal(map[string]string{"kty": "OKP", "crv": "Ed25519", "x": url(pub)})
	add("EdDSA", abi.KeyJWK, jwk, ed25519.Sign(priv, msg))

	cfg, err := json.Marshal(map[string]any{"keys": keys})
	must(err)
	return cfg
}

func request() host.Request {
	r := host.Request{Method: tck.Method, Scheme: tck.Scheme, Host: tck.Host, Path: tck.Path, RawQuery: tck.RawQuery,
		Proto: tck.Proto, ClientAddr: tck.ClientAddr, ID: tck.RequestID, Body: []byte(tck.Body)}
	for _, h := range tck.Headers {
		r.Header.Add(h[0], h[1])
	}
	return r
}

// origin answers with the fixture and remembers what it was sent.
type origin struct{ got host.Request }

func (o *origin) serve(r *host.Request) host.Response {
	o.got = *r
	resp := host.Response{Status: tck.OriginStatus, Body: []byte(tck.OriginBody)}
	for _, h := range tck.OriginHeaders {
		resp.Header.Add(h[0], h[1])
	}
	return resp
}

// logs records log calls.
type logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

func (l *logs) has(msg, key, value string) bool {
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

// check holds the report and the host's view of what the kit did to the
// same standard, whichever way the kit ran.
func check(t *testing.T, res *host.Result, o *origin, cache host.Cache, reg prometheus.Gatherer, lg *logs, labels map[string]string) {
	t.Helper()
	if res.RequestErr != nil || res.ResponseErr != nil {
		t.Fatalf("phases failed: %v / %v", res.RequestErr, res.ResponseErr)
	}
	passed, failures, funcs := tck.Summary(res.Resp.Body)
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
	if o.got.Path != tck.RewrittenPath || o.got.Method != tck.RewrittenMethod || string(o.got.Body) != tck.RequestBody {
		t.Errorf("origin got %s %s %q", o.got.Method, o.got.Path, o.got.Body)
	}
	if v, _ := o.got.Header.Get("X-Added"); v != "1" {
		t.Errorf("origin did not get the added header: %q", v)
	}
	if _, ok := o.got.Header.Get("X-Remove-Me"); ok {
		t.Error("origin got the removed header")
	}
	// What the client receives.
	if res.Resp.Status != tck.FinalStatus {
		t.Errorf("status %d, want %d", res.Resp.Status, tck.FinalStatus)
	}
	for _, h := range []string{"X-From-Request", "X-Response-Phase"} {
		if v, _ := res.Resp.Header.Get(h); v != "yes" {
			t.Errorf("response header %s = %q", h, v)
		}
	}
	// Request values, cache, metrics, logs.
	fwd := false
	for i := 0; i < res.Vals.Len(); i++ {
		k, v, flags := res.Vals.At(i)
		fwd = fwd || string(k) == tck.ForwardKey && string(v) == tck.ForwardValue && flags&abi.ValueForward != 0
	}
	if !fwd {
		t.Error("forwarded value missing from the request values")
	}
	e, ok := cache.Get([]byte(tck.CacheKey))
	if !ok || e.Response.Status != tck.OriginStatus || string(e.Response.Body) != tck.OriginBody || strings.Join(e.Tags, ",") != "t1,t2" {
		t.Errorf("cache entry: %v %+v", ok, e)
	}
	// The kit's revalidation was dropped (its request continued) and gave
	// its key back.
	if rv, ok := cache.(host.Revalidator); !ok {
		t.Error("the kit's cache admits no revalidations")
	} else if release, ok := rv.BeginRevalidation([]byte(tck.RevalidateKey)); !ok {
		t.Error("the dropped revalidation still holds its key")
	} else {
		release()
	}
	if n := wasmtest.Metric(t, reg, "wedge_plugin_tck_checks", labels); n != float64(passed) {
		t.Errorf("tck_checks counter %v, want %d", n, passed)
	}
	if n := wasmtest.Metric(t, reg, "wedge_plugin_tck_gauge", labels); n != tck.GaugeValue {
		t.Errorf("tck_gauge %v", n)
	}
	if n := wasmtest.Metric(t, reg, "wedge_plugin_tck_hist", labels); n != 1 {
		t.Errorf("tck_hist count %v", n)
	}
	if !lg.has(tck.LogMessage, "k", "v") || !lg.has(tck.LogMessage, "request_id", tck.RequestID) {
		t.Error("the kit's log call did not arrive with its attributes and request id")
	}
}

// TestConformanceWasm runs the kit as a Wasm plugin in the runtime.
func TestConformanceWasm(t *testing.T) {
	reg := prometheus.NewRegistry()
	lg := &logs{}
	cache := host.NewMemCache(8 << 20)
	rt := wasmtest.NewRuntime(t, wasm.NewConfig().WithPoolSize(1).WithRegisterer(reg).
		WithLogger(slog.New(lg)).WithStores(cache, host.NewGCRA(1024)).WithMaxBodySize(tck.MaxBodySize))
	p := wasmtest.LoadSpec(t, rt, wasm.Spec{Name: "tck", Version: "1", Binary: wasmtest.Build(t, "guest"), Config: config(t)})
	o := &origin{}
	p.Origin = o.serve
	check(t, p.Do(request()), o, cache, reg, lg, map[string]string{"plugin": "tck", "version": "1"})
}

// TestConformanceNative runs the same kit natively through sdktest: the SDK's
// native build must behave exactly like the Wasm one.
func TestConformanceNative(t *testing.T) {
	lg := &logs{}
	h := sdktest.New(t, &tck.Plugin{}, config(t))
	h.Env.Log = slog.New(lg)
	h.Env.MaxBodySize = tck.MaxBodySize
	o := &origin{}
	h.Origin = o.serve
	check(t, h.Do(request()), o, h.Env.Cache, h.Registry, lg, nil)
}
