package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// headerOrigin answers every GET with the fields in header (name, value
// pairs) and a body naming the path, and counts what it is asked and
// how much of it was conditional; an If-None-Match naming its ETag gets
// a 304.
type headerOrigin struct {
	header  []string
	n, cond atomic.Int64
	etag    string
	// revalidated, when not nil, are the fields a 304 has in header's
	// place.
	revalidated []string
}

func (o *headerOrigin) ServeOrigin(_ context.Context, req *wire.Request, resp *wire.Response) {
	o.n.Add(1)
	for _, f := range req.Header {
		if strings.EqualFold(string(f.Name), "If-None-Match") {
			o.cond.Add(1)
			if o.etag != "" && string(f.Value) == o.etag {
				resp.Status = 304
				resp.AddHeader([]byte("ETag"), []byte(o.etag))
				o.addHeader(resp, o.revalidated)
				return
			}
		}
	}
	resp.Status = 200
	if o.etag != "" {
		resp.AddHeader([]byte("ETag"), []byte(o.etag))
	}
	o.addHeader(resp, nil)
	resp.Body = append(resp.Body, "object "+string(req.Path)...)
}

// addHeader adds fields, or header's when nil.
func (o *headerOrigin) addHeader(resp *wire.Response, fields []string) {
	if fields == nil {
		fields = o.header
	}
	for i := 0; i+1 < len(fields); i += 2 {
		resp.AddHeader([]byte(fields[i]), []byte(fields[i+1]))
	}
}

// startHeaderRegion is startRegion with org as the origin.
func startHeaderRegion(t *testing.T, org *headerOrigin, names ...string) []*tierPOP {
	t.Helper()
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", "", names...)
	connect(pops...)
	return pops
}

// getHeader GETs path at p and returns the status, Cache-Status joined
// and the response header as text.
func (p *tierPOP) getHeader(t *testing.T, path string) (int, string, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + p.Addr + path)
	req.UseHostHeader = true
	req.Header.SetHost(tierHost)
	if err := fasthttp.DoTimeout(req, resp, 20*time.Second); err != nil {
		t.Fatalf("GET %s at %s: %v", path, p.name, err)
	}
	var cs []string
	for _, v := range resp.Header.PeekAll("Cache-Status") {
		cs = append(cs, string(v))
	}
	return resp.StatusCode(), strings.Join(cs, ", "), resp.Header.String()
}

// TestTierTargetedFields: the asker judges the owner's answer by the
// targeted field (Wedge-Cache-Control) as the owner does, whether the
// owner fetched it for the ask or had stored it for its own client
// before, and no client, at the asker or at the owner, sees the field.
func TestTierTargetedFields(t *testing.T) {
	names := []string{"pop-a", "pop-b"}
	for _, tc := range []struct {
		name     string
		header   []string
		requests int64 // at the origin, for two GETs at A
		// ownerFirst: B's own client GETs it first, so that the asks hit
		// the entry B filled for it.
		ownerFirst bool
	}{
		{"store-only-cc", []string{"Cache-Control", "public, max-age=60", "Wedge-Cache-Control", "no-store"}, 2, false},
		{"store-only-targeted", []string{"Cache-Control", "no-store", "Wedge-Cache-Control", "max-age=60"}, 1, false},
		{"store-only-targeted-owner-first", []string{"Cache-Control", "no-store", "Wedge-Cache-Control", "max-age=60"}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			org := &headerOrigin{header: tc.header}
			pops := startHeaderRegion(t, org, names...)
			a, b := pops[0], pops[1]
			path := ownedBy("pop-b", "/targeted/", 1, names...)[0]
			if tc.ownerFirst {
				if code, cs, hdr := b.getHeader(t, path); code != 200 || !strings.HasPrefix(cs, "wedge; fwd=uri-miss; fwd-status=200; stored") ||
					strings.Contains(strings.ToLower(hdr), "wedge-cache-control") {
					t.Fatalf("GET at B first: %d, Cache-Status %q, header:\n%s", code, cs, hdr)
				}
			}
			var last string
			for range 2 {
				code, cs, hdr := a.getHeader(t, path)
				if code != 200 || strings.Contains(strings.ToLower(hdr), "wedge-cache-control") {
					t.Fatalf("GET at A: %d, header:\n%s", code, hdr)
				}
				last = cs
			}
			// Stored at A too, by the targeted field, or not stored.
			if hit := strings.Contains(last, ", wedge; hit"); hit != (tc.requests == 1) {
				t.Errorf("second GET at A: Cache-Status %q, hit at A: %v", last, hit)
			}
			if got := org.n.Load(); got != tc.requests {
				t.Errorf("origin saw %d requests for two GETs at A, want %d (last Cache-Status %q)", got, tc.requests, last)
			}
			// B's own client, on B's entry (when stored).
			if code, _, hdr := b.getHeader(t, path); code != 200 || strings.Contains(strings.ToLower(hdr), "wedge-cache-control") {
				t.Errorf("GET at B: %d, header:\n%s", code, hdr)
			}
		})
	}
}

