package sdk_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// probe runs a test body in each phase, so the high-level API can be
// exercised against the real host logic.
type probe struct {
	configure  func() error
	onRequest  func(sdk.Request, sdk.Response) sdk.Action
	onResponse func(sdk.Request, sdk.Response) sdk.Action
}

func (p *probe) Configure([]byte) error {
	if p.configure != nil {
		return p.configure()
	}
	return nil
}

func (p *probe) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	if p.onRequest != nil {
		return p.onRequest(req, resp)
	}
	return sdk.Continue
}

func (p *probe) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	if p.onResponse != nil {
		return p.onResponse(req, resp)
	}
	return sdk.Continue
}

func TestRequestAndHeaders(t *testing.T) {
	long := strings.Repeat("v", 5000) // past the SDK's first buffer: exercises the retry
	var got []string
	p := &probe{onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
		h := req.Header()
		got = append(got, req.Method(), req.Path(), req.RawQuery(), h.Get("x-long"), strings.Join(h.Values("X-Multi"), ","),
			strings.Join(h.Names(), ","))
		if _, ok := h.Lookup("Missing"); ok {
			t.Error("Lookup found a missing header")
		}
		vals, n := h.AppendValues([]byte("pre:"), "x-multi")
		if string(vals) != "pre:a\x00b\x00" || n != 2 {
			t.Errorf("AppendValues = %q, %d", vals, n)
		}
		if vals, n := h.AppendValues(nil, "Missing"); len(vals) != 0 || n != 0 {
			t.Errorf("AppendValues of a missing header = %q, %d", vals, n)
		}
		if p := req.AppendPath([]byte("at ")); string(p) != "at /p" {
			t.Errorf("AppendPath = %q", p)
		}
		if err := h.Set("X-Bad", "a\r\nb"); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("header injection: %v, want ErrInvalid", err)
		}
		if err := req.SetPath("/new"); err != nil {
			t.Error(err)
		}
		body, n := req.Body(4)
		got = append(got, string(body), strings.Repeat("#", n))
		req.Forward("user", "alice")
		resp.Header().Add("X-Early", "1")
		return sdk.Continue
	}}
	h := sdktest.New(t, p, nil)
	var originPath string
	h.Origin = func(r *host.Request) host.Response { originPath = r.Path; return host.Response{Status: 200} }
	req := host.Request{Method: "GET", Path: "/p", RawQuery: "q=1", Body: []byte("hello")}
	req.Header.Add("X-Long", long)
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	res := h.Do(req)
	want := []string{"GET", "/p", "q=1", long, "a,b", "X-Long,X-Multi", "hell", "#####"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if originPath != "/new" {
		t.Errorf("origin saw %q", originPath)
	}
	if v, _ := res.Resp.Header.Get("X-Early"); v != "1" {
		t.Error("a request-phase response header did not reach the response")
	}
	if k, v, flags := res.Vals.At(0); string(k) != "user" || string(v) != "alice" || flags != abi.ValueForward {
		t.Errorf("forwarded value %q=%q flags %d", k, v, flags)
	}
}

func TestAnswersAndFailures(t *testing.T) {
	h := sdktest.New(t, &probe{onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
		switch req.Path() {
		case "/deny":
			return resp.AnswerText(403, "no")
		case "/bad-status":
			return resp.Answer(99, nil)
		}
		return sdk.Fail(errors.New("broken"))
	}}, nil)
	if res := h.Do(host.Request{Path: "/deny"}); !res.Answered || res.Resp.Status != 403 || string(res.Resp.Body) != "no\n" {
		t.Errorf("deny: %v %d %q", res.Answered, res.Resp.Status, res.Resp.Body)
	}
	if res := h.Do(host.Request{Path: "/bad-status"}); res.RequestErr == nil || !strings.Contains(res.RequestErr.Error(), "ErrInvalid") {
		t.Errorf("an invalid status should fail the plugin: %v", res.RequestErr)
	}
	if res := h.Do(host.Request{Path: "/x"}); res.RequestErr == nil || !strings.Contains(res.RequestErr.Error(), "broken") {
		t.Errorf("Fail: %v", res.RequestErr)
	}
}

