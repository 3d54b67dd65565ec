package edge_test

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestAccessLogUnroutedTraceID: a line written for a request answered
// before its chain ran carries the client's traceparent if it is valid,
// read as the chain reads it: the field in any case of its name (the
// server keeps names as sent; Go's net/http sends "Traceparent"), and
// none of two fields (invalid, W3C Trace Context). A case-sensitive look
// at the first field missed the one and logged the other.
func TestAccessLogUnroutedTraceID(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	const tp = "00-" + tid + "-00f067aa0ba902b7-01"
	n, logFile, _ := heldNode(t, "sample: 1", 200)

	// A valid traceparent, spelt "Traceparent": unrouted (404).
	if resp, body, _ := rawExchange(t, n.Addr, "GET /capital HTTP/1.1\r\nHost: elsewhere\r\nTraceparent: "+tp+"\r\n\r\n"); resp.StatusCode != 404 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// Two traceparent fields: no valid trace.
	if resp, body, _ := rawExchange(t, n.Addr, "GET /twice HTTP/1.1\r\nHost: elsewhere\r\ntraceparent: "+tp+"\r\ntraceparent: "+tp+"\r\n\r\n"); resp.StatusCode != 404 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	lines := waitAccessLog(t, logFile, 2)
	for _, l := range lines {
		switch l.Path {
		case "/capital":
			if l.TraceID != tid {
				t.Errorf("/capital, valid \"Traceparent\": trace_id %q, want %s", l.TraceID, tid)
			}
		case "/twice":
			if l.TraceID != "" {
				t.Errorf("/twice, two traceparent fields (invalid): trace_id %q, want none", l.TraceID)
			}
		}
	}
}

// TestAccessLogUnroutedTraceIDHTTP2: over HTTP/2 the front door writes
// the field as "Traceparent"; a line of a request refused before its
// chain still has the client's trace.
func TestAccessLogUnroutedTraceIDHTTP2(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	logFile := filepath.Join(t.TempDir(), "access.log")
	s := startTLSStack(t, "", fmt.Sprintf("access_log: {path: %q, sample: 1}\n", logFile))
	h2 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: s.tlsConfig(), ForceAttemptHTTP2: true}}
	defer h2.CloseIdleConnections()
	resp, _ := fetch(t, h2, "POST", "https://"+s.addr+"/up", bytes.Repeat([]byte("x"), 65537),
		"traceparent", "00-"+tid+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 413 || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d, want HTTP/2 413", resp.Proto, resp.StatusCode)
	}
	if l := waitAccessLog(t, logFile, 1)[0]; l.TraceID != tid {
		t.Errorf("HTTP/2 413 with a valid traceparent: trace_id %q, want %s", l.TraceID, tid)
	}
}
