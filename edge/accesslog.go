package edge

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/talowa/wedge/internal/tracing"
)

// AccessLogConfig is the access log: one JSON object per line for each
// request the node answers, e.g. access_log: {path: /var/log/wedge/access.log,
// sample: 0.1}. A line has the time the request came, its id (the
// envelope's, which the application gets as X-Request-Id), trace_id (of
// the trace the node continued or began as the request came in, which a
// plugin rewriting the traceparent does not change; when no chain ran,
// of the client's traceparent, if valid), client, method, host,
// path, query (true when there was one), status, bytes (the body's
// length; absent when it streams with no known length) and duration_us;
// when its chain ran, the route, phases_us (request, origin, response,
// write), the plugins that ran as name@version with request_us and
// response_us, and answered; cache_status, user_agent and referer when
// there are; shed, or failed (on the line and the plugin), when true.
//
// What a line holds is safe to hand to whoever reads logs: the host is
// fasthttp's, never with userinfo (which it parses out of an absolute-form
// target and a Host field alike), the path has no query (its values, and
// some names, are credentials), and of the fields only User-Agent, Referer
// (cut before its query or fragment, without userinfo) and the response's
// Cache-Status are logged: no Authorization, Cookie, Set-Cookie, or any
// other.
type AccessLogConfig struct {
	// Path is the file lines are appended to (created if missing, mode
	// 0640), relative to the config file's directory, or "-" for standard
	// output. "" (the default) turns the log off. It is opened when the
	// node starts, which fails if it cannot be; a reload (SIGHUP, or the
	// admin listener's POST /reload) opens it again, so a log rotated by
	// renaming the file continues in a new one. A reload does not change
	// path or sample: they are read at start.
	Path string `yaml:"path"`
	// Sample is the share of requests logged, from 0 to 1. Default 1,
	// every request. Server errors (status 5xx) and requests on which a
	// plugin failed are logged whatever it says; requests the overload
	// limit sheds are not: they go by the sample like any other, so that
	// a node shedding does not write a line per 503 (wedge_edge_shed_total
	// counts them all).
	Sample *float64 `yaml:"sample"`
}

// resolve takes a file path from the config file's directory.
func (a *AccessLogConfig) resolve(c *Config) {
	if a.Path != "" && a.Path != "-" {
		a.Path = c.path(a.Path)
	}
}

func (a *AccessLogConfig) validate() error {
	if s := a.Sample; s != nil && !(*s >= 0 && *s <= 1) {
		return fmt.Errorf("access_log: sample %v: want 0 to 1", *s)
	}
	return nil
}

// accessLogBuffer bounds the lines waiting for the writer: past it a line
// is dropped (and counted) rather than the request waiting for the disk.
// The writer holds a second buffer as large, the batch it is writing.
const accessLogBuffer = 1 << 20

// The writer writes what has gathered every accessLogEvery, or at once
// when it reaches accessLogBatch: a write per line would cost a busy node
// a system call and a goroutine wake-up per request.
const (
	accessLogEvery = 100 * time.Millisecond
	accessLogBatch = 64 << 10
)

// accessLog writes the access log. A request builds its line in its
// exchange's buffer, by hand (no reflection, no allocation once the
// exchange is warm), and copies it into buf under mu; a goroutine of the
// log's own (run) swaps buf for its empty one and writes the batch. So a
// request never waits for the file, only for another's copy, and a slow
// disk costs lines (wedge_edge_access_log_dropped_total), never latency.
// A line reaches the file within accessLogEvery.
type accessLog struct {
	all       bool   // sample 1: every request
	threshold uint64 // else a request is sampled when rand.Uint64() is below it
	path      string // "" for standard output
	dropped   prometheus.Counter
	log       *slog.Logger

	mu     sync.Mutex
	buf    []byte   // whole lines, waiting for run
	next   *os.File // opened by reopen, for run to take at its next batch
	closed bool
	wake   chan struct{} // buf holds a batch; closed by close
	done   chan struct{} // run has written the last batch

	bufs sync.Pool // *[]byte: finish's lines, which have no exchange

	// run's alone, so that nothing else ever waits for a write: a stuck
	// one (a full pipe, a hung network file system) held reloads,
	// releases and Shutdown as long as it lasted.
	f       *os.File
	failing bool // the last write failed: logged once, not per batch
	torn    bool // a failed write left part of a line that could not be cut
}

