package edge_test

// Date (issue item 9a): a response keeps the Date it has, on a miss (the
// origin's) and on a hit (the stored one, with Age saying how old it is);
// a response without one gets the node's when it is received, so the cache
// stores that one too (RFC 9110 §6.6.1).

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/origin/origintest"
)

// TestDate: Date on a miss, on hits, for an origin's response without one,
// and on answers the node makes itself.
func TestDate(t *testing.T) {
	var sent atomic.Value // the Date /dated last answered with
	originAddr := appOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		switch r.URL.Path {
		case "/dated":
			// Two seconds behind the clock: never the node's own Date.
			d := time.Now().Add(-2 * time.Second).UTC().Format(http.TimeFormat)
			sent.Store(d)
			w.Header().Set("Date", d)
		case "/undated":
			w.Header()["Date"] = nil // net/http adds none then
		}
		w.Write([]byte("ok\n"))
	}))
	n := startNode(t, `
origins:
  app: {addr: "`+originAddr+`", key: "`+origintest.Key.Text()+`"}
  down: {addr: "127.0.0.1:1", key: "`+origintest.Key.Text()+`"}
routes:
  - host: cached
    origin: app
    chain:
      - {file: "`+plugins(t)["cache"]+`"}
  - host: down
    origin: down
`)
	// get returns the status, the response's only Date, its Age (-1
	// without one) and Cache-Status.
	get := func(host, path string) (status int, date time.Time, raw string, age int, cs string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+n.Addr+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		status = resp.StatusCode
		if ds := resp.Header.Values("Date"); len(ds) != 1 {
			t.Fatalf("%s%s: Date fields %q, want one", host, path, ds)
		}
		raw = resp.Header.Get("Date")
		date, err = http.ParseTime(raw)
		if err != nil {
			t.Fatalf("%s%s: Date %q: %v", host, path, raw, err)
		}
		age = -1
		if a := resp.Header.Get("Age"); a != "" {
			if age, err = strconv.Atoi(a); err != nil {
				t.Fatalf("%s%s: Age %q", host, path, a)
			}
		}
		return status, date, raw, age, resp.Header.Get("Cache-Status")
	}

	// The origin's Date, on a miss and on the hits after it.
	_, _, missDate, _, cs := get("cached", "/dated")
	if want := sent.Load(); missDate != want {
		t.Fatalf("miss (%s): Date %q, the origin sent %q", cs, missDate, want)
	}
	_, _, hitDate, age, cs := get("cached", "/dated")
	if hitDate != missDate || age < 1 {
		t.Fatalf("hit (%s): Date %q Age %d, want the stored %q and an Age from it", cs, hitDate, age, missDate)
	}

	// No Date from the origin: the node's, from when it received the
	// response, stays with the stored response while Age grows.
	start := time.Now().Truncate(time.Second)
	_, d, missDate, _, cs := get("cached", "/undated")
	if d.Before(start) || d.After(time.Now()) {
		t.Fatalf("undated miss (%s): Date %q, not the node's clock (now %s)", cs, missDate, time.Now().UTC().Format(http.TimeFormat))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, hitDate, age, cs := get("cached", "/undated")
		if hitDate != missDate {
			t.Fatalf("undated hit (%s) at Age %d: Date %q, want the stored %q", cs, age, hitDate, missDate)
		}
		if age >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("undated hit (%s): Age %d after 10 s", cs, age)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Answers the node makes itself have its Date too: with the chain's
	// response (the origin unreachable) and without a route.
	if st, d, raw, _, _ := get("down", "/"); st < 500 || time.Since(d) > time.Minute {
		t.Fatalf("the node's answer for an unreachable origin: %d, Date %q", st, raw)
	}
	if st, d, raw, _, _ := get("elsewhere", "/"); st != 404 || time.Since(d) > time.Minute {
		t.Fatalf("the node's 404: %d, Date %q", st, raw)
	}
}

// TestHeadContentLength: the answer to a HEAD the origin answers carries
// the Content-Length a GET's body would have, as a stored one does (RFC
// 9110 §9.3.2); it went without one, the envelope's empty body defining it.
func TestHeadContentLength(t *testing.T) {
	originAddr := appOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "20")
		if r.Method == http.MethodGet {
			w.Write([]byte("twenty bytes of body"))
		}
	}))
	n := startNode(t, `
origins:
  app: {addr: "`+originAddr+`", key: "`+origintest.Key.Text()+`"}
routes:
  - {path: /, origin: app}
`)
	for _, method := range []string{"HEAD", "GET"} {
		req, _ := http.NewRequest(method, "http://"+n.Addr+"/x", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 20 {
			t.Errorf("%s: %d, Content-Length %d, want 20", method, resp.StatusCode, resp.ContentLength)
		}
	}
}
