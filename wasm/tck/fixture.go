// Package tck is the ABI v1 conformance kit: a plugin (Plugin, built as
// ./guest) that calls every host function, on its success and its error
// paths, in every phase, and reports each check in the response body; and
// the fixture both sides agree on. The kit runs as Wasm against package wasm
// and natively against sdk/sdktest (tck_test.go), and as Wasm in a live edge
// node over a socket (edge/tck_test.go), so a change to the host, the SDK or
// the edge that breaks the contract fails one of the three. Package tcktest
// is the host's side: configuration, fixture request and origin, checks.
//
// ./rustguest is the same kit in Rust, on the Rust SDK's host calls
// (sdk/rust): the same checks with the same texts, held to the same
// standard and to the Go kit's count of passing checks, as Wasm and in a
// live edge. Its ./probe runs the Rust SDK's JSON scanner, base64 and token
// policy encoder on request bodies, for rust_test.go to compare with the
// Go packages.
//
// Report lines are "PASS <function>: <what>" or "FAIL <function>: <what>:
// <detail>"; Summary parses them.
package tck

import (
	"bufio"
	"bytes"
	"strings"
)

// The request the test sends.
const (
	Method     = "POST"
	Scheme     = "https"
	Host       = "tck.example"
	Path       = "/a/b"
	RawQuery   = "x=1&y=2"
	Proto      = "HTTP/1.1"
	ClientAddr = "192.0.2.1:4242"
	RequestID  = "tck-1"
	Body       = `{"hello":"world"}`
)

// Assigned is what a host assigns a request itself, where a run does not take
// it from the fixture: a live host takes the scheme from its listener and
// the client address from the connection, and gives the request an id of
// its own. It goes in the kit's config as member "assigned". An empty member
// keeps the fixture's value; a RequestID of AnyRequestID accepts any
// non-empty id, since a live host's is not known before the request
// (the test then checks that the host's log records carry the id its
// origin got).
type Assigned struct {
	Scheme     string `json:"scheme,omitempty"`
	ClientAddr string `json:"client_addr,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
}

// AnyRequestID in Assigned.RequestID accepts any non-empty request id.
const AnyRequestID = "*"

// Headers of the request, in order.
var Headers = [][2]string{
	{"Accept", "text/html"},
	{"X-Multi", "one"},
	{"Content-Type", "application/json"},
	{"X-Multi", "two"},
	{"X-Remove-Me", "gone"},
}

// The origin's response.
const (
	OriginStatus = 201
	OriginBody   = "origin body"
)

// OriginHeaders are the origin response's headers.
var OriginHeaders = [][2]string{{"X-Origin", "yes"}, {"Cache-Control", "max-age=60"}}

// What the kit changes, for the host side to check.
const (
	RewrittenPath   = "/rewritten"
	RewrittenMethod = "PUT"
	RequestBody     = "replaced body"
	FinalStatus     = 299
	CacheKey        = "tck-key"
	RevalidateKey   = "tck-reval"
	CacheMeta       = "tck-meta"
	ForwardKey      = "tck.fwd"
	ForwardValue    = "alice"
	LogMessage      = "tck log"
	MaxBodySize     = 64 << 10 // the host limit the kit tests body_set against
	GaugeValue      = -5
)

// Summary splits a report into passes and failures and lists the host
// functions it exercised.
func Summary(report []byte) (passed int, failures []string, funcs map[string]bool) {
	funcs = map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(report))
	for sc.Scan() {
		line := sc.Text()
		status, rest, _ := strings.Cut(line, " ")
		fn, _, _ := strings.Cut(rest, ":")
		funcs[fn] = true
		switch status {
		case "PASS":
			passed++
		default:
			failures = append(failures, line)
		}
	}
	return passed, failures, funcs
}
