package origin

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
)

// Handler answers requests that reached the origin: an application running
// in the origin's process, or a Proxy to applications behind it.
//
// ctx carries the request's deadline, derived from the edge's remaining
// budget; a handler that needs longer is answered for with a 504 and its
// late answer is dropped. resp arrives Reset; the handler sets Status (0
// becomes 200), Header, Body and, where it knows them, the cache hints. req
// and resp belong to the handler only until ServeOrigin returns: keep no
// reference to them, or to their fields, past that.
type Handler interface {
	ServeOrigin(ctx context.Context, req *wire.Request, resp *wire.Response)
}

// DeadlineKeeper is a Handler that returns by its context's deadline on its
// own, as Proxy does (every upstream request carries the deadline). The
// Server runs one on the connection's goroutine, with neither a goroutine
// nor a timer of its own per exchange; it cannot answer for such a handler
// that overruns. Other handlers run under the Server's watch, which answers
// with a 504 when they miss their deadline.
type DeadlineKeeper interface {
	Handler
	// KeepsDeadline reports whether the handler returns by its deadline.
	KeepsDeadline() bool
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *wire.Request, resp *wire.Response)

// ServeOrigin calls f.
func (f HandlerFunc) ServeOrigin(ctx context.Context, req *wire.Request, resp *wire.Response) {
	f(ctx, req, resp)
}

// HTTP runs a net/http application in the origin's process. The application
// sees what it would behind a proxy: the header fields as Proxy passes them
// on (X-Real-Ip, X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id the
// edge's, X-Forwarded-For and Forwarded with the client appended), the
// forwarded values as Wedge-Value-* header fields (any the client sent are
// dropped), the client's address as RemoteAddr, and ctx as the request's
// context. Its response is recorded
// whole; Flush is accepted and does nothing. Informational responses it
// writes (WriteHeader with 102-199) are recorded as interim responses.
func HTTP(h http.Handler) Handler { return httpHandler{h} }

type httpHandler struct{ h http.Handler }

func (a httpHandler) ServeOrigin(ctx context.Context, req *wire.Request, resp *wire.Response) {
	target := string(req.Path)
	if target == "" {
		target = "/"
	}
	if len(req.Query) > 0 {
		target += "?" + string(req.Query)
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		failure(resp, http.StatusBadRequest, "bad request target")
		return
	}
	hr := &http.Request{
		Method:     string(req.Method),
		URL:        u,
		RequestURI: target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(req.Header)+len(req.Values)),
		Host:       string(req.Host),
		RemoteAddr: net.JoinHostPort(string(req.Client), "0"),
	}
	if len(req.Client) == 0 {
		hr.RemoteAddr = ""
	}
	if string(req.Scheme) == "https" {
		// Applications tell HTTPS by r.TLS; the edge terminated it.
		hr.TLS = &tls.ConnectionState{}
	}
	// The fields as Proxy passes them on: the edge's X-Forwarded-* and
	// X-Real-Ip in place of the client's, which a framework trusting one
	// proxy hop would take for the scheme, host and address.
	forwardFields(req, nil, func(name, value []byte) {
		k := http.CanonicalHeaderKey(string(name))
		hr.Header[k] = append(hr.Header[k], string(value))
	})
	hr.ContentLength = int64(len(req.Body))
	if len(req.Body) > 0 {
		hr.Body = io.NopCloser(bytes.NewReader(req.Body))
	} else {
		hr.Body = http.NoBody
	}
	hr = hr.WithContext(ctx)

	w := &recorder{resp: resp, header: http.Header{}}
	a.h.ServeHTTP(w, hr)
	w.finish()
	if hr.Method == http.MethodHead {
		// As net/http does: a HEAD answer has the GET's fields, no body.
		resp.Body = resp.Body[:0]
	}
}

// recorder is the http.ResponseWriter the HTTP adapter hands applications;
// it writes the body straight into the envelope.
type recorder struct {
	resp        *wire.Response
	header      http.Header
	wroteHeader bool
	status      int
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.wroteHeader || code < 100 || code > 599 {
		return
	}
	if code < 200 {
		// As net/http does, an informational response carries the header
		// as it stands; 100 and 101 are this hop's and never travel.
		if code != http.StatusContinue && code != http.StatusSwitchingProtocols && len(w.resp.Interim) < wire.MaxInterim {
			w.snapshot(w.resp.AddInterim(uint64(code)))
		}
		return
	}
	w.status = code
	w.wroteHeader = true
	w.snapshot(w.resp)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.resp.Body = append(w.resp.Body, b...)
	return len(b), nil
}

func (w *recorder) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
}

// snapshot copies the header map the way net/http does when the header is
// written: later changes to the map have no effect.
func (w *recorder) snapshot(dst interface{ AddHeader(name, value []byte) }) {
	keys := make([]string, 0, len(w.header))
	for k := range w.header {
		keys = append(keys, k)
	}
	// A map has no order; sorted names make the envelope deterministic.
	slices.Sort(keys)
	for _, k := range keys {
		// As net/http writes a header: invalid names dropped, CR and LF
		// in values turned to spaces, so an application cannot split it.
		// A value with other controls is dropped as every other hop drops
		// it (RFC 9110 §5.5).
		if kb := []byte(k); !abi.ValidToken(kb) || wire.HopByHop(kb) || asciiEqualFold(kb, "content-length") {
			continue
		}
		for _, v := range w.header[k] {
			if v = headerNewlineToSpace.Replace(v); abi.ValidHeaderValue(v) {
				dst.AddHeader([]byte(k), []byte(v))
			}
		}
	}
}

var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func (w *recorder) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.resp.Status = uint64(w.status)
	if _, ok := w.header["Content-Type"]; !ok && len(w.resp.Body) > 0 && bodyAllowed(w.status) {
		// net/http sniffs a missing Content-Type, so applications rely on it.
		w.resp.AddHeader([]byte("Content-Type"), []byte(http.DetectContentType(w.resp.Body)))
	}
	if !bodyAllowed(w.status) {
		w.resp.Body = w.resp.Body[:0]
	}
	fillTags(w.resp)
}

func bodyAllowed(status int) bool { return status != 204 && status != 304 && status >= 200 }

// failure makes resp an origin-generated answer: the status, the reason in
// Error and the same reason as a text/plain body. It is this request's own
// failure (wire.ScopeRequest): other requests are served.
func failure(resp *wire.Response, status int, reason string) {
	resp.Reset()
	resp.Status = uint64(status)
	resp.Scope = wire.ScopeRequest
	resp.AddHeader([]byte("Content-Type"), textPlain)
	resp.AddHeader([]byte("Cache-Control"), []byte("no-store"))
	resp.Error = append(resp.Error, reason...)
	resp.Body = append(resp.Body, reason...)
	resp.Body = append(resp.Body, '\n')
}

// unavailable is failure for an origin that cannot serve any request now
// (wire.ScopeOrigin), which is what an edge's circuit breaker counts.
func unavailable(resp *wire.Response, status int, reason string) {
	failure(resp, status, reason)
	resp.Scope = wire.ScopeOrigin
}

var textPlain = []byte("text/plain; charset=utf-8")