// openAccessLog opens the log cfg describes and starts its writer; nil,
// nil when it is off.
func openAccessLog(cfg AccessLogConfig, dropped prometheus.Counter, log *slog.Logger) (*accessLog, error) {
	if cfg.Path == "" {
		return nil, nil
	}
	l := &accessLog{all: true, dropped: dropped, log: log,
		buf: make([]byte, 0, accessLogBuffer), wake: make(chan struct{}, 1), done: make(chan struct{})}
	if s := cfg.Sample; s != nil && *s < 1 {
		// Below 2^64 for every s < 1.
		l.all, l.threshold = false, uint64(*s*(1<<64))
	}
	if cfg.Path == "-" {
		l.f = os.Stdout
	} else {
		l.path = cfg.Path
		f, err := openLogFile(l.path)
		if err != nil {
			return nil, err
		}
		l.f = f
	}
	l.bufs.New = func() any { return new([]byte) }
	go l.run()
	return l, nil
}

func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("edge: access log: %w", err)
	}
	return f, nil
}

// add queues one line, or drops it when the buffer is full or the log
// closed. It wakes the writer when buf reaches a batch.
func (l *accessLog) add(line []byte) {
	l.mu.Lock()
	if l.closed || len(l.buf)+len(line) > accessLogBuffer {
		l.mu.Unlock()
		l.dropped.Inc()
		return
	}
	if len(l.buf) < accessLogBatch && len(l.buf)+len(line) >= accessLogBatch {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	l.buf = append(l.buf, line...)
	l.mu.Unlock()
}

// run writes the lines add queues, a batch at a time, until close, and
// then closes the file.
func (l *accessLog) run() {
	defer close(l.done)
	defer func() {
		if l.path != "" {
			l.f.Close()
		}
	}()
	tick := time.NewTicker(accessLogEvery)
	defer tick.Stop()
	batch := make([]byte, 0, accessLogBuffer)
	for {
		open := true
		select {
		case _, open = <-l.wake:
		case <-tick.C:
		}
		l.mu.Lock()
		batch, l.buf = l.buf, batch[:0]
		next := l.next
		l.next = nil
		l.mu.Unlock()
		if next != nil {
			l.f.Close()
			l.f, l.torn = next, false
		}
		if len(batch) > 0 {
			l.write(batch)
		}
		if !open {
			return
		}
	}
}

// write writes a batch of lines; those a failed write lost count as
// dropped, and the failure is logged when it begins, not per batch.
func (l *accessLog) write(batch []byte) {
	if l.torn {
		if _, err := l.f.Write([]byte{'\n'}); err == nil {
			l.torn = false
		}
	}
	n, err := l.f.Write(batch)
	if err == nil {
		l.failing = false
		return
	}
	l.dropped.Add(float64(bytes.Count(batch[n:], []byte{'\n'})))
	if !l.failing {
		l.failing = true
		l.log.Warn("access log: write failed; lines are dropped until a write succeeds", "err", err)
	}
	// Part of a line went in (a full disk, a file size limit): cut it
	// off, or the next line written would be glued to it, and both lost
	// to whatever reads the file as JSON lines. Where the file cannot be
	// cut (a pipe), the next write ends it first.
	if cut := n - (bytes.LastIndexByte(batch[:n], '\n') + 1); cut > 0 {
		end, err := l.f.Seek(0, io.SeekCurrent)
		l.torn = err != nil || l.f.Truncate(end-int64(cut)) != nil
	}
}

// reopen opens the log's file again, for a reload after a rotation, and
// hands it to run for its next batch, so it waits for no write. The old
// file stays in use if the new one cannot be opened.
func (l *accessLog) reopen() {
	if l == nil || l.path == "" {
		return
	}
	f, err := openLogFile(l.path)
	if err != nil {
		l.log.Warn("access log: reopen failed; still writing to the file opened before", "err", err)
		return
	}
	l.mu.Lock()
	if !l.closed { // else run takes no more: close this one
		f, l.next = l.next, f // and one run has not taken yet
	}
	l.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// close has run write what is queued and close the file, waiting as long
// as ctx lets it; lines added later are dropped. When ctx ends first
// (the file stuck), run closes the file once its write returns.
func (l *accessLog) close(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.wake)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("access log: a write still waits on the file; the lines queued behind it are lost: %w", ctx.Err())
	}
}

