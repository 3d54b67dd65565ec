package host

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/talowa/wedge/wasm/abi"
)

var rangeCases = []struct {
	rfc, v string
	size   int64
	kind   rangeKind
	first  int64
	last   int64
}{
	{"9110 §14.1.2", "bytes=0-99", 1000, rangeSatisfiable, 0, 99},
	{"9110 §14.1.2", "bytes=100-", 1000, rangeSatisfiable, 100, 999},
	{"9110 §14.1.2", "bytes=-10", 1000, rangeSatisfiable, 990, 999},
	{"9110 §14.1.2", "bytes=-5000", 1000, rangeSatisfiable, 0, 999},
	{"9110 §14.1.2", "bytes=990-5000", 1000, rangeSatisfiable, 990, 999},
	{"9110 §14.1.2", "bytes=999-999", 1000, rangeSatisfiable, 999, 999},
	{"9110 §14.1", "Bytes=0-0", 1000, rangeSatisfiable, 0, 0},
	{"9110 §5.6.1", "bytes= 0-9 ,", 1000, rangeSatisfiable, 0, 9},
	{"9110 §5.6.1", "bytes=,0-9", 1000, rangeSatisfiable, 0, 9},
	{"9110 §14.1.2", "bytes=0-99999999999999999999999", 10, rangeSatisfiable, 0, 9},
	{"9110 §14.1.1", "bytes=1000-", 1000, rangeUnsatisfiable, 0, 0},
	{"9110 §14.1.1", "bytes=99999999999999999999999-", 1000, rangeUnsatisfiable, 0, 0},
	{"9110 §14.1.1", "bytes=-0", 1000, rangeUnsatisfiable, 0, 0},
	{"9110 §14.1.1", "bytes=5-4", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=-", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=,", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=a-b", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=1-2-3", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=+1-2", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=0x10-", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes = 0-1", 1000, rangeIgnore, 0, 0},
	{"9110 §14.1.1", "bytes=0 -1", 1000, rangeIgnore, 0, 0},
	{"9110 §14.2", "bytes=0-1,5-6", 1000, rangeIgnore, 0, 0},
	{"9110 §14.2", "bytes=0-1, 2000-", 1000, rangeIgnore, 0, 0},
	{"9110 §14.2", "items=0-1", 1000, rangeIgnore, 0, 0},
	{"9110 §14.2", "bytes", 1000, rangeIgnore, 0, 0},
	{"9110 §14.2", "", 1000, rangeIgnore, 0, 0},
}

func TestParseRange(t *testing.T) {
	for _, c := range rangeCases {
		kind, first, last := parseRange([]byte(c.v), c.size)
		if kind != c.kind || first != c.first || last != c.last {
			t.Errorf("%s: %q of %d = %d [%d, %d], want %d [%d, %d]", c.rfc, c.v, c.size, kind, first, last, c.kind, c.first, c.last)
		}
	}
}

// FuzzRange: a Range value is untrusted bytes. A satisfiable range always
// lies within the representation, and an answer never depends on bytes
// after a second range-spec.
func FuzzRange(f *testing.F) {
	for _, c := range rangeCases {
		f.Add(c.v, c.size)
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size <= 0 {
			return
		}
		kind, first, last := parseRange([]byte(v), size)
		switch kind {
		case rangeSatisfiable:
			if first < 0 || first > last || last >= size {
				t.Fatalf("%q of %d: [%d, %d]", v, size, first, last)
			}
		case rangeUnsatisfiable, rangeIgnore:
			if first != 0 || last != 0 {
				t.Fatalf("%q of %d: kind %d with [%d, %d]", v, size, kind, first, last)
			}
		default:
			t.Fatalf("%q: kind %d", v, kind)
		}
	})
}

