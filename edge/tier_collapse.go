// The owner's fetch of the regional cache tier: concurrent misses for one
// request at the POP that owns its key, its own clients' and its peers'
// asks alike, share one fetch from the shield or the origin.

package edge

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin/wire"
)

// flights are the fetches in progress, by collapse key.
type flights struct {
	mu        sync.Mutex
	m         map[string]*flight
	collapsed prometheus.Counter // followers
}

// flight is one fetch; resp and err are set before done closes, and
// never written again: followers copy resp (its body they share, as
// bodies are never written into once received).
type flight struct {
	done chan struct{}
	resp wire.Response
	err  error
}

// collapseFields are the request fields a response may vary on, or that
// make the request conditional or partial: two requests that differ in
// one of them do not share a fetch.
var collapseFields = [...]string{"accept", "accept-encoding", "accept-language", "authorization", "cookie",
	"origin", "range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"}

// collapseKey is what two requests must share to share a fetch: the
// method, the cache key and the fields above, each with its values in
// order.
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
	return b.String()
}

// do runs fetch for key unless a fetch for key is in progress, in which
// case it waits for that one, until deadline. Either way the answer is
// copied into into, which then shares the body. A leader's failure is its
// followers' failure.
func (f *flights) do(key string, deadline time.Time, into *wire.Response, fetch func(*wire.Response) error) error {
	f.mu.Lock()
	fl := f.m[key]
	if fl != nil {
		f.mu.Unlock()
		f.collapsed.Inc()
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case <-fl.done:
		case <-timer.C:
			return originclient.ErrTimeout
		}
	} else {
		fl = &flight{done: make(chan struct{})}
		f.m[key] = fl
		f.mu.Unlock()
		fl.err = fetch(&fl.resp)
		f.mu.Lock()
		delete(f.m, key)
		f.mu.Unlock()
		close(fl.done)
	}
	if fl.err != nil {
		return fl.err
	}
	copyResponse(into, &fl.resp)
	return nil
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
// that toWire made, shared with the concurrent ones like it: from the
// owner of the key in the route's shield region, unless this POP is in
// it, and from the route's origin if there is no shield or asking it
// failed. The answer is copied into wresp, its body shared.
func (n *Node) tierFetch(rt *route, step string, key []byte, deadline time.Time, wreq *wire.Request, wresp *wire.Response) error {
	return n.tier.flights.do(collapseKey(key, wreq), deadline, wresp, func(resp *wire.Response) error {
		if cl := n.shieldClient(rt, key); cl != nil {
			err := n.ask(cl, hopShield, step, deadline, wreq, resp)
			if err == nil {
				return nil
			}
			n.tier.m.fallback.Inc()
			n.log.Debug("edge: tier: shield failed, asking the origin", "route", rt.name, "err", err)
		}
		// Whole, not streamed: a response too large for an envelope fails
		// here, and the POP the client reached streams it from the origin.
		return rt.origin.client.Do(deadline, wreq, resp)
	})
}

// shieldClient is the client of the POP that owns key in the route's
// shield region, nil if the route has none, this POP is in it, or it has
// no live POP.
func (n *Node) shieldClient(rt *route, key []byte) *originclient.Client {
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
	return r.clients[r.set.Owner(key)]
}