// accessRecord is the times of a request's chain calls, for its line,
// measured by requestChain only while the log is on (the chain's al is
// nil when it is off). It lives in the pooled exchange, and so does the
// line's buffer.
type accessRecord struct {
	calls  []callTimes
	origin time.Duration
	last   time.Time // the end of the chain's last call (the write began there); begin sets it for the first
	line   []byte
}

// callTimes are one plugin's request and response phase, for its line.
type callTimes struct{ req, resp time.Duration }

// record readies x's record for a chain of n plugins and returns it for
// the chain to time its calls in; nil when the log is off.
func (l *accessLog) record(x *exchange, n int) *accessRecord {
	if l == nil {
		return nil
	}
	r := &x.al
	r.calls = append(r.calls[:0], make([]callTimes, n)...)
	r.origin, r.last = 0, time.Time{}
	return r
}

// begin is when a call begins: when the one before ended (Flow does next
// to nothing between calls), or now for the first, so that a call costs
// one clock reading, not two. Read after a call, it is when the call
// ended, which the call's span takes (trace.go).
func (r *accessRecord) begin() time.Time {
	if r.last.IsZero() {
		r.last = time.Now()
	}
	return r.last
}

// called counts the time since t of plugin i's request or response phase.
func (r *accessRecord) called(i int, resp bool, t time.Time) {
	r.last = time.Now()
	if resp {
		r.calls[i].resp += r.last.Sub(t)
	} else {
		r.calls[i].req += r.last.Sub(t)
	}
}

// originDone counts the time since t the origin took (or the tier, or a
// tunnel's opening).
func (r *accessRecord) originDone(t time.Time) {
	r.last = time.Now()
	r.origin += r.last.Sub(t)
}

// routed writes the line of a request whose chain ran, if it is sampled,
// before serve lets go of what the request held: start is when serve
// began, d how long it took.
func (l *accessLog) routed(ctx *fasthttp.RequestCtx, x *exchange, rt *route, start time.Time, d time.Duration) {
	failed := x.chain.failed != 0
	if !l.sampled(failed || ctx.Response.StatusCode() >= 500) {
		return
	}
	b := appendHead(x.al.line[:0], ctx, start, d, x.Req.ID, x.trace.id)
	b = x.al.appendChain(b, x, rt, start.Add(d))
	if failed {
		b = append(b, `,"failed":true`...)
	}
	b = appendTail(b, ctx)
	x.al.line = b
	l.add(b)
}

// finish, deferred by serve, writes the line of a request answered before
// its chain ran (shed, refused as malformed, unrouted, arriving during
// shutdown), if it is sampled; done is serve's word that routed took care
// of the request.
func (l *accessLog) finish(ctx *fasthttp.RequestCtx, start time.Time, done *bool) {
	if *done {
		return
	}
	// Turned away before routing with a time to come back: the overload
	// limit shed it (overload.go). Sampled, not always logged: shedding
	// is the node's cheapest path, kept for when it is busiest.
	status := ctx.Response.StatusCode()
	shed := status == fasthttp.StatusServiceUnavailable && len(ctx.Response.Header.Peek("Retry-After")) > 0
	if !l.sampled(status >= 500 && !shed) {
		return
	}
	// The client's trace, if it sent a valid one: no chain ran, so the
	// edge continued none.
	tp, _ := clientParent(&ctx.Request.Header)
	p := l.bufs.Get().(*[]byte)
	b := appendHead((*p)[:0], ctx, start, time.Since(start), "", tp.TraceID)
	if shed {
		b = append(b, `,"shed":true`...)
	}
	b = appendTail(b, ctx)
	*p = b
	l.add(b)
	l.bufs.Put(p)
}