func TestCache(t *testing.T) {
	key := []byte("k1")
	h := sdktest.New(t, &probe{
		onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
			if req.Path() == "/purge" {
				return resp.AnswerText(200, strings.Repeat("x", sdk.CachePurgeTag("tag-a")))
			}
			if info, meta, ok := sdk.CacheLookup(key); ok {
				if string(meta) != "meta" || info.TTLMs <= 0 {
					t.Errorf("lookup: %+v %q", info, meta)
				}
				if st, err := sdk.CacheServe(key); err != nil || st != 200 {
					t.Errorf("serve: %d %v", st, err)
				}
				return sdk.Answer
			}
			return sdk.Continue
		},
		onResponse: func(req sdk.Request, resp sdk.Response) sdk.Action {
			if req.Path() == "/purge" {
				return sdk.Continue
			}
			if err := sdk.CacheStore(key, []byte("meta"), time.Minute, 0, "tag-a"); err != nil {
				t.Error(err)
			}
			return sdk.Continue
		},
	}, nil)
	h.Origin = func(*host.Request) host.Response { return host.Response{Status: 200, Body: []byte("cached body")} }
	if first := h.Do(host.Request{Path: "/"}); first.Answered {
		t.Fatal("first request answered from an empty cache")
	}
	if second := h.Do(host.Request{Path: "/"}); !second.Answered || string(second.Resp.Body) != "cached body" {
		t.Fatalf("second request: answered %v body %q", second.Answered, second.Resp.Body)
	}
	if purged := h.Do(host.Request{Path: "/purge"}); string(purged.Resp.Body) != "x\n" {
		t.Fatalf("purge by tag removed %q entries, want one", purged.Resp.Body)
	}
	if third := h.Do(host.Request{Path: "/"}); third.Answered {
		t.Fatal("answered from the cache after the purge")
	}
}

// TestRevalidateAndRange: a request answered from the cache with a range
// of the stored body, which asks for a background revalidation; its
// response phase runs again on the copy, with the value set before the
// call.
func TestRevalidateAndRange(t *testing.T) {
	key := []byte("k")
	var phases []string
	h := sdktest.New(t, &probe{
		onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
			if _, _, ok := sdk.CacheLookup(key); !ok {
				return sdk.Continue
			}
			req.SetValue("phase", "background")
			if ok, err := sdk.CacheRevalidate(key); !ok || err != nil {
				t.Errorf("CacheRevalidate = %v, %v", ok, err)
			}
			if ok, err := sdk.CacheRevalidate(key); ok || err != nil {
				t.Errorf("a second CacheRevalidate = %v, %v, want skipped", ok, err)
			}
			req.SetValue("phase", "client")
			sdk.CacheServe(key)
			if st, err := resp.ApplyRange("bytes=-4"); st != 206 || err != nil {
				t.Errorf("ApplyRange = %d, %v", st, err)
			}
			return sdk.Answer
		},
		onResponse: func(req sdk.Request, resp sdk.Response) sdk.Action {
			v, _ := req.Value("phase")
			phases = append(phases, v)
			if v == "" {
				if err := sdk.CacheStore(key, nil, time.Minute, 0); err != nil {
					t.Error(err)
				}
			}
			return sdk.Continue
		},
	}, nil)
	h.Origin = func(*host.Request) host.Response { return host.Response{Status: 200, Body: []byte("cached body")} }
	h.Do(host.Request{Path: "/"})
	res := h.Do(host.Request{Path: "/"})
	if string(res.Resp.Body) != "body" || res.Background == nil || strings.Join(phases, ",") != ",client,background" {
		t.Fatalf("body %q, background %v, response phases %q", res.Resp.Body, res.Background != nil, phases)
	}
}