func TestCallRangeApply(t *testing.T) {
	stored := &StoredResponse{Status: 200, Body: []byte("0123456789"),
		Header: []HeaderField{{"Content-Type", "text/plain"}, {"ETag", `"e"`}}}
	for _, tc := range []struct {
		v, body, contentRange string
		status                int32
		first                 int // where a part starts in the stored body
	}{
		{"bytes=2-4", "234", "bytes 2-4/10", 206, 2},
		{"bytes=-2", "89", "bytes 8-9/10", 206, 8},
		{"bytes=7-", "789", "bytes 7-9/10", 206, 7},
		{"bytes=10-", "", "bytes */10", 416, 0},
		{"bytes=1-2,4-5", "0123456789", "", 200, 0},
		{"bogus", "0123456789", "", 200, 0},
	} {
		t.Run(tc.v, func(t *testing.T) {
			f := newFixture(t, abi.PhaseRequest)
			f.ex.LoadResponse(stored)
			if got := f.call.RangeApply([]byte(tc.v)); got != tc.status {
				t.Fatalf("= %s, want %d", errnoOr(got), tc.status)
			}
			cr, _ := f.ex.Resp.Header.Get("Content-Range")
			if f.ex.Resp.Status != int(tc.status) || string(f.ex.Resp.Body) != tc.body || cr != tc.contentRange {
				t.Fatalf("response %d %q Content-Range %q", f.ex.Resp.Status, f.ex.Resp.Body, cr)
			}
			if ct, _ := f.ex.Resp.Header.Get("Content-Type"); ct != "text/plain" {
				t.Errorf("Content-Type %q: the stored fields go with a part", ct)
			}
			// The part is a view of the stored bytes, which stay whole.
			if tc.status == 206 && unsafe.SliceData(f.ex.Resp.Body) != &stored.Body[tc.first] {
				t.Error("the part is a copy, not a view of the stored body")
			}
			if string(stored.Body) != "0123456789" {
				t.Fatalf("stored body now %q", stored.Body)
			}
		})
	}
	// Only a 200 with a body has ranges.
	for _, resp := range []*StoredResponse{{Status: 404, Body: []byte("nope")}, {Status: 200}} {
		f := newFixture(t, abi.PhaseResponse)
		f.ex.LoadResponse(resp)
		if got := f.call.RangeApply([]byte("bytes=0-1")); got != int32(resp.Status) || f.ex.Resp.Status != resp.Status {
			t.Errorf("%d with %d bytes: = %d, status %d", resp.Status, len(resp.Body), got, f.ex.Resp.Status)
		}
	}
	f := newFixture(t, abi.PhaseRequest)
	if got := f.call.RangeApply(bytes.Repeat([]byte("1"), maxHeaderValueLen+1)); got != abi.ErrTooLarge {
		t.Errorf("a 16 KiB value = %s", errnoOr(got))
	}
}

func TestCallCacheRevalidate(t *testing.T) {
	f := newFixture(t, abi.PhaseRequest)
	c := f.call
	f.ex.Vals.Set([]byte("state"), []byte("for the copy"), 0)
	if got := c.CacheRevalidate([]byte("/k")); got != 1 {
		t.Fatalf("= %s, want 1", errnoOr(got))
	}
	// Changes after the call are not in the copy.
	f.ex.Vals.Set([]byte("state"), []byte("for the client"), 0)
	f.ex.Req.Header.Add("X-Later", "1")
	f.ex.Req.Body[0] = 'X'
	if got := c.CacheRevalidate([]byte("/other")); got != 0 {
		t.Errorf("a second one for the same request = %s, want 0", errnoOr(got))
	}
	if got := c.CacheRevalidate(nil); got != abi.ErrInvalid {
		t.Errorf("empty key = %s", errnoOr(got))
	}
	if got := c.CacheRevalidate(make([]byte, abi.MaxCacheKeyLen+1)); got != abi.ErrTooLarge {
		t.Errorf("key of 4 KiB + 1 = %s", errnoOr(got))
	}
	rv := f.ex.TakeRevalidation()
	if rv == nil || f.ex.TakeRevalidation() != nil {
		t.Fatal("TakeRevalidation does not hand it over once")
	}
	v, _ := rv.Vals.Get([]byte("state"))
	_, later := rv.Req.Header.Get("X-Later")
	if rv.Key != "/k" || string(v) != "for the copy" || later || string(rv.Req.Body) != "req body" || rv.Req.Path != "/p" {
		t.Fatalf("copy: key %q value %q X-Later %v body %q", rv.Key, v, later, rv.Req.Body)
	}
	// A request of another exchange finds the key in flight until Done.
	g := newFixture(t, abi.PhaseRequest)
	g.env.Cache = f.env.Cache
	if got := g.call.CacheRevalidate([]byte("/k")); got != 0 {
		t.Errorf("while in flight = %s, want 0", errnoOr(got))
	}
	rv.Done()
	rv.Done()
	if got := g.call.CacheRevalidate([]byte("/k")); got != 1 {
		t.Errorf("after Done = %s, want 1", errnoOr(got))
	}
	// Without a cache that admits them, the host cannot.
	h := newFixture(t, abi.PhaseRequest)
	h.env.Cache = struct{ Cache }{h.env.Cache}
	if got := h.call.CacheRevalidate([]byte("/k")); got != abi.ErrUnavailable {
		t.Errorf("without a Revalidator = %s", errnoOr(got))
	}
	h.env.Cache = nil
	if got := h.call.CacheRevalidate([]byte("/k")); got != abi.ErrUnavailable {
		t.Errorf("without a cache = %s", errnoOr(got))
	}
}

