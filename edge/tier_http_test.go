package edge_test

import (
	"bytes"
	"context"
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
}

func (o *headerOrigin) ServeOrigin(_ context.Context, req *wire.Request, resp *wire.Response) {
	o.n.Add(1)
	for _, f := range req.Header {
		if strings.EqualFold(string(f.Name), "If-None-Match") {
			o.cond.Add(1)
			if o.etag != "" && string(f.Value) == o.etag {
				resp.Status = 304
				resp.AddHeader([]byte("ETag"), []byte(o.etag))
				o.addHeader(resp)
				return
			}
		}
	}
	resp.Status = 200
	if o.etag != "" {
		resp.AddHeader([]byte("ETag"), []byte(o.etag))
	}
	o.addHeader(resp)
	resp.Body = append(resp.Body, "object "+string(req.Path)...)
}

func (o *headerOrigin) addHeader(resp *wire.Response) {
	for i := 0; i+1 < len(o.header); i += 2 {
		resp.AddHeader([]byte(o.header[i]), []byte(o.header[i+1]))
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
// targeted field (Wedge-Cache-Control) as the owner does, and no client,
// at the asker or at the owner, sees the field.
func TestTierTargetedFields(t *testing.T) {
	names := []string{"pop-a", "pop-b"}
	for _, tc := range []struct {
		name     string
		header   []string
		requests int64 // at the origin, for two GETs at A
	}{
		{"store-only-cc", []string{"Cache-Control", "public, max-age=60", "Wedge-Cache-Control", "no-store"}, 2},
		{"store-only-targeted", []string{"Cache-Control", "no-store", "Wedge-Cache-Control", "max-age=60"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			org := &headerOrigin{header: tc.header}
			pops := startHeaderRegion(t, org, names...)
			a, b := pops[0], pops[1]
			path := ownedBy("pop-b", "/targeted/", 1, names...)[0]
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
			// B's own client, on B's entry (stored from A's ask, when stored).
			if code, _, hdr := b.getHeader(t, path); code != 200 || strings.Contains(strings.ToLower(hdr), "wedge-cache-control") {
				t.Errorf("GET at B: %d, header:\n%s", code, hdr)
			}
		})
	}
}

// TestTierRevalidation: the asker's validation of its stale entry is the
// owner's to absorb: the owner looks the request up unconditionally,
// validates or fetches its own entry, stores it, and answers the asker
// 304, which freshens the asker's entry. The owner's own client then
// hits the refreshed entry.
func TestTierRevalidation(t *testing.T) {
	names := []string{"pop-a", "pop-b"}
	org := &headerOrigin{header: []string{"Cache-Control", "public, max-age=2, stale-if-error=60"}, etag: `"v1"`}
	pops := startHeaderRegion(t, org, names...)
	a, b := pops[0], pops[1]
	path := ownedBy("pop-b", "/reval/", 1, names...)[0]
	if code, _, _ := a.getHeader(t, path); code != 200 {
		t.Fatalf("GET at A: %d", code)
	}
	var cs string
	testutil.Eventually(t, 20*time.Second, "A's entry goes stale", func() bool {
		var code int
		code, cs, _ = a.getHeader(t, path)
		if code != 200 {
			t.Fatalf("GET at A: %d", code)
		}
		return !strings.Contains(cs, "wedge; hit")
	})
	if !strings.Contains(cs, "wedge; fwd=stale; fwd-status=304") || !strings.HasPrefix(cs, "wedge-tier; ") {
		t.Errorf("A's validation: Cache-Status %q, want B's answer and a 304 to A", cs)
	}
	if _, cs, _ := b.getHeader(t, path); !strings.Contains(cs, "wedge; hit") {
		t.Errorf("GET at B after A's validation: Cache-Status %q, want a hit on the entry B refreshed", cs)
	}
	// B's entry may have left its store when stale: B then fetched it
	// afresh rather than validated it.
	if n, c := org.n.Load(), org.cond.Load(); n != 2 || c > 1 {
		t.Errorf("origin saw %d requests, %d conditional; want 2, at most 1", n, c)
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
