package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// origin is one origin service as the routes see it.
type origin struct {
	name    string
	addr    string // its host:port, for the origin call's span (trace_origin.go)
	client  *originclient.Client
	codec   *wire.Codec
	timeout time.Duration
	limit   *originLimit // originlimit.go; nil: none
	// failures is when the last "origin failed" line was written and how
	// many failures since went unwritten: one a second, with the count,
	// as an origin that is down fails every request.
	failures struct {
		sync.Mutex
		logged  time.Time
		skipped int
	}
}

func newOrigin(name string, cfg *OriginConfig, m *originclient.Metrics, log *slog.Logger) (*origin, error) {
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{cfg.key}, Dicts: cfg.dicts, Dict: cfg.Dict,
		MinCompress: wire.DefaultMinCompress})
	if err != nil {
		return nil, fmt.Errorf("edge: origin %s: %w", name, err)
	}
	c, err := originclient.New(originclient.Config{Addr: cfg.Addr, Codec: codec, Name: name, Metrics: m,
		Logger: log, Timeout: time.Duration(cfg.Timeout), MaxConns: cfg.MaxConns, Breaker: cfg.Breaker.client()})
	if err != nil {
		codec.Close()
		return nil, fmt.Errorf("edge: origin %s: %w", name, err)
	}
	return &origin{name: name, addr: cfg.Addr, client: c, codec: codec, timeout: time.Duration(cfg.Timeout)}, nil
}

func (b BreakerConfig) client() originclient.BreakerConfig {
	return originclient.BreakerConfig{Failures: b.Failures, FailureRatio: b.FailureRatio, MinRequests: b.MinRequests,
		Window: time.Duration(b.Window), OpenFor: time.Duration(b.OpenFor), Probes: b.Probes}
}

// logFailure writes the line msg ("origin failed") of the request id,
// unless one was written within the second: then it counts it for the next
// line.
func (o *origin) logFailure(n *Node, msg, id string, status int, err error) {
	f := &o.failures
	f.Lock()
	now := time.Now()
	if now.Sub(f.logged) < time.Second {
		f.skipped++
		f.Unlock()
		return
	}
	skipped := f.skipped
	f.logged, f.skipped = now, 0
	f.Unlock()
	n.log.Warn(msg, "origin", o.name, "status", status, "err", err, "request_id", id, "not_logged_since", skipped)
}

func (o *origin) close() {
	o.client.Close()
	o.codec.Close()
}

// exchange sends the request as the chain left it, with timeout as its
// budget, under lim (the route's: nil for none), and puts the answer, or
// the failure, into resp; what st streams (a request body, an answer's
// body) goes through it (stream.go). A client that hangs up on client (nil
// for none) meanwhile abandons the exchange. It returns the failure, if
// any, for the origin call's span.
func (o *origin) exchange(n *Node, lim *originLimit, timeout time.Duration, st *stream, client net.Conn, req *host.Request, vals *host.Values, peer netip.Addr, wreq *wire.Request, wresp *wire.Response, resp *host.Response) error {
	// A streamed body: the exchange takes the time the client chooses,
	// not a measure of the origin's load (originlimit.go).
	if st != nil && st.in != nil {
		lim = nil
	}
	if !lim.acquire() {
		originBusyResponse(resp)
		wresp.Interim = wresp.Interim[:0]
		return errOriginBusy
	}
	toWire(n, req, vals, peer, wreq)
	start := time.Now()
	err := o.do(start.Add(timeout), timeout, wreq, wresp, st, client) // stream.go
	lim.release(time.Since(start), err)
	if err != nil && st != nil {
		if in := st.inErr.Load(); in != nil {
			// The client's body failed as it streamed: its answer, not
			// the origin's.
			status, text := n.bodyRefused(*in)
			st.refused = true
			wresp.Interim = wresp.Interim[:0]
			*resp = host.Response{Status: status, Header: host.Header{Fields: resp.Header.Fields[:0]}, Body: []byte(text)}
			resp.Header.Add("Content-Type", "text/plain; charset=utf-8")
			return err
		}
	}
	o.settle(n, req.ID, err, wresp, resp)
	if st != nil && st.body != nil {
		resp.Streamed = streamedLength(resp) // stream.go
	}
	return err
}

// settle puts what the origin answered in wresp, or the failure err to
// get an answer to the request id, into resp, and takes the body out of
// wresp.
func (o *origin) settle(n *Node, id string, err error, wresp *wire.Response, resp *host.Response) {
	if err != nil {
		// The error names internal addresses: it goes to the log, and the
		// client gets the status.
		status := originclient.Status(err)
		// Nothing of an answer that did not come is passed on (interim).
		wresp.Interim = wresp.Interim[:0]
		*resp = host.Response{Status: status, Header: host.Header{Fields: resp.Header.Fields[:0]},
			Body: fmt.Appendf(nil, "%d %s: origin %s\n", status, http.StatusText(status), o.name)}
		resp.Header.Add("Content-Type", "text/plain; charset=utf-8")
		switch {
		case status == connwatch.StatusClientClosed:
			// Nobody hears this answer, and the origin did not fail: the
			// access log (499) and exchanges_total{outcome="cancelled"}
			// count it.
			n.log.Debug("client hung up while its request waited on the origin", "origin", o.name, "request_id", id)
		case errors.Is(err, originclient.ErrPoolFull):
			// This node's own connections to the origin are all in use
			// (max_conns): shed, the origin never asked, as the origin's
			// concurrency limit sheds (originlimit.go).
			n.m.shed.WithLabelValues("origin_pool").Inc()
			resp.Header.Add("Retry-After", "1")
			o.logFailure(n, "origin connections all busy (max_conns), request shed", id, status, err)
		default:
			o.logFailure(n, "origin failed", id, status, err)
		}
		return
	}
	fromWire(wresp, resp)
	if _, dated := wire.Get(wresp.Header, "Date"); !dated {
		// A recipient with a clock dates a response that has no Date when
		// it caches or forwards it (RFC 9110 §6.6.1): on receipt, so that
		// the cache stores it and its hits carry it.
		resp.Header.Add("Date", httpDate(time.Now()))
	}
	// The response takes the envelope's body rather than a copy of it; the
	// next decode into wresp grows a new one. A body may outlive the
	// request in the cache, so it is never written into again.
	resp.Body, wresp.Body = wresp.Body, nil
}