func TestRateLimit(t *testing.T) {
	h := sdktest.New(t, &probe{onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
		ok, r, err := sdk.Limit{Count: 2, Period: time.Minute}.Take([]byte("rl"), 1)
		if err != nil {
			return sdk.Fail(err)
		}
		if !ok {
			if r.RetryAfterMs <= 0 || r.Remaining != 0 {
				t.Errorf("denied with %+v", r)
			}
			return resp.AnswerText(429, "slow down")
		}
		return sdk.Continue
	}}, nil)
	for i, want := range []int{200, 200, 429} {
		if res := h.Do(host.Request{Path: "/"}); res.Resp.Status != want {
			t.Fatalf("request %d: %d, want %d (%v)", i+1, res.Resp.Status, want, res.RequestErr)
		}
	}
}

func TestKeysDigestsLogsMetrics(t *testing.T) {
	secret := []byte("s3cret, at least 32 bytes for HS256")
	var key sdk.Key
	var hits sdk.Metric
	h := sdktest.New(t, &probe{
		configure: func() error {
			var err error
			if key, err = sdk.RegisterKey(abi.AlgHS256, abi.KeyRaw, secret); err != nil {
				return err
			}
			hits, err = sdk.NewCounter("probe_hits_total")
			return err
		},
		onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
			msg := []byte("message")
			mac := hmac.New(sha256.New, secret)
			mac.Write(msg)
			if !key.Verify(msg, mac.Sum(nil)) || key.Verify(msg, []byte("bad")) {
				t.Error("Verify")
			}
			sum := sha256.Sum256(msg)
			if d := sdk.Digest(abi.DigestSHA256, []byte("prefix:"), msg); !bytes.Equal(d[7:], sum[:]) || string(d[:7]) != "prefix:" {
				t.Errorf("Digest appended %x", d)
			}
			if _, err := sdk.RegisterKey(abi.AlgHS256, abi.KeyRaw, secret); !errors.Is(err, sdk.ErrPhase) {
				t.Errorf("RegisterKey in a request: %v, want ErrPhase", err)
			}
			if now := sdk.Now(); time.Since(now).Abs() > time.Minute {
				t.Errorf("Now %v", now)
			}
			var r [16]byte
			sdk.Random(r[:])
			if r == [16]byte{} {
				t.Error("Random left zeros")
			}
			sdk.Info("probe", "k", "v")
			hits.Record(1)
			return sdk.Continue
		},
	}, nil)
	h.Do(host.Request{Path: "/"})
	h.Do(host.Request{Path: "/"})
	fams, err := h.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		if f.GetName() == "wedge_plugin_probe_hits_total" {
			found = f.GetMetric()[0].GetCounter().GetValue() == 2
		}
	}
	if !found {
		t.Error("the counter did not reach 2")
	}
}

func TestRegisterNeedsAHandler(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Register accepted a plugin without handlers")
		}
	}()
	sdk.Register(struct{}{})
}

// requestOnly is a plugin without Configure.
type requestOnly struct{}

func (requestOnly) OnRequest(sdk.Request, sdk.Response) sdk.Action { return sdk.Continue }

// TestConfigWithoutConfigure: a config given to a plugin that has no
// Configure([]byte) error (most often one of another signature, or on a
// pointer receiver of a plugin registered by value) fails the load: it
// was dropped in silence. An empty config, {} or null is no config.
func TestConfigWithoutConfigure(t *testing.T) {
	if _, err := sdktest.Configure(requestOnly{}, []byte(`{"greeting":"Hej"}`), nil); err == nil ||
		!strings.Contains(err.Error(), "given a config but has no Configure([]byte) error method") {
		t.Errorf("a config for a plugin without Configure: %v", err)
	}
	for _, cfg := range []string{"", " {} ", "null"} {
		if _, err := sdktest.Configure(requestOnly{}, []byte(cfg), nil); err != nil {
			t.Errorf("config %q: %v", cfg, err)
		}
	}
}