// TestTierRevalidation: the asker's validation of its stale entry is the
// owner's to absorb: the owner looks the request up unconditionally,
// validates its own stale entry (kept past its lifetime, as it has a
// validator) with its own validator, stores it, and answers the asker
// 304, which freshens the asker's entry; the asker's client sees in
// Cache-Status that the owner validated, not the fetch that filled the
// entry. The owner's own client then hits the refreshed entry.
//
// The counts are exact whatever the machine's pace. The owner's entry is
// never fetched afresh: it has a validator, and the cache keeps such a
// stale entry a day. The asker's entry may go stale a moment before the
// owner's (the asker counts its age from when it sent the ask, the
// owner from when it sent its fetch, later); an ask in that moment is
// the owner's hit, which reaches no origin, so the test polls until the
// owner validated. The 304 makes both entries fresh for an hour, so the
// owner's client hits however long the machine takes to send it.
func TestTierRevalidation(t *testing.T) {
	names := []string{"pop-a", "pop-b"}
	org := &headerOrigin{header: []string{"Cache-Control", "public, max-age=2, stale-if-error=60"}, etag: `"v1"`,
		revalidated: []string{"Cache-Control", "public, max-age=3600"}}
	pops := startHeaderRegion(t, org, names...)
	a, b := pops[0], pops[1]
	path := ownedBy("pop-b", "/reval/", 1, names...)[0]
	if code, _, _ := a.getHeader(t, path); code != 200 {
		t.Fatalf("GET at A: %d", code)
	}
	var cs string
	testutil.Eventually(t, 20*time.Second, "A's entry goes stale and B validates it", func() bool {
		var code int
		code, cs, _ = a.getHeader(t, path)
		if code != 200 {
			t.Fatalf("GET at A: %d", code)
		}
		return strings.HasPrefix(cs, "wedge-tier; fwd=stale")
	})
	if !strings.HasPrefix(cs, "wedge-tier; fwd=stale; fwd-status=304; stored") || !strings.Contains(cs, ", wedge; fwd=stale; fwd-status=304; stored") {
		t.Errorf("A's validation: Cache-Status %q, want B's validation and a 304 to A", cs)
	}
	if _, cs, _ := b.getHeader(t, path); !strings.Contains(cs, "wedge; hit") {
		t.Errorf("GET at B after A's validation: Cache-Status %q, want a hit on the entry B refreshed", cs)
	}
	if n, c := org.n.Load(), org.cond.Load(); n != 2 || c != 1 {
		t.Errorf("origin saw %d requests, %d conditional; want 2, the second B's validation", n, c)
	}
}

// TestTierBackgroundRevalidation: a stale-while-revalidate hit at the
// asker revalidates in the background through the key's owner.
func TestTierBackgroundRevalidation(t *testing.T) {
	names := []string{"pop-a", "pop-b"}
	org := &headerOrigin{header: []string{"Cache-Control", "public, max-age=1, stale-while-revalidate=60"}, etag: `"v1"`}
	pops := startHeaderRegion(t, org, names...)
	a, b := pops[0], pops[1]
	path := ownedBy("pop-b", "/swr/", 1, names...)[0]
	a.getHeader(t, path)
	testutil.Eventually(t, 20*time.Second, "a stale-while-revalidate hit at A", func() bool {
		_, cs, _ := a.getHeader(t, path)
		return strings.Contains(cs, "stale-while-revalidate")
	})
	waitMetric(t, b.testNode, func(v float64) bool { return v == 2 }, "wedge_tier_asks_total", "result", "ok")
}

// versionOrigin answers every GET with the fields in header, ETag "e"
// and X-Version: the version now; an If-None-Match of "e" gets a 304
// with the same fields, which the cache merges into its entry.
type versionOrigin struct {
	header  []string
	version atomic.Int64
}

