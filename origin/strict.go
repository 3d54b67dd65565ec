package origin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/connwatch"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
)

// strictTransport is the fasthttp.RoundTripper of the upstream pools. It
// keeps fasthttp's connection pool and request writing and reads responses
// more strictly than fasthttp does, so that nothing an application sends
// can become the answer to another request:
//
//   - the header block is checked before fasthttp parses it
//     (checkResponseHeader): framing that two parsers could read two ways
//     is refused;
//   - interim (1xx) responses are read here, not by fasthttp, and handed
//     to the envelope;
//   - a connection goes back to the pool only if nothing is left in the
//     reader after the response; connwatch checks the socket itself before
//     the next request goes out on it.
//
// Failures are *upstreamError values with the reason the edge's client
// sees.
type strictTransport struct{}

// interimKey is the fasthttp.Request user value under which forward passes
// the wire.Response that interim responses go into.
type interimKey struct{}

// abortKey is the fasthttp.Request user value under which forward passes
// the exchange's *connwatch.Abort (server.go), which closes the upstream
// connection when the edge hangs up.
type abortKey struct{}

// Bounds on the interim responses of one exchange: how many are read
// before the response is refused, and how many header bytes of them are
// passed on (the rest are dropped, whole). Only wire.MaxInterim travel.
const (
	maxInterimRead  = 32
	maxInterimBytes = 16 << 10
)

// upstreamError is a response refused for how it was framed or formed.
// Its reason goes to the edge as the 502's Error; nothing about the
// connection it came on can be trusted, so the connection is closed.
type upstreamError struct{ reason string }

func (e *upstreamError) Error() string { return "origin: " + e.reason }

func invalid(detail string) *upstreamError {
	return &upstreamError{"upstream sent an invalid response: " + detail}
}

var (
	errBareLF         = invalid("bare LF in the header")
	errBareCR         = invalid("bare CR in the header")
	errFold           = invalid("obsolete line folding in the header")
	errStatusLine     = invalid("malformed status line")
	errFieldLine      = invalid("malformed header field")
	errLength         = invalid("invalid or conflicting Content-Length")
	errCoding         = invalid("transfer coding other than chunked")
	errEncodings      = invalid("Content-Encoding repeated")
	errLengthAndCode  = invalid("both Content-Length and Transfer-Encoding")
	errHeaderTooLarge = invalid("header too large")
	errSwitch         = invalid("101 Switching Protocols, not asked for")
	errTooManyInterim = invalid("too many interim responses")
	errTrailing       = invalid("bytes past the end of the response")
)

