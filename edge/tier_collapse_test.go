package edge

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/internal/testutil"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/host"
)

// testFlights are flights with a collapsed counter of their own.
func testFlights() *flights {
	return &flights{m: map[string]*flight{}, collapsed: prometheus.NewCounter(prometheus.CounterOpts{Name: "c"})}
}

// lead starts a fetch of req under key at purge position purge that
// answers with the fields hdr once release closes, and returns when it
// is in the map; fetches counts the fetches run.
func lead(t *testing.T, f *flights, key string, purge uint64, req *wire.Request, release chan struct{}, fetches *atomic.Int64, hdr ...string) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var resp wire.Response
		done <- f.do(key, nil, purge, req, time.Now().Add(time.Minute), &resp, func(r *wire.Response) error {
			fetches.Add(1)
			<-release
			r.Status = 200
			for i := 0; i+1 < len(hdr); i += 2 {
				r.AddHeader([]byte(hdr[i]), []byte(hdr[i+1]))
			}
			r.Body = []byte("leader's")
			return nil
		})
	}()
	testutil.Eventually(t, 10*time.Second, "the leader's flight never began", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.m[key] != nil
	})
	return done
}

// follow waits on key's flight from a request req at purge position
// purge, once the flight has one more follower than before, and returns
// the body it got, "own" when it fetched itself.
func follow(f *flights, key string, purge uint64, req *wire.Request, fetches *atomic.Int64) chan string {
	got := make(chan string, 1)
	go func() {
		var resp wire.Response
		err := f.do(key, []byte(key), purge, req, time.Now().Add(time.Minute), &resp, func(r *wire.Response) error {
			fetches.Add(1)
			r.Body = []byte("own")
			return nil
		})
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(resp.Body)
	}()
	return got
}

// collapsed is how many followers joined a flight of f.
func collapsed(f *flights) float64 {
	var m dto.Metric
	f.collapsed.Write(&m)
	return m.GetCounter().GetValue()
}

func request(hdr ...string) *wire.Request {
	var r wire.Request
	r.Method = []byte("GET")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.AddHeader([]byte(hdr[i]), []byte(hdr[i+1]))
	}
	return &r
}

// TestCollapseShares: a follower takes the leader's answer only when it
// is for any client and agrees on every field its Vary names; otherwise
// it fetches on its own.
func TestCollapseShares(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer []string
		leader []string
		follow []string
		shared bool
	}{
		{"public", []string{"Cache-Control", "max-age=60"}, nil, nil, true},
		// No lifetime of its own: it may depend on what the key does not
		// hold (an X-Api-Key, the client's address).
		{"no lifetime", []string{"Content-Type", "application/json"}, nil, nil, false},
		{"max-age=0", []string{"Cache-Control", "max-age=0"}, nil, nil, false},
		{"vary same", []string{"Vary", "Accept, User-Agent", "Cache-Control", "max-age=60"}, []string{"User-Agent", "desktop"}, []string{"User-Agent", "desktop"}, true},
		{"vary differs", []string{"Vary", "Accept, User-Agent"}, []string{"User-Agent", "desktop"}, []string{"User-Agent", "mobile"}, false},
		{"vary missing", []string{"Vary", "user-agent"}, []string{"User-Agent", "desktop"}, nil, false},
		{"vary star", []string{"Vary", "*"}, nil, nil, false},
		{"private", []string{"Cache-Control", "max-age=60, Private"}, nil, nil, false},
		{"private fields", []string{"Cache-Control", `private="x", max-age=60`}, nil, nil, false},
		{"no-store", []string{"Cache-Control", "no-store"}, nil, nil, false},
		{"set-cookie", []string{"Set-Cookie", "s=1"}, nil, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := testFlights()
			var fetches atomic.Int64
			release := make(chan struct{})
			done := lead(t, f, "k", 0, request(c.leader...), release, &fetches, c.answer...)
			got := follow(f, "k", 0, request(c.follow...), &fetches)
			testutil.Eventually(t, 10*time.Second, "the follower never joined", func() bool { return collapsed(f) == 1 })
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			want := "own"
			if c.shared {
				want = "leader's"
			}
			if body := <-got; body != want {
				t.Errorf("follower got %q, want %q", body, want)
			}
		})
	}
}