func (o *versionOrigin) ServeOrigin(_ context.Context, req *wire.Request, resp *wire.Response) {
	resp.Status = 200
	for _, f := range req.Header {
		if strings.EqualFold(string(f.Name), "If-None-Match") && string(f.Value) == `"e"` {
			resp.Status = 304
		}
	}
	for i := 0; i+1 < len(o.header); i += 2 {
		resp.AddHeader([]byte(o.header[i]), []byte(o.header[i+1]))
	}
	resp.AddHeader([]byte("ETag"), []byte(`"e"`))
	resp.AddHeader([]byte("X-Version"), strconv.AppendInt(nil, o.version.Load(), 10))
	if resp.Status == 200 {
		resp.Body = append(resp.Body, "object "+string(req.Path)...)
	}
}

// TestTierTargetedRevalidated: the owner's background revalidation of
// its entry (a stale-while-revalidate hit of its own client's) keeps the
// targeted field in what it stores, so that a later ask is judged by it:
// the asker's entry gets the targeted lifetime (1 s), not Cache-Control's
// (600 s).
func TestTierTargetedRevalidated(t *testing.T) {
	names := []string{"pop-a", "pop-b", "pop-c"}
	org := &versionOrigin{header: []string{"Cache-Control", "public, max-age=600", "Wedge-Cache-Control", "max-age=1, stale-while-revalidate=600"}}
	org.version.Store(1)
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", "", names...)
	connect(pops...)
	a, b, c := pops[0], pops[1], pops[2]
	path := ownedBy("pop-b", "/targeted-reval/", 1, names...)[0]
	clean := func(at, hdr string) {
		t.Helper()
		if strings.Contains(strings.ToLower(hdr), "wedge-cache-control") {
			t.Fatalf("a client at %s got the targeted field:\n%s", at, hdr)
		}
	}
	// B fills its entry for A's ask: the tier keeps the field in it.
	code, cs, hdr := a.getHeader(t, path)
	clean("A", hdr)
	if code != 200 || !strings.HasPrefix(cs, "wedge-tier; fwd=uri-miss") {
		t.Fatalf("GET at A: %d, Cache-Status %q", code, cs)
	}
	org.version.Store(2)
	// B's own client gets a stale-while-revalidate hit, and B revalidates
	// in the background: a 304 with X-Version 2, merged into its entry.
	testutil.Eventually(t, 20*time.Second, "B's entry revalidated", func() bool {
		_, _, hdr := b.getHeader(t, path)
		clean("B", hdr)
		return strings.Contains(hdr, "X-Version: 2")
	})
	code, cs, hdr = c.getHeader(t, path)
	clean("C", hdr)
	own := cs[strings.LastIndex(cs, ", ")+2:]
	ttl, err := strconv.Atoi(own[strings.LastIndex(own, "=")+1:])
	if code != 200 || !strings.HasPrefix(cs, "wedge-tier; hit") || !strings.HasPrefix(own, "wedge; fwd=uri-miss; fwd-status=200; stored; ttl=") || err != nil || ttl > 1 {
		t.Errorf("GET at C: %d, Cache-Status %q; want B's hit, stored at C by Wedge-Cache-Control (ttl at most 1)", code, cs)
	}
}

// largeApp answers every GET with size bytes, cacheable, and counts them.
type largeApp struct {
	n    atomic.Int64
	size int
}

func (a *largeApp) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a.n.Add(1)
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Content-Length", strconv.Itoa(a.size))
	w.Write(bytes.Repeat([]byte{'x'}, a.size))
}

// TestTierTooLarge: an object too large for an envelope fails the tier
// fetch after the origin produced it, and the asker streams it from the
// origin; its next miss skips the tier, so the origin sends it once per
// miss, not twice.
func TestTierTooLarge(t *testing.T) {
	names := []string{"pop-a", "pop-b"}
	app, pops := startLargeRegion(t, names...)
	// At A for a key B owns, and at B for one of its own (its fetch for
	// the tier, then its streamed one).
	for _, p := range pops {
		path := ownedBy("pop-b", "/big-"+p.name+"/", 1, names...)[0]
		from := app.n.Load()
		for i := range 2 {
			code, _, body, err := p.tierGet("GET", path)
			if err != nil || code != 200 || len(body) != app.size {
				t.Fatalf("GET %d at %s: %d, %d bytes (%.60q), %v", i, p.name, code, len(body), body, err)
			}
		}
		// The first miss: the tier's fetch and the streamed one; the
		// second: the streamed one only (the object is too large for a
		// cache to hold whole, so it is a miss again).
		if got := app.n.Load() - from; got != 3 {
			t.Errorf("the application sent the object %d times for two misses at %s, want 3", got, p.name)
		}
	}
}

