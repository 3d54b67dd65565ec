// The owner's fetch of the regional cache tier: concurrent misses for one
// request at the POP that owns its key, its own clients' and its peers'
// asks alike, share one fetch from the shield or the origin.

package edge

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// flights are the fetches in progress, by collapse key.
type flights struct {
	mu        sync.Mutex
	m         map[string]*flight
	collapsed prometheus.Counter // followers
	// purged reports whether a purge since a position could cover what a
	// fetch of a cache key brings (host.MemCache.KeyPurgedSince); nil:
	// any purge since does.
	purged func(since uint64, cacheKey []byte) bool
}

// flight is one fetch; resp and err are set before done closes, and
// never written again: followers copy resp (its body they share, as
// bodies are never written into once received).
type flight struct {
	done chan struct{}
	// purge is the cache's purge position (host.MemCache.Purges) when
	// the fetch began: a request after a later purge must not take what
	// it fetched.
	purge uint64
	// header is the leader's request fields, for the fields the answer's
	// Vary names.
	header []wire.Field
	resp   wire.Response
	err    error
}

// errAborted is a flight's failure when its fetch panicked.
var errAborted = errors.New("edge: tier: the shared fetch was aborted")

// collapseFields are the request fields a response may vary on, or that
// make the request conditional or partial: two requests that differ in
// one of them do not share a fetch.
var collapseFields = [...]string{"accept", "accept-encoding", "accept-language", "authorization", "cookie",
	"origin", "range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"}

// collapseKey is what two requests must share to share a fetch: the
// method, the cache key, the fields above, each with its values in
// order, and the forwarded values (auth claims and the like, which the
// origin may answer by).
func collapseKey(key []byte, wreq *wire.Request) string {
	var b strings.Builder
	b.Write(wreq.Method)
	b.WriteByte(0)
	b.Write(key)
	for _, name := range collapseFields {
		for i := range wreq.Header {
			if f := &wreq.Header[i]; strings.EqualFold(b2s(f.Name), name) {
				b.WriteByte(0)
				b.WriteString(name)
				b.WriteByte(':')
				b.Write(f.Value)
			}
		}
	}
	for i := range wreq.Values {
		f := &wreq.Values[i]
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(len(f.Name)))
		b.WriteByte('=')
		b.Write(f.Name)
		b.Write(f.Value)
	}
	return b.String()
}

// do runs fetch for wreq, whose collapse key is key and cache key
// cacheKey, unless a fetch for key is in progress that began at purge
// position purge or later, or before it with no purge since that could
// cover its answer (purged), in which case it waits for that one, until
// deadline. Either way the answer is
// copied into into, which then shares the body. A leader's failure is
// its followers' failure; a leader's answer that is not for the follower
// too (shareable) sends the follower to fetch on its own.
func (f *flights) do(key string, cacheKey []byte, purge uint64, wreq *wire.Request, deadline time.Time, into *wire.Response, fetch func(*wire.Response) error) error {
	f.mu.Lock()
	if fl := f.m[key]; fl != nil && (fl.purge >= purge || f.purged != nil && !f.purged(fl.purge, cacheKey)) {
		f.mu.Unlock()
		f.collapsed.Inc()
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case <-fl.done:
		case <-timer.C:
			return originclient.ErrTimeout
		}
		if fl.err != nil {
			return fl.err
		}
		if !shareable(&fl.resp, fl.header, wreq.Header) {
			return fetch(into)
		}
		copyResponse(into, &fl.resp)
		return nil
	}
	// A flight begun before a purge this one is after is replaced: it
	// stays its own followers', and leaves the map to this one.
	fl := &flight{done: make(chan struct{}), purge: purge, err: errAborted}
	for i := range wreq.Header {
		h := &wreq.Header[i]
		fl.header = append(fl.header, wire.Field{Name: bytes.Clone(h.Name), Value: bytes.Clone(h.Value)})
	}
	f.m[key] = fl
	f.mu.Unlock()
	// Deferred: a panicking fetch must not leave the key to a flight that
	// never lands, nor its followers waiting.
	defer func() {
		f.mu.Lock()
		if f.m[key] == fl {
			delete(f.m, key)
		}
		f.mu.Unlock()
		close(fl.done)
	}()
	fl.err = fetch(&fl.resp)
	if fl.err != nil {
		return fl.err
	}
	copyResponse(into, &fl.resp)
	return nil
}

