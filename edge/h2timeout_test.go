package edge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/talowa/wedge/internal/testutil"
)

// TestFrontDoorStreamsOutliveTimeouts: over HTTP/2 and HTTP/3, as over
// HTTP/1.1, read_timeout and write_timeout bound a stall of a streamed
// body, not the whole of it: an upload that keeps coming and an event
// stream that keeps going both last longer than either timeout.
func TestFrontDoorStreamsOutliveTimeouts(t *testing.T) {
	// Two seconds against a client pausing 0.2 s: a busy machine would
	// have to stretch a pause by 1.8 s to fail the upload.
	const timeout = 2 * time.Second
	s := startTLSStack(t, fmt.Sprintf("max_body_bytes: 262144, stream_threshold: 16384, read_timeout: %s, write_timeout: %s",
		timeout, timeout), "  http3: {enabled: true}\n")
	h3 := &http3.Transport{TLSClientConfig: s.tlsConfig()}
	t.Cleanup(func() { h3.Close() })
	h2 := &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}
	t.Cleanup(h2.CloseIdleConnections)
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"h2", h2}, {"h3", h3}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			client := &http.Client{Timeout: time.Minute, Transport: c.rt}
			base := "https://" + s.addr

			// An upload in pieces, a tenth of read_timeout apart, for
			// one and a half times read_timeout.
			const pieces = 15
			pr, pw := io.Pipe()
			go func() {
				for range pieces {
					if _, err := pw.Write([]byte(strings.Repeat("x", 2000))); err != nil {
						return
					}
					time.Sleep(timeout / 10) // a client's pace
				}
				pw.Close()
			}()
			resp, err := client.Post(base+"/up", "text/plain", pr)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("app: POST /up body=%d", pieces*2000); string(got) != want {
				t.Fatalf("upload: %s %d %q, want %q", resp.Proto, resp.StatusCode, got, want)
			}

			// An upload that stalls past read_timeout fails (502: the
			// origin had its head already) long before the client gives up.
			pr, pw = io.Pipe()
			defer pw.Close()
			go pw.Write([]byte(strings.Repeat("x", 20000)))
			rctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, "POST", base+"/up", pr)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Fatal("a stalled upload: 200")
				}
			} else if rctx.Err() != nil {
				t.Fatalf("a stalled upload: %v: the node never timed it out", err)
			}
			s.seen()

			// An event stream whose second event comes after more than
			// write_timeout.
			start := time.Now()
			resp, err = client.Get(base + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || line != "data: 1\n" {
				t.Fatalf("first event %q %v", line, err)
			}
			testutil.Eventually(t, time.Minute, "write_timeout passing", func() bool { return time.Since(start) > 2*timeout })
			s.release <- struct{}{}
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "\ndata: 2\n\n" {
				t.Fatalf("the rest of the stream after write_timeout: %q %v", rest, err)
			}
		})
	}
}

// TestHTTP3MaxConns: max_conns bounds QUIC connections as it bounds TCP
// ones: past it the node closes a new one (H3_EXCESSIVE_LOAD), and takes
// one again once another has gone.
func TestHTTP3MaxConns(t *testing.T) {
	s := startTLSStack(t, "max_header_bytes: 4096, max_body_bytes: 65536, max_conns: 1", "  http3: {enabled: true}\n")
	cfg := s.tlsConfig()
	cfg.NextProtos = []string{http3.NextProtoH3}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	get := func(conn *quic.Conn) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+s.addr+"/hello", nil)
		resp, err := (&http3.Transport{}).NewClientConn(conn).RoundTrip(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// closedByNode reports whether err is the node's H3_EXCESSIVE_LOAD,
	// which goes as QUIC's APPLICATION_ERROR while the handshake is not
	// yet confirmed (RFC 9000, section 10.2.3).
	closedByNode := func(err error) bool {
		var ae *quic.ApplicationError
		var te *quic.TransportError
		return errors.As(err, &ae) && ae.ErrorCode == quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad) && ae.Remote ||
			errors.As(err, &te) && te.ErrorCode == quic.ApplicationErrorErrorCode && te.Remote
	}
	first, err := quic.DialAddr(ctx, s.addr, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.CloseWithError(0, "")
	if err := get(first); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	// The node may close the second before or after its handshake ends.
	second, err := quic.DialAddr(ctx, s.addr, cfg, nil)
	if err == nil {
		defer second.CloseWithError(0, "")
		testutil.Eventually(t, time.Minute, "the node closing the second connection", func() bool { return second.Context().Err() != nil })
		err = context.Cause(second.Context())
	}
	if !closedByNode(err) {
		t.Fatalf("the second connection: %v, want the node's H3_EXCESSIVE_LOAD", err)
	}
	first.CloseWithError(0, "")
	testutil.Eventually(t, time.Minute, "a connection served after the first closed", func() bool {
		c, err := quic.DialAddr(ctx, s.addr, cfg, nil)
		if err != nil {
			if !closedByNode(err) {
				t.Fatalf("a connection after the first closed: %v", err)
			}
			return false
		}
		defer c.CloseWithError(0, "")
		return get(c) == nil
	})
}