// TestCollapseForwardedValues: requests whose forwarded values differ
// (auth claims) do not share a fetch.
func TestCollapseForwardedValues(t *testing.T) {
	a, b := request(), request()
	a.AddValue([]byte("user"), []byte("alice"))
	b.AddValue([]byte("user"), []byte("bob"))
	if collapseKey([]byte("k"), a) == collapseKey([]byte("k"), b) {
		t.Error("alice's and bob's requests share a collapse key")
	}
}

// TestCollapseAfterPurge: a request after a purge the running fetch began
// before does not join it, and the fetch's end leaves the newer flight in
// place.
func TestCollapseAfterPurge(t *testing.T) {
	f := testFlights()
	var fetches atomic.Int64
	release := make(chan struct{})
	done := lead(t, f, "k", 1, request(), release, &fetches)
	got := follow(f, "k", 2, request(), &fetches)
	if body := <-got; body != "own" {
		t.Errorf("a request after the purge got %q, want its own fetch", body)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := collapsed(f); n != 0 {
		t.Errorf("%v collapsed, want 0", n)
	}
}

// TestCollapseAfterOtherPurge: a purge of another key (a POST's
// invalidation of its own URL, which moves the purge position as any
// purge does) leaves a fetch in progress to the requests after it; a
// purge of its key, of any tag (what the fetch will carry is not known
// yet) or of everything does not.
func TestCollapseAfterOtherPurge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		purge func(*host.MemCache)
		join  bool
	}{
		{"another key", func(c *host.MemCache) { c.Purge([]byte("other")) }, true},
		{"its key", func(c *host.MemCache) { c.Purge([]byte("k")) }, false},
		{"a tag", func(c *host.MemCache) { c.PurgeTag([]byte("t")) }, false},
		{"everything", func(c *host.MemCache) { c.PurgeAll() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := host.NewMemCache(1 << 20)
			f := testFlights()
			f.purged = c.KeyPurgedSince
			var fetches atomic.Int64
			release := make(chan struct{})
			done := lead(t, f, "k", c.Purges(), request(), release, &fetches, "Cache-Control", "max-age=60")
			tc.purge(c)
			got := follow(f, "k", c.Purges(), request(), &fetches)
			want := "own"
			if tc.join {
				want = "leader's"
				testutil.Eventually(t, 10*time.Second, "the request after the purge joining the fetch", func() bool {
					return collapsed(f) == 1
				})
				close(release)
			}
			if body := <-got; body != want {
				t.Errorf("a request after the purge got %q, want %q", body, want)
			}
			if !tc.join {
				close(release)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCollapsePanic: a fetch that panics leaves its key free and its
// followers a failure, not a wait.
func TestCollapsePanic(t *testing.T) {
	f := testFlights()
	entered, release := make(chan struct{}), make(chan struct{})
	go func() {
		defer func() { recover() }()
		var resp wire.Response
		f.do("k", nil, 0, request(), time.Now().Add(time.Minute), &resp, func(*wire.Response) error {
			close(entered)
			<-release
			panic("boom")
		})
	}()
	<-entered
	var fetches atomic.Int64
	got := follow(f, "k", 0, request(), &fetches)
	testutil.Eventually(t, 10*time.Second, "the follower never joined", func() bool { return collapsed(f) == 1 })
	close(release)
	if err := <-got; err != errAborted.Error() {
		t.Errorf("follower of a panicked fetch got %q, want %q", err, errAborted)
	}
	f.mu.Lock()
	stuck := f.m["k"] != nil
	f.mu.Unlock()
	if stuck {
		t.Error("the panicked flight is still in the map")
	}
	var resp wire.Response
	if err := f.do("k", nil, 0, request(), time.Now().Add(time.Minute), &resp, func(*wire.Response) error { return nil }); err != nil {
		t.Errorf("a fetch after the panic: %v", err)
	}
}

// TestPeerClientRefs: a peer's client outlives its membership while an
// ask holds it, and takes no new ask once its peer left.
func TestPeerClientRefs(t *testing.T) {
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{{ID: 1, Secret: make([]byte, 32)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	cl, err := originclient.New(originclient.Config{Addr: "127.0.0.1:1", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	p := &peerClient{Client: cl}
	p.refs.Store(1) // the membership's
	if !p.hold() {
		t.Fatal("a member's client refused an ask")
	}
	p.release() // the peer leaves mid-ask
	if got := p.refs.Load(); got != 1 {
		t.Fatalf("%d references with an ask in flight, want 1", got)
	}
	p.release() // the ask ends, and closes it
	if p.hold() {
		t.Error("a departed peer's client took an ask")
	}
}
