package edge_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// invalidateRaceApp answers GET /doc with the version it finds as the
// request arrives, cacheable for a minute; the first GET then says it
// started and waits for release: a fetch in progress. A POST to /doc or
// /docs makes the next version, answering 201 with Location: /doc for
// /docs.
type invalidateRaceApp struct {
	version atomic.Int64
	gets    atomic.Int64
	started chan struct{}
	release chan struct{}
}

func (a *invalidateRaceApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != "GET" {
		a.version.Add(1)
		if r.URL.Path == "/docs" {
			w.Header().Set("Location", "/doc")
			w.WriteHeader(201)
		}
		return
	}
	v := a.version.Load()
	if a.gets.Add(1) == 1 {
		a.started <- struct{}{}
		select {
		case <-a.release:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Cache-Control", "max-age=60")
	fmt.Fprintf(w, "v%d", v)
}

// TestInvalidationDuringFill: a POST the cache invalidates /doc for (RFC
// 9111 section 4.4: its target URI, or a Location of its answer) while a
// GET of /doc is at the origin keeps what that GET fetched out of the
// cache: its client gets it, the next one the version after the POST. The
// plugin's purge did not move the purge position, so the GET stored v1
// after it and every later request hit it for a minute.
func TestInvalidationDuringFill(t *testing.T) {
	for _, target := range []string{"/doc", "/docs"} {
		t.Run("POST "+target, func(t *testing.T) {
			a := &invalidateRaceApp{started: make(chan struct{}, 1), release: make(chan struct{})}
			a.version.Store(1)
			var once sync.Once
			release := func() { once.Do(func() { close(a.release) }) }
			t.Cleanup(release) // never leave the application waiting
			n := startCacheStack(t, a)

			type answer struct{ body, cs string }
			got := make(chan answer, 1)
			go func() {
				body, cs, err := n.get200("/doc")
				if err != nil {
					body = err.Error()
				}
				got <- answer{body, cs}
			}()
			select {
			case <-a.started:
			case <-time.After(20 * time.Second):
				t.Fatal("the GET did not reach the application")
			}
			// The POST's answer leaves after its response phase, which
			// purged.
			st, h, _ := n.do(t, "POST", n.Addr, target, []byte("x"))
			if cs := string(h.Peek("Cache-Status")); st/100 != 2 || !strings.Contains(cs, "detail=invalidated") {
				t.Fatalf("POST %s: %d, Cache-Status %q: want it invalidated", target, st, cs)
			}
			release()
			if g := <-got; g.body != "v1" {
				t.Errorf("GET during the POST: %q (%s), want v1 (fetched before it)", g.body, g.cs)
			}
			if body, cs, err := n.get200("/doc"); err != nil || body != "v2" {
				t.Errorf("GET after the POST: %q (%s) %v, want v2", body, cs, err)
			}
		})
	}
}
