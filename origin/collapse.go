package origin

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
)

// defaultMaxPasses bounds Proxy.passes: a key past it is evicted at
// random, which costs one more collapsed round of its requests.
const defaultMaxPasses = 4096

// flight is one upstream request that identical concurrent requests wait
// for. Its fields are guarded by Proxy.mu until done is closed; after that
// resp and shared are read-only.
type flight struct {
	key      []byte
	done     chan struct{} // made by the first follower
	waiting  int           // followers still waiting
	finished bool
	shared   bool
	resp     wire.Response // the leader's answer, copied for the followers
}

// varyFields are the request fields that responses commonly vary on, and
// those that make a request conditional or partial: requests that differ in
// any of them are not collapsed. A field's index stands for its name in the
// key, so case does not matter.
var varyFields = [...]string{
	"accept", "accept-encoding", "accept-language", "authorization", "cookie", "origin",
	"range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
}

// collapsible reports whether req may share an upstream request with
// identical ones: a GET or HEAD without a body whose client did not ask to
// bypass caches, and not engine.io's, whose handshakes open a session
// each (sticky.go).
func collapsible(req *wire.Request) bool {
	if len(req.Body) > 0 || (string(req.Method) != "GET" && string(req.Method) != "HEAD") {
		return false
	}
	if _, eio := engineIO(req.Query); eio {
		return false
	}
	for i := range req.Header {
		f := &req.Header[i]
		switch {
		case asciiEqualFold(f.Name, "cache-control"):
			if hasToken(f.Value, "no-cache") || hasToken(f.Value, "no-store") {
				return false
			}
		case asciiEqualFold(f.Name, "pragma"):
			if hasToken(f.Value, "no-cache") {
				return false
			}
		}
	}
	return true
}

// appendKey appends what identifies a collapsible request: method, scheme,
// host, path, query, the forwarded values and the varyFields, each length
// prefixed so that no two requests share a key by accident.
func appendKey(b []byte, req *wire.Request) []byte {
	for _, part := range [...][]byte{req.Method, req.Scheme, req.Host, req.Path, req.Query} {
		b = appendPart(b, part)
	}
	b = binary.AppendUvarint(b, uint64(len(req.Values)))
	for i := range req.Values {
		b = appendPart(b, req.Values[i].Name)
		b = appendPart(b, req.Values[i].Value)
	}
	for i := range req.Header {
		f := &req.Header[i]
		for j, name := range varyFields {
			if asciiEqualFold(f.Name, name) {
				b = append(b, byte(j))
				b = appendPart(b, f.Value)
				break
			}
		}
	}
	return b
}

func appendPart(b, part []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(part)))
	return append(b, part...)
}

// collapse answers req as the leader of a flight, or as a follower of the
// flight already in the air for the same key, or on its own when the last
// answer for its key could not be shared (a pass): followers of a flight
// whose answer they cannot take wait a whole upstream round trip for
// nothing, and under load every request but one would.
//
// Followers get a copy of the leader's answer only if it is shareable;
// otherwise each makes its own upstream request, as it would have without
// collapsing. A follower whose deadline passes leaves with a 504; one whose edge hangs
// up, with the 499 nobody reads.
func (p *Proxy) collapse(ctx context.Context, deadline time.Time, req *wire.Request, resp *wire.Response) {
	bp := p.bufs.Get().(*[]byte)
	key := appendKey((*bp)[:0], req)
	h := maphash.Bytes(p.seed, key)

	p.mu.Lock()
	if _, pass := p.passes[h]; pass {
		p.mu.Unlock()
		*bp = key[:0]
		p.bufs.Put(bp)
		p.forward(ctx, deadline, req, resp)
		p.learn(h, resp)
		return
	}
	if f := p.flights[h]; f != nil {
		if !bytes.Equal(f.key, key) {
			// A hash collision: rare enough to just not collapse.
			p.mu.Unlock()
			*bp = key[:0]
			p.bufs.Put(bp)
			p.forward(ctx, deadline, req, resp)
			return
		}
		f.waiting++
		if f.done == nil {
			f.done = make(chan struct{})
		}
		done := f.done
		p.mu.Unlock()
		*bp = key[:0]
		p.bufs.Put(bp)
		p.follow(ctx, f, done, deadline, req, resp)
		return
	}
	f := p.fpool.Get().(*flight)
	f.key = append(f.key[:0], key...)
	p.flights[h] = f
	p.mu.Unlock()
	*bp = key[:0]
	p.bufs.Put(bp)

	// Deferred, so that a panic in forward (which the server recovers)
	// cannot leave the flight in the map for every later request to join.
	share := false
	defer p.land(h, f, resp, &share)
	p.forward(ctx, deadline, req, resp)
	share = shareable(resp) && !streamOf(ctx).streamed() // a streamed body is the leader's alone
}

// land takes the leader's flight out of the map and hands its answer, if
// shareable, to the followers waiting on it.
func (p *Proxy) land(h uint64, f *flight, resp *wire.Response, share *bool) {
	p.mu.Lock()
	delete(p.flights, h)
	f.finished = true
	n, done := f.waiting, f.done
	p.mark(h, resp, *share)
	p.mu.Unlock()
	if n > 0 && *share {
		copyResponse(&f.resp, resp)
		f.shared = true
		resp.Cache.Shared = uint64(n)
		p.m.collapsed.Add(float64(n))
	}
	if done != nil {
		close(done)
		return
	}
	// No follower ever saw this flight, so nobody else holds it.
	*f = flight{key: f.key[:0], resp: f.resp}
	if cap(f.resp.Body) > maxPooled {
		f.resp.Body = nil
	}
	p.fpool.Put(f)
}

// learn records whether the answer to a request that went upstream
// without collapsing could have been shared.
func (p *Proxy) learn(h uint64, resp *wire.Response) {
	share := shareable(resp)
	p.mu.Lock()
	p.mark(h, resp, share)
	p.mu.Unlock()
}

// mark keeps the key h out of collapsing while the application's answers
// to it cannot be shared, and lets it back in at the first that can. The
// origin's own failures (a 502 or 504 with Error) say nothing about the
// resource and leave the mark as it is. Called with p.mu held.
func (p *Proxy) mark(h uint64, resp *wire.Response, share bool) {
	switch {
	case share:
		delete(p.passes, h)
	case len(resp.Error) > 0:
	default:
		if _, ok := p.passes[h]; ok {
			return
		}
		if len(p.passes) >= p.maxPasses {
			// Map iteration starts at a random entry: a cheap random
			// eviction, and an evicted key only collapses once more.
			for k := range p.passes {
				delete(p.passes, k)
				break
			}
		}
		p.passes[h] = struct{}{}
	}
}

func (p *Proxy) follow(ctx context.Context, f *flight, done chan struct{}, deadline time.Time, req *wire.Request, resp *wire.Response) {
	select {
	case <-done:
	case <-ctx.Done():
		p.mu.Lock()
		if !f.finished {
			f.waiting--
			p.mu.Unlock()
			if errors.Is(ctx.Err(), context.Canceled) {
				// The edge hung up, its client having done so: nobody
				// waits for this answer, and the upstream did not fail
				// (as forward answers one it sent).
				failure(resp, connwatch.StatusClientClosed, "edge closed the connection")
				return
			}
			p.m.timeout.Inc()
			failure(resp, fasthttp.StatusGatewayTimeout, "upstream timeout")
			return
		}
		// The leader counted this request as served: take the answer.
		p.mu.Unlock()
		<-done
	}
	if f.shared {
		copyResponse(resp, &f.resp)
		return
	}
	p.forward(ctx, deadline, req, resp)
}