// fromWire puts the status and header fields of wresp into resp. The
// field strings may outlive the request in the cache while wresp's
// buffers are reused, so they are copies: all of them in one string, one
// allocation per response rather than two per field.
func fromWire(wresp *wire.Response, resp *host.Response) {
	resp.Status = int(wresp.Status)
	resp.Header.Fields = resp.Header.Fields[:0]
	size := 0
	for _, f := range wresp.Header {
		size += len(f.Name) + len(f.Value)
	}
	var sb strings.Builder
	sb.Grow(size)
	for _, f := range wresp.Header {
		sb.Write(f.Name)
		sb.Write(f.Value)
	}
	all := sb.String()
	for _, f := range wresp.Header {
		// The origin's Proxy drops a malformed field, but a Handler of its
		// own sets what it likes, and the write passes names and values to
		// the client as given: "Content-Length: 0, X" would be a second
		// Content-Length line. Such a field is dropped, as Proxy would.
		if !abi.ValidToken(f.Name) || !abi.ValidHeaderValue(f.Value) {
			all = all[len(f.Name)+len(f.Value):]
			continue
		}
		name, rest := all[:len(f.Name)], all[len(f.Name):]
		resp.Header.Add(name, rest[:len(f.Value)])
		all = rest[len(f.Value):]
	}
}

// interim writes the informational responses the application sent before
// its answer (103 Early Hints and the like) to the client, ahead of the
// final response, as a proxy must (RFC 9110 §15.2). It writes them straight
// to the connection, as fasthttp's RequestCtx.EarlyHints does, and only to
// an HTTP/1.1 client: HTTP/1.0 has no interim responses and would take one
// for the answer. 100 and 101 never get here (they are a hop's own), and
// fields are checked again, since the edge writes them as they come.
func (n *Node) interim(ctx *fasthttp.RequestCtx, wresp *wire.Response) {
	if len(wresp.Interim) == 0 || !ctx.Request.Header.IsHTTP11() || ctx.Conn() == nil {
		return
	}
	var b []byte
	for i := range wresp.Interim[:min(len(wresp.Interim), wire.MaxInterim)] {
		in := &wresp.Interim[i]
		if in.Status < 102 || in.Status > 199 {
			continue
		}
		b = append(b, "HTTP/1.1 "...)
		b = strconv.AppendUint(b, in.Status, 10)
		b = append(b, ' ')
		b = append(b, http.StatusText(int(in.Status))...)
		b = append(b, "\r\n"...)
		for _, f := range in.Header {
			if !abi.ValidHeaderName(f.Name) || !abi.ValidHeaderValue(f.Value) || hopByHop(b2s(f.Name)) {
				continue
			}
			b = append(append(append(append(b, f.Name...), ": "...), f.Value...), "\r\n"...)
		}
		b = append(b, "\r\n"...)
	}
	if len(b) == 0 {
		return
	}
	// The connection's write deadline may be one that passed since the
	// last response; fasthttp sets its own before it writes the next, if
	// it has a WriteTimeout.
	c := ctx.Conn()
	d := n.srv.WriteTimeout
	if d <= 0 {
		d = 30 * time.Second
		defer c.SetWriteDeadline(time.Time{})
	}
	if c.SetWriteDeadline(time.Now().Add(d)) != nil {
		return
	}
	if _, err := c.Write(b); err != nil {
		// Part of an interim response may be out: what follows could not
		// be framed for the client.
		ctx.SetConnectionClose()
	}
}

// toWire fills an envelope from the request as the chain left it, with
// the values plugins marked for forwarding, and peer, the trusted proxy
// the client's address came through (invalid: none).
func toWire(n *Node, req *host.Request, vals *host.Values, peer netip.Addr, w *wire.Request) {
	w.Reset()
	w.ID = append(w.ID, req.ID...)
	w.Method = append(w.Method, req.Method...)
	w.Scheme = append(w.Scheme, req.Scheme...)
	w.Host = append(w.Host, req.Host...)
	w.Path = append(w.Path, req.Path...)
	w.Query = append(w.Query, req.RawQuery...)
	for _, f := range req.Header.Fields {
		if hopByHop(f.Name) {
			continue
		}
		w.AddHeader([]byte(f.Name), []byte(f.Value))
	}
	w.Body = append(w.Body, req.Body...)
	if ip, _, err := net.SplitHostPort(req.ClientAddr); err == nil {
		w.Client = append(w.Client, ip...)
	}
	if peer.IsValid() {
		w.Peer = peer.AppendTo(w.Peer)
	}
	w.POP = append(w.POP, n.cfg.POP...)
	w.Region = append(w.Region, n.cfg.Region...)
	for i := range vals.Len() {
		k, v, flags := vals.At(i)
		if flags&abi.ValueForward != 0 {
			w.AddValue(k, v)
		}
	}
}