// TestErrorsSayWhat: a refused call names itself and what it takes (every
// refusal read "wedge: ErrInvalid"), still errors.Is its code; an Answer
// from the response phase says only the request phase answers; a panic
// fails the call with its message and stack, as a trap fails it in the
// runtime (it escaped Do); a log call with a value left over keeps it.
func TestErrorsSayWhat(t *testing.T) {
	var got []error
	var log bytes.Buffer
	h, err := sdktest.Configure(&probe{
		onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
			switch req.Path() {
			case "/panic":
				panic("boom")
			case "/log":
				sdk.Info("odd", "lonely")
				return sdk.Continue
			}
			got = append(got, req.SetPath("/a?b=1"), req.Header().Set("X Bad", "v"), resp.Header().Set("Content-Length", "3"),
				req.Forward("bad key", "v"), resp.SetStatus(0))
			return sdk.Continue
		},
		onResponse: func(req sdk.Request, resp sdk.Response) sdk.Action {
			if req.Path() == "/answer" {
				return resp.Answer(500, nil)
			}
			got = append(got, req.SetPath("/x"))
			return sdk.Continue
		},
	}, nil, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h.Do(host.Request{Path: "/p"})
	want := []string{
		"wedge: Request.SetPath: ErrInvalid: want '/' then printable ASCII without ? or # (SetRawQuery sets the query)",
		"wedge: Header.Set: ErrInvalid: want a field name that is an RFC 9110 token",
		"wedge: Header.Set: ErrInvalid: want a field name that is an RFC 9110 token and none the host owns (Content-Length",
		"wedge: Request.Forward: ErrInvalid: want a key that is an RFC 9110 token",
		"wedge: Response.SetStatus: ErrInvalid: want a status from 200 to 599",
		"wedge: Request.SetPath: ErrPhase (not available in the response phase)",
	}
	if len(got) != len(want) {
		t.Fatalf("%d errors, want %d: %v", len(got), len(want), got)
	}
	for i, err := range got {
		code := sdk.ErrInvalid
		if i == len(got)-1 {
			code = sdk.ErrPhase
		}
		if err == nil || !strings.HasPrefix(err.Error(), want[i]) || !errors.Is(err, code) {
			t.Errorf("error %d: %v, want %q... and errors.Is %v", i, err, want[i], code)
		}
	}
	if res := h.Do(host.Request{Path: "/answer"}); res.ResponseErr == nil ||
		!strings.Contains(res.ResponseErr.Error(), "Answer from the response phase: only the request phase answers") {
		t.Errorf("Answer from the response phase: %v", res.ResponseErr)
	}
	if res := h.Do(host.Request{Path: "/panic"}); res.Resp.Status != 503 || res.RequestErr == nil ||
		!strings.Contains(res.RequestErr.Error(), "request phase panicked: boom") || !strings.Contains(res.RequestErr.Error(), "sdk_test.go") {
		t.Errorf("a panic: %d, %v; want 503 and the panic with its stack", res.Resp.Status, res.RequestErr)
	}
	h.Do(host.Request{Path: "/log"})
	if !strings.Contains(log.String(), `msg=odd`) || !strings.Contains(log.String(), `!BADKEY=lonely`) {
		t.Errorf("a log call with a value left over: %q", log.String())
	}
}

// TestCookie: Request.Cookie finds a cookie in any Cookie field, takes
// off one pair of quotes, and reports a missing one.
func TestCookie(t *testing.T) {
	var got []string
	h := sdktest.New(t, &probe{onRequest: func(req sdk.Request, resp sdk.Response) sdk.Action {
		for _, name := range []string{"session", "b", "c", "a"} {
			v, ok := req.Cookie(name)
			got = append(got, fmt.Sprintf("%s=%q/%t", name, v, ok))
		}
		return sdk.Continue
	}}, nil)
	req := host.Request{Path: "/"}
	req.Header.Add("Cookie", `a=1; session="xyz"`)
	req.Header.Add("Cookie", "b=2;c")
	h.Do(req)
	if want := `session="xyz"/true b="2"/true c=""/false a="1"/true`; strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}