func TestMemCacheRevalidationBound(t *testing.T) {
	m := NewMemCache(1 << 20)
	m.SetMaxRevalidations(3)
	var releases []func()
	for i := range 3 {
		rel, ok := m.BeginRevalidation([]byte(strconv.Itoa(i)))
		if !ok {
			t.Fatalf("revalidation %d refused under the bound", i)
		}
		releases = append(releases, rel)
	}
	if _, ok := m.BeginRevalidation([]byte("x")); ok {
		t.Fatal("a fourth admitted past a bound of 3")
	}
	releases[1]()
	releases[1]() // twice: must not free another slot
	if _, ok := m.BeginRevalidation([]byte("x")); !ok {
		t.Fatal("refused after one was released")
	}
	if _, ok := m.BeginRevalidation([]byte("y")); ok {
		t.Fatal("the double release freed a second slot")
	}
	if n := m.Revalidating(); n != 3 {
		t.Fatalf("Revalidating = %d", n)
	}
	// A lease that ran out (a runner that never called Done) frees its key.
	m.reval.mu.Lock()
	m.reval.inFlight["0"] = time.Now().Add(-time.Second)
	m.reval.mu.Unlock()
	rel, ok := m.BeginRevalidation([]byte("0"))
	if !ok {
		t.Fatal("an expired lease still holds its key")
	}
	releases[0]() // the old lease's release must not end the new one
	if _, ok := m.BeginRevalidation([]byte("0")); ok {
		t.Fatal("the old release ended the new lease")
	}
	rel()
}

// TestMemCacheRevalidationHammer: many goroutines racing for a few keys
// never have two revalidations of one key at once, nor more than the bound.
func TestMemCacheRevalidationHammer(t *testing.T) {
	m := NewMemCache(1 << 20)
	m.SetMaxRevalidations(4)
	var inFlight [8]atomic.Int32
	var total, peak atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := (g + i) % len(inFlight)
				rel, ok := m.BeginRevalidation([]byte(fmt.Sprint("k", k)))
				if !ok {
					continue
				}
				if inFlight[k].Add(1) != 1 {
					t.Errorf("two revalidations of k%d at once", k)
				}
				n := total.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				inFlight[k].Add(-1)
				total.Add(-1)
				rel()
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 4 {
		t.Fatalf("%d revalidations at once past a bound of 4", p)
	}
	if n := m.Revalidating(); n != 0 {
		t.Fatalf("%d left in flight", n)
	}
}

func TestRunBackground(t *testing.T) {
	cache := NewMemCache(1 << 20)
	var originSaw []string
	origin := func(r *Request) Response {
		v, _ := r.Header.Get("X-Phase")
		originSaw = append(originSaw, v)
		return Response{Status: 200, Body: []byte("fresh")}
	}
	for _, act := range []abi.Action{abi.ActionAnswer, abi.ActionContinue} {
		originSaw = nil
		var responses []string
		r := Run(Request{Method: "GET", Path: "/"}, func(ex Exchange) (abi.Action, error) {
			c := &Call{}
			c.Reset(&Env{Cache: cache}, abi.PhaseRequest, ex)
			ex.HeaderSet(abi.MsgRequest, []byte("X-Phase"), []byte("copy"))
			if got := c.CacheRevalidate([]byte("/")); got != 1 {
				t.Fatalf("cache_revalidate = %s", errnoOr(got))
			}
			ex.HeaderSet(abi.MsgRequest, []byte("X-Phase"), []byte("client"))
			ex.SetStatus(200)
			ex.SetBody(abi.MsgResponse, []byte("stale"))
			return act, nil
		}, origin, func(ex Exchange) error {
			responses = append(responses, string(ex.Body(abi.MsgResponse)))
			return nil
		})
		if act == abi.ActionAnswer {
			if r.Background == nil || string(r.Resp.Body) != "stale" || string(r.Background.Resp.Body) != "fresh" ||
				fmt.Sprint(originSaw) != "[copy]" || fmt.Sprint(responses) != "[stale fresh]" {
				t.Fatalf("answered: background %v, client %q, origin saw %v, response phases %v", r.Background != nil, r.Resp.Body, originSaw, responses)
			}
		} else if r.Background != nil || fmt.Sprint(originSaw) != "[client]" {
			t.Fatalf("continued: background %v, origin saw %v", r.Background != nil, originSaw)
		}
		if n := cache.Revalidating(); n != 0 {
			t.Fatalf("%v: the key is still in flight", act)
		}
	}
}