// startLargeRegion starts a region of POPs named names in front of a
// largeApp whose object does not fit an envelope.
func startLargeRegion(t *testing.T, names ...string) (*largeApp, []*tierPOP) {
	t.Helper()
	app := &largeApp{size: wire.DefaultMaxEnvelope + 1<<20}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: app}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	proxy, err := origin.NewProxy(origin.ProxyConfig{Upstreams: []string{"http://" + ln.Addr().String()}, HealthInterval: -1, StreamThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	pops := startPOPs(t, origintest.Start(t, proxy).Addr, "eu", "", names...)
	connect(pops...)
	return app, pops
}

// TestTierTooLargeOwnerRemembers: the owner of a key too large for an
// envelope remembers it, and answers the next POP's ask so at once: it
// fetched the object from the origin for each asking POP, which then
// fetched it again itself.
func TestTierTooLargeOwnerRemembers(t *testing.T) {
	names := []string{"pop-a", "pop-b", "pop-c"}
	app, pops := startLargeRegion(t, names...)
	path := ownedBy("pop-b", "/big/", 1, names...)[0]
	for i, p := range []*tierPOP{pops[0], pops[2]} {
		from := app.n.Load()
		code, _, body, err := p.tierGet("GET", path)
		if err != nil || code != 200 || len(body) != app.size {
			t.Fatalf("GET at %s: %d, %d bytes, %v", p.name, code, len(body), err)
		}
		// The first POP: the owner's fetch and its own; the second: its
		// own only.
		if got, want := app.n.Load()-from, int64(2-i); got != want {
			t.Errorf("a miss at %s: the application sent the object %d times, want %d", p.name, got, want)
		}
	}
}

// swrOrigin answers every GET with its version now: ETag "vN" and body
// "vN", version 1 stale at once and served stale while revalidated for a
// minute, version 2 fresh for an hour. A request whose If-None-Match
// names the version now gets a 304.
type swrOrigin struct{ version atomic.Int64 }

func (o *swrOrigin) ServeOrigin(_ context.Context, req *wire.Request, resp *wire.Response) {
	v := o.version.Load()
	etag := fmt.Sprintf(`"v%d"`, v)
	resp.Status = 200
	for _, f := range req.Header {
		if strings.EqualFold(string(f.Name), "If-None-Match") && string(f.Value) == etag {
			resp.Status = 304
		}
	}
	cc := "public, max-age=0, stale-while-revalidate=60"
	if v > 1 {
		cc = "public, max-age=3600"
	}
	resp.AddHeader([]byte("Cache-Control"), []byte(cc))
	resp.AddHeader([]byte("ETag"), []byte(etag))
	if resp.Status == 200 {
		resp.Body = fmt.Appendf(resp.Body, "v%d", v)
	}
}

// TestTierStaleOwnerValidates: the asker's background revalidation of
// its stale entry reaches the owner, whose entry is as stale: the owner
// validates its own before it answers, so the asker's one revalidation
// gets the version the origin has now. The owner answered 304 from its
// stale copy and revalidated only behind it, leaving the asker a version
// behind until a later revalidation of its own.
func TestTierStaleOwnerValidates(t *testing.T) {
	names := []string{"pop-a", "pop-b"}
	org := &swrOrigin{}
	org.version.Store(1)
	pops := startPOPs(t, origintest.Start(t, org).Addr, "eu", "", names...)
	connect(pops...)
	a, b := pops[0], pops[1]
	path := ownedBy("pop-b", "/swr-owner/", 1, names...)[0]
	if body := a.getBody(t, path); !strings.HasPrefix(body, "v1 ") {
		t.Fatalf("GET at A: %s, want v1", body)
	}
	org.version.Store(2)
	if body := a.getBody(t, path); !strings.HasPrefix(body, "v1 ") || !strings.Contains(body, "detail=stale-while-revalidate") {
		t.Fatalf("GET at A: %s, want a stale-while-revalidate hit on v1", body)
	}
	// Waited for rather than polled with GETs: a GET whose lookup saw the
	// stale entry just before the revalidation stored v2, and that asked
	// for one just after it ended, started a second, which B answered from
	// its fresh v2 (a hit), as it would behind an owner that answered 304.
	testutil.Eventually(t, 20*time.Second, "A's revalidation to end", func() bool { return a.Cache().Revalidating() == 0 })
	if body := a.getBody(t, path); !strings.HasPrefix(body, "v2 (wedge-tier; fwd=stale; fwd-status=200; stored") {
		t.Errorf("GET at A after its revalidation: %s, want v2, which B validated for it", body)
	}
	if got := metric(t, b.testNode, "wedge_tier_asks_total", "result", "ok"); got != 2 {
		t.Errorf("asks B answered: %v, want 2 (A's miss and its one revalidation)", got)
	}
}