// RoundTrip is fasthttp's transport.RoundTrip without body streaming, with
// the checks above; a streamed request body is written while the answer is
// read (exchangeStream.roundTrip). retry tells HostClient.Do whether the
// request may be sent again; RetryIfErr has the last word.
func (strictTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	timeout := req.GetTimeOut()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	sink, _ := req.UserValue(interimKey{}).(*wire.Response)
	if sink != nil {
		sink.Interim = sink.Interim[:0]
	}
	st, _ := req.UserValue(streamKey{}).(*exchangeStream) // stream.go
	ab, _ := req.UserValue(abortKey{}).(*connwatch.Abort)
	for {
		cc, err := hc.AcquireConn(timeout, req.ConnectionClose())
		if err != nil {
			return false, err
		}
		conn := cc.Conn()
		if !ab.Attach(conn) {
			hc.CloseConn(cc)
			return false, context.Canceled
		}
		if st.sendsBody() {
			// A streamed body cannot be written twice: a pooled
			// connection the upstream closed meanwhile is found now, not
			// by the write that would have taken the body's first piece.
			if err := connwatch.Check(conn); err != nil {
				hc.CloseConn(cc)
				continue
			}
		}
		st.sending(conn)
		resp.ParseNetConn(conn)
		if err := conn.SetDeadline(deadline); err != nil {
			hc.CloseConn(cc)
			return true, err
		}
		if hc.DisableHeaderNamesNormalizing {
			resp.Header.DisableNormalizing()
		}
		var keep, early bool
		var br *bufio.Reader
		if st.sendsBody() {
			br = hc.AcquireReader(conn)
			keep, early, err = st.roundTrip(hc, conn, br, req, resp, hc.MaxResponseBodySize, sink) // stream.go
		} else {
			bw := hc.AcquireWriter(conn)
			err = req.Write(bw)
			if err == nil {
				err = bw.Flush()
			}
			hc.ReleaseWriter(bw)
			if err != nil {
				hc.CloseConn(cc)
				if errors.Is(err, connwatch.ErrStale) {
					// Nothing went out. Each stale connection found is
					// closed, and a fresh one is never stale (connwatch
					// checks only after a read), so this ends by the pool's
					// size.
					continue
				}
				if isTimeout(err) {
					err = fasthttp.ErrTimeout
				}
				return true, err
			}
			br = hc.AcquireReader(conn)
			keep, err = readResponse(br, req.Header.IsHead(), resp, hc.MaxResponseBodySize, sink, st)
		}
		if err == nil && st.handing() {
			// The body is read as the edge takes it, from the connection.
			// Detached now: ab is the pooled job's, another exchange's
			// once the stream is handed over, before the body has gone.
			reuse := !early && !req.ConnectionClose() && !resp.ConnectionClose() && ab.Detach()
			st.take(conn, br, func(keep bool) {
				hc.ReleaseReader(br)
				if keep && reuse {
					hc.ReleaseConn(cc)
				} else {
					hc.CloseConn(cc)
				}
			}, resp)
			return false, nil
		}
		hc.ReleaseReader(br)
		if err != nil {
			hc.CloseConn(cc)
			var ue *upstreamError
			// The same bytes would come again: the proxy decides whether
			// another upstream gets the request.
			return !errors.As(err, &ue) && !errors.Is(err, fasthttp.ErrBodyTooLarge), err
		}
		// Once back in the pool the connection is another exchange's.
		if !keep || req.ConnectionClose() || resp.ConnectionClose() || !ab.Detach() {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return false, nil
	}
}

// readResponse reads interim responses into sink (if not nil) and the
// final response into resp, and reports whether the connection may carry
// another request.
//
// RFC 9112 §6.3 ends a response to HEAD, and a 204 or 304, at its header
// whatever its fields say, so such a response is passed on; anything after
// it belongs to no request, and the connection is closed rather than
// reused, as it is when such a response announces a body (chunked, or a
// 204 with a length) that may still come. After a response with a body,
// bytes already there mean the application sent more than it framed:
// which of the two readings it meant cannot be known, and a cache must
// store neither, so the response is refused. Bytes that come later are
// found by connwatch when the connection is next used.
func readResponse(br *bufio.Reader, head bool, resp *fasthttp.Response, maxBody int, sink *wire.Response, st *exchangeStream) (keep bool, err error) {
	interimBytes := 0
	var info headerInfo
	for n := 0; ; n++ {
		block, err := peekHeader(br)
		if err != nil {
			return false, err
		}
		if info, err = checkResponseHeader(block); err != nil {
			return false, err
		}
		if info.status >= 200 {
			break
		}
		switch {
		case info.status == fasthttp.StatusSwitchingProtocols:
			return false, errSwitch
		case n >= maxInterimRead:
			return false, errTooManyInterim
		case info.status != fasthttp.StatusContinue && sink != nil &&
			len(sink.Interim) < wire.MaxInterim && interimBytes+len(block) <= maxInterimBytes:
			// 100 Continue answers an Expect of this hop; anything else
			// informational goes on to the client.
			interimBytes += len(block)
			addInterim(sink, info.status, block)
		}
		if _, err := br.Discard(len(block)); err != nil {
			return false, err
		}
	}
	// The final header block is checked and still buffered: fasthttp
	// parses the same bytes.
	bodiless := head
	if bodiless || st.wants(info, bodiless || info.status == fasthttp.StatusNoContent || info.status == fasthttp.StatusNotModified) {
		// A body handed over is read from br later (stream.go).
		resp.SkipBody = true
	}
	if err := resp.ReadLimitBody(br, maxBody); err != nil {
		return false, err
	}
	if st.handing() {
		return false, nil
	}
	bodiless = bodiless || info.status == fasthttp.StatusNoContent || info.status == fasthttp.StatusNotModified
	switch {
	case br.Buffered() > 0 && !bodiless:
		return false, errTrailing
	case br.Buffered() > 0:
		return false, nil
	case bodiless && (info.chunked || info.status == fasthttp.StatusNoContent && info.length > 0):
		return false, nil
	}
	return true, nil
}

var crlfcrlf = []byte("\r\n\r\n")

// peekHeader returns the next header block, up to and including its empty
// line, from br's buffer without consuming it. A block larger than the
// buffer is refused.
func peekHeader(br *bufio.Reader) ([]byte, error) {
	scanned := 0
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b[max(scanned-3, 0):], crlfcrlf); i >= 0 {
			return b[:max(scanned-3, 0)+i+4], nil
		}
		// A block ended by bare LFs would never be found above and be read
		// on to the end of the buffer: refuse it as soon as one is there.
		for i := scanned; i < len(b); i++ {
			if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
				return nil, errBareLF
			}
		}
		scanned = len(b)
		if scanned >= br.Size() {
			return nil, errHeaderTooLarge
		}
		if _, err := br.Peek(scanned + 1); err != nil {
			if errors.Is(err, io.EOF) && scanned > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// headerInfo is what checkResponseHeader learns of a header block.
type headerInfo struct {
	status  int
	length  int64 // Content-Length, or -1 when there is none
	chunked bool
}

// checkResponseHeader checks a response header block (status line, field
// lines, empty line) more strictly than fasthttp reads one, refusing what
// a parser before or after this one could read differently:
//
//   - a line not ended by CRLF, or a CR anywhere else (RFC 9112 §2.2 lets a
//     recipient take a bare LF as a line end; fasthttp does only sometimes,
//     and one that does not sees two fields where the other sees one);
//   - obs-fold (RFC 9112 §5.2 allows unfolding or refusing);
//   - a status line that is not HTTP/1.x and a three-digit status;
//   - a NUL anywhere; a field line without a colon, with an empty name or
//     one holding a control character, or with white space before the
//     colon (RFC 9112 §5.1);
//   - Content-Length that is not digits, or several that differ (a list
//     of identical values is refused too, which §6.3 allows);
//   - Transfer-Encoding other than exactly chunked (fasthttp decodes no
//     other coding), on an HTTP/1.0 response (§6.1: faulty framing), or
//     together with Content-Length (§6.1: a proxy must not forward both,
//     and it is how responses are smuggled).
//
// Field names that are not tokens pass here and are dropped from the
// envelope later (copyUpstream), as before.
func checkResponseHeader(block []byte) (headerInfo, error) {
	info := headerInfo{length: -1}
	if i := bytes.Index(block, crlfcrlf); i < 0 || i != len(block)-len(crlfcrlf) {
		// Not one block: it must end at its first empty line.
		return info, errFieldLine
	}
	for i, c := range block {
		switch {
		case c == '\n' && (i == 0 || block[i-1] != '\r'):
			return info, errBareLF
		case c == '\r' && (i+1 == len(block) || block[i+1] != '\n'):
			return info, errBareCR
		case c == 0:
			return info, errFieldLine
		}
	}
	line, rest := cutLine(block)
	// HTTP-version SP status-code [SP reason-phrase]; "HTTP/1.1 200" with
	// no space after the code is common enough to take.
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || !isDigit(line[7]) || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) || (len(line) > 12 && line[12] != ' ') {
		return info, errStatusLine
	}
	http10 := line[7] == '0'
	info.status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if info.status < 100 {
		return info, errStatusLine
	}
	te, encoded := false, false
	for len(rest) > 2 {
		line, rest = cutLine(rest)
		if line[0] == ' ' || line[0] == '\t' {
			return info, errFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[colon-1] == ' ' || line[colon-1] == '\t' {
			return info, errFieldLine
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range name {
			if c < ' ' || c == 0x7f {
				return info, errFieldLine
			}
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || (info.length >= 0 && n != info.length) {
				return info, errLength
			}
			info.length = n
		case asciiEqualFold(name, "content-encoding"):
			// fasthttp keeps the last field alone: gzip then deflate
			// reached the client as deflate over gzip bytes, which it
			// cannot decode. One field with a list is kept whole.
			if encoded {
				return info, errEncodings
			}
			encoded = true
		case asciiEqualFold(name, "transfer-encoding"):
			te = true
			for len(value) > 0 {
				var coding []byte
				if coding, value = cutItem(value, ','); len(coding) == 0 {
					continue
				}
				if !asciiEqualFold(coding, "chunked") || info.chunked {
					return info, errCoding
				}
				info.chunked = true
			}
		}
	}
	switch {
	case te && (!info.chunked || http10):
		return info, errCoding
	case te && info.length >= 0:
		return info, errLengthAndCode
	}
	return info, nil
}

// cutLine splits the first CRLF-ended line, without its CRLF, off b.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.Index(b, crlfcrlf[:2])
	return b[:i], b[i+2:]
}

// parseLength reads a Content-Length value: 1*DIGIT, at most 18 of them
// so it cannot overflow.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// addInterim appends an interim response with the end-to-end fields of its
// header block, checked already, to sink.
func addInterim(sink *wire.Response, status int, block []byte) {
	in := sink.AddInterim(uint64(status))
	_, fields := cutLine(block)
	for rest := fields; len(rest) > 2; {
		var line []byte
		line, rest = cutLine(rest)
		colon := bytes.IndexByte(line, ':')
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !abi.ValidToken(name) || !abi.ValidHeaderValue(value) || wire.HopByHop(name) || asciiEqualFold(name, "content-length") ||
			connectionListed(fields, name) {
			continue
		}
		if len(in.Header) == wire.MaxFields {
			// Hints, not the answer: the rest are dropped rather than the
			// envelope refused by the edge's decoder.
			break
		}
		in.AddHeader(name, value)
	}
}

// connectionListed reports whether the Connection fields among the field
// lines of a checked header block name name.
func connectionListed(fields, name []byte) bool {
	for rest := fields; len(rest) > 2; {
		var line []byte
		line, rest = cutLine(rest)
		colon := bytes.IndexByte(line, ':')
		if asciiEqualFold(line[:colon], "connection") && hasToken(trimOWS(line[colon+1:]), name) {
			return true
		}
	}
	return false
}