// shareable reports whether resp, the answer to a request with the fields
// leader, is an answer to one with the fields follower too: it is for any
// client (not private, no-store, no Set-Cookie), says itself how long it
// stays fresh (httpcache.ExplicitlyFresh), and every field its Vary names
// has the same values in both (Vary: * never matches).
func shareable(resp *wire.Response, leader, follower []wire.Field) bool {
	for i := range resp.Header {
		h := &resp.Header[i]
		switch {
		case strings.EqualFold(b2s(h.Name), "Set-Cookie"):
			return false
		case strings.EqualFold(b2s(h.Name), "Cache-Control"):
			for d := range strings.SplitSeq(b2s(h.Value), ",") {
				d, _, _ = strings.Cut(d, "=")
				d = strings.TrimSpace(d)
				if strings.EqualFold(d, "private") || strings.EqualFold(d, "no-store") {
					return false
				}
			}
		case strings.EqualFold(b2s(h.Name), "Vary"):
			for name := range strings.SplitSeq(b2s(h.Value), ",") {
				name = strings.TrimSpace(name)
				if name == "*" || !sameField(name, leader, follower) {
					return false
				}
			}
		}
	}
	return httpcache.ExplicitlyFresh(len(resp.Header), func(i int) ([]byte, []byte) {
		return resp.Header[i].Name, resp.Header[i].Value
	}, time.Now())
}

// sameField reports whether the field name has the same values, in
// order, in a and b.
func sameField(name string, a, b []wire.Field) bool {
	i, j := 0, 0
	for {
		for i < len(a) && !strings.EqualFold(b2s(a[i].Name), name) {
			i++
		}
		for j < len(b) && !strings.EqualFold(b2s(b[j].Name), name) {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		if !bytes.Equal(a[i].Value, b[j].Value) {
			return false
		}
		i, j = i+1, j+1
	}
}

// copyResponse makes dst a copy of src that shares its body. The caller
// takes the body out of dst (origin.settle does) before dst decodes
// again, which would write into it.
func copyResponse(dst, src *wire.Response) {
	dst.Reset()
	dst.Status, dst.Scope = src.Status, src.Scope
	for i := range src.Header {
		dst.AddHeader(src.Header[i].Name, src.Header[i].Value)
	}
	dst.Error = append(dst.Error, src.Error...)
	dst.Body = src.Body
}

// tierFetch is the owner's fetch of wreq, a request for the cache key key
// that toWire made for step s, shared with the concurrent ones like it:
// from the owner of the key in the route's shield region, unless this POP
// is in it or the request is a shield's ask already (hop), and from the
// route's origin if there is no shield or asking it failed. Never from
// another POP of this region: the region's owner of a key is this one.
// The answer is copied into wresp, its body shared.
func (n *Node) tierFetch(rt *route, s tierStep, hop string, key []byte, deadline time.Time, wreq *wire.Request, wresp *wire.Response) error {
	t := &n.tier
	return t.flights.do(collapseKey(key, wreq), key, n.cache.Purges(), wreq, deadline, wresp, func(resp *wire.Response) error {
		if hop != hopShield {
			if cl := n.shieldClient(rt, key); cl != nil {
				err := n.ask(cl, s, hopShield, askDeadline(time.Now(), deadline), deadline, wreq, resp)
				cl.release()
				if err == nil {
					return nil
				}
				n.log.Debug("edge: tier: shield failed, asking the origin", "route", rt.name, "err", err)
			}
		}
		// Whole, not streamed: a response too large for an envelope fails
		// here, and the POP the client reached streams it from the origin.
		// Under the route's origin limit, as any exchange with the origin
		// (originlimit.go).
		if !rt.limit.acquire() {
			return errOriginBusy
		}
		start := time.Now()
		err := rt.origin.client.Do(deadline, wreq, resp)
		rt.limit.release(time.Since(start), err)
		return err
	})
}

// shieldClient is the client of the POP that owns key in the route's
// shield region, held for an ask; nil if the route has none, this POP is
// in it, or it has no live POP.
func (n *Node) shieldClient(rt *route, key []byte) *peerClient {
	if rt.shield == "" || rt.shield == n.cfg.Region {
		return nil
	}
	ps := n.tier.peers.Load()
	if ps == nil {
		return nil
	}
	r := ps.regions[rt.shield]
	if r == nil {
		return nil
	}
	if cl := r.clients[r.set.Owner(key)]; cl != nil && cl.hold() {
		return cl
	}
	return nil
}