// clientParent is the request's traceparent as tracing.Find reads a
// chain's fields: named in any case (Go clients and the HTTP/2 and HTTP/3
// front door do not spell it as the spec does), and none when there are
// two (the spec's invalid).
func clientParent(h *fasthttp.RequestHeader) (tracing.Parent, error) {
	var v []byte
	n := 0
	for k, val := range h.All() {
		if strings.EqualFold(b2s(k), tracing.Header) {
			v, n = val, n+1
		}
	}
	switch n {
	case 0:
		return tracing.Parent{}, tracing.ErrAbsent
	case 1:
		return tracing.Parse(v)
	}
	return tracing.Parent{}, tracing.ErrFormat
}

// sampled reports whether a request's line is written: always when
// must (a server error, a plugin's failure), else by the sample.
func (l *accessLog) sampled(must bool) bool {
	return l.all || must || rand.Uint64() < l.threshold
}

// appendHead opens a line with what every line has: when the request
// came (start), its id ("" when none was made), its trace's id (none
// when zero), who sent the request and what it asked for, the status
// and body length of the answer, and the time d it took.
func appendHead(b []byte, ctx *fasthttp.RequestCtx, start time.Time, d time.Duration, id string, tid trace.TraceID) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, start)
	b = append(b, '"')
	if id != "" {
		b = appendJSONField(b, "id", id)
	}
	if tid.IsValid() {
		b = append(b, `,"trace_id":"`...)
		b = hex.AppendEncode(b, tid[:])
		b = append(b, '"')
	}
	var addr [64]byte
	b = appendJSONField(b, "client", b2s(appendAddr(addr[:0], ctx.RemoteAddr())))
	b = appendJSONField(b, "method", b2s(ctx.Method()))
	b = appendJSONField(b, "host", b2s(ctx.Host()))
	path := ctx.URI().PathOriginal()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if len(path) == 0 || path[0] != '/' || len(path) > 1 && path[1] == '/' {
		// Not an origin-form path: a CONNECT's authority-form target
		// (user:pw@host:443) or one beginning "//" (//user:pw@host/p)
		// may carry userinfo, and a server error is all a reader needs.
		path = nil
	}
	b = appendJSONField(b, "path", b2s(path))
	if len(ctx.URI().QueryString()) > 0 {
		b = append(b, `,"query":true`...)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	if n := sentBytes(&ctx.Response); n >= 0 {
		b = append(b, `,"bytes":`...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, `,"duration_us":`...)
	return strconv.AppendInt(b, d.Microseconds(), 10)
}

// appendTail closes a line with the Cache-Status the client got and the
// request's User-Agent and Referer.
func appendTail(b []byte, ctx *fasthttp.RequestCtx) []byte {
	b = appendCacheStatus(b, &ctx.Response.Header)
	if ua := ctx.Request.Header.UserAgent(); len(ua) > 0 {
		b = appendJSONField(b, "user_agent", b2s(ua))
	}
	if ref := referer(&ctx.Request.Header); len(ref) > 0 {
		b = append(b, `,"referer":"`...)
		b = appendReferer(b, b2s(ref))
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

// appendChain appends what the chain did: the route, the time of each
// phase (request: the plugins' request phases; origin; response: their
// response phases; write: from the chain's end to end, handing the
// response to the server), each plugin that ran with its times, and
// whether one answered.
func (r *accessRecord) appendChain(b []byte, x *exchange, rt *route, end time.Time) []byte {
	c := &x.chain
	ran := c.held[:x.flow.Ran()]
	var req, resp, write time.Duration
	for _, t := range r.calls[:len(ran)] {
		req += t.req
		resp += t.resp
	}
	if !r.last.IsZero() {
		write = end.Sub(r.last)
	}
	b = appendJSONField(b, "route", rt.name)
	b = append(b, `,"phases_us":{"request":`...)
	b = strconv.AppendInt(b, req.Microseconds(), 10)
	b = append(b, `,"origin":`...)
	b = strconv.AppendInt(b, r.origin.Microseconds(), 10)
	b = append(b, `,"response":`...)
	b = strconv.AppendInt(b, resp.Microseconds(), 10)
	b = append(b, `,"write":`...)
	b = strconv.AppendInt(b, write.Microseconds(), 10)
	b = append(b, `},"plugins":[`...)
	for i, l := range ran {
		if i > 0 {
			b = append(b, ',')
		}
		// name@version, as Wedge-Served names it.
		b = append(b, `{"plugin":"`...)
		b = appendJSONChars(b, l.m.Name())
		b = append(b, '@')
		b = appendJSONChars(b, l.m.Version())
		b = append(b, '"')
		b = append(b, `,"request_us":`...)
		b = strconv.AppendInt(b, r.calls[i].req.Microseconds(), 10)
		b = append(b, `,"response_us":`...)
		b = strconv.AppendInt(b, r.calls[i].resp.Microseconds(), 10)
		if c.failed&(1<<min(i, 63)) != 0 {
			b = append(b, `,"failed":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, `],"answered":`...)
	return strconv.AppendBool(b, x.flow.Answered())
}

// appendTime appends t in UTC as RFC 3339 with microseconds, as
// t.UTC().AppendFormat would with "2006-01-02T15:04:05.000000Z07:00" in
// a fraction of its time.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends the last width (at most 8) digits of v >= 0,
// zero-padded.
func appendDigits(b []byte, v, width int) []byte {
	var d [8]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

// sentBytes is the length of the response body handed to the server: -1
// for a streamed one of unknown length.
func sentBytes(r *fasthttp.Response) int {
	if r.IsBodyStream() {
		return max(r.Header.ContentLength(), -1)
	}
	return len(r.Body())
}

// appendCacheStatus appends the response's Cache-Status as the client
// gets it, every field's members in order (RFC 9211: the caches nearer the
// origin first, the edge's own last), as the request's span has it: the
// first field alone named the application's or the regional tier's cache,
// never what the edge's did.
func appendCacheStatus(b []byte, h *fasthttp.ResponseHeader) []byte {
	n := 0
	for k, v := range h.All() {
		if !strings.EqualFold(b2s(k), "Cache-Status") {
			continue
		}
		if n == 0 {
			b = append(b, `,"cache_status":"`...)
		} else {
			b = append(b, ", "...)
		}
		b = appendJSONChars(b, b2s(v))
		n++
	}
	if n > 0 {
		b = append(b, '"')
	}
	return b
}

// referer is the request's Referer field in any case of its name: the
// server keeps names as sent (a proxy in front may lowercase them), where
// fasthttp's Referer() looks for the one spelling.
func referer(h *fasthttp.RequestHeader) []byte {
	for k, v := range h.All() {
		if strings.EqualFold(b2s(k), "Referer") {
			return v
		}
	}
	return nil
}

// appendReferer appends a Referer value, escaped for a JSON string,
// without what may carry a credential: its query and fragment, and
// userinfo ("https://user:pass@host/").
func appendReferer(b []byte, v string) []byte {
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		v = v[:i]
	}
	// The authority follows a scheme-relative value's "//" (checked
	// first: its path may hold "://"), or "scheme://".
	before := "//"
	rest, ok := strings.CutPrefix(v, before)
	if !ok {
		if before, rest, ok = strings.Cut(v, "://"); ok {
			before += "://"
		}
	}
	if ok {
		auth, _, _ := strings.Cut(rest, "/")
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			b = appendJSONChars(b, before)
			v = rest[at+1:]
		}
	}
	return appendJSONChars(b, v)
}

// appendJSONField appends ,"key":"value" with value escaped; key is one
// of this file's, which need no escaping.
func appendJSONField(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

// appendJSONString appends s as a JSON string (RFC 8259).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendJSONChars appends s escaped for the inside of a JSON string:
// quote, backslash and control characters escaped, each byte of invalid
// UTF-8 replaced by U+FFFD, as encoding/json reads such bytes.
func appendJSONChars(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			// A run of what needs no escaping goes in one append.
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < utf8.RuneSelf {
				j++
			}
			b = append(b, s[i:j]...)
			i = j
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
				break
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return b
}
