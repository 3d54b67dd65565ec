package originclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/internal/connx"
	"github.com/talowa/wedge/origin/wire"
)

// Tunnel opens a connection of its own to the origin and sends req on it
// as a tunnel's handshake (wire.TunnelPath), sealed like any request but
// with the tunnel flag, so it opens as nothing else (an origin that
// predates the flag refuses it with 400, unknown flags 0x4), then
// opens the origin's answer into resp, all by deadline. When resp.Status
// is 101 the tunnel is open: the returned connection carries its bytes
// from then on, raw, and the caller closes it. Any other answer, or an
// error, returns no connection. Errors are Do's, and Status maps them the
// same way; the attempt counts for the circuit breaker as an exchange does,
// and is never retried (the application may have seen the handshake).
func (c *Client) Tunnel(deadline time.Time, req *wire.Request, resp *wire.Response) (net.Conn, error) {
	var (
		conn net.Conn
		cls  class
		err  error
	)
	_, _ = c.br.cb.Execute(func() (struct{}, error) {
		conn, cls, err = c.handshake(deadline, req, resp)
		return struct{}{}, c.br.verdict(cls)
	})
	if cls == clsNotRun {
		return nil, ErrBreakerOpen
	}
	if err != nil {
		c.m.errors[cls.kind(err)].Inc()
	}
	return conn, err
}

// handshake is one tunnel handshake: dial, send the frame, read the answer.
func (c *Client) handshake(deadline time.Time, req *wire.Request, resp *wire.Response) (net.Conn, class, error) {
	budget := time.Until(deadline)
	if budget < time.Microsecond {
		return nil, clsTimeout, ErrTimeout
	}
	req.Timeout = uint64(budget / time.Microsecond)
	frame, x, err := c.codec.AppendTunnelRequest(nil, req)
	if err != nil {
		return nil, clsBadRequest, fmt.Errorf("originclient: seal tunnel request: %w", err)
	}
	conn, err := c.dialTunnel(deadline)
	if err != nil {
		return nil, clsDial, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, clsTransport, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	host, _, _ := net.SplitHostPort(c.hc.Addr)
	head := "POST " + wire.TunnelPath + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + contentType +
		"\r\nContent-Length: " + strconv.Itoa(len(frame)) + "\r\n\r\n"
	if _, err := conn.Write(append([]byte(head), frame...)); err != nil {
		return c.tunnelFailure(err, deadline)
	}
	c.m.sentWire.Add(float64(len(frame)))
	c.m.sentCBOR.Add(float64(x.Size))
	br := bufio.NewReader(conn)
	hr, err := http.ReadResponse(br, nil)
	if err != nil {
		return c.tunnelFailure(err, deadline)
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, int64(c.codec.MaxEnvelope())+1))
	hr.Body.Close()
	if err != nil {
		return c.tunnelFailure(err, deadline)
	}
	c.m.recvWire.Add(float64(len(body)))
	if hr.StatusCode != fasthttp.StatusOK {
		cls, err := refusal(hr.StatusCode, body)
		return nil, cls, err
	}
	if len(body) > c.codec.MaxEnvelope() {
		return nil, clsTooLarge, fmt.Errorf("originclient: tunnel response from %s: %w", c.name, wire.ErrTooLarge)
	}
	n, err := c.codec.DecodeResponse(body, x, resp)
	c.m.recvCBOR.Add(float64(n))
	if err != nil {
		return nil, clsBadResponse, fmt.Errorf("originclient: tunnel response from %s: %w", c.name, err)
	}
	switch {
	case resp.OriginDown():
		return nil, clsOriginDown, nil
	case resp.Status != fasthttp.StatusSwitchingProtocols:
		return nil, clsOK, nil
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, clsTransport, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	ok = true
	return &connx.Buffered{Conn: conn, R: br}, clsOK, nil
}

// tunnelFailure classes a handshake's broken connection: a timeout when
// the deadline has passed.
func (c *Client) tunnelFailure(err error, deadline time.Time) (net.Conn, class, error) {
	if !time.Now().Before(deadline) {
		return nil, clsTimeout, ErrTimeout
	}
	return nil, clsTransport, fmt.Errorf("%w: %w", ErrTransport, err)
}

// dialTunnel opens a connection for one tunnel, with TLS when the client
// speaks it. It is not pooled nor watched (connwatch): it carries a
// tunnel's bytes both ways at any time.
func (c *Client) dialTunnel(deadline time.Time) (net.Conn, error) {
	var (
		conn net.Conn
		err  error
	)
	if c.dialFn != nil {
		conn, err = c.dialFn(c.hc.Addr)
	} else {
		d := net.Dialer{Deadline: deadline}
		conn, err = d.Dial("tcp", c.hc.Addr)
	}
	if err != nil {
		return nil, err
	}
	if c.tls == nil {
		return conn, nil
	}
	tc := tls.Client(conn, c.tls)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}
