package httpcache

import (
	"bytes"
	"strings"
	"time"
)

// ExplicitlyFresh reports whether a response, whose n header fields
// field(i) returns, says itself that a shared cache may reuse it now: a lifetime
// from s-maxage or max-age in the first targeted field it has (RFC 9213),
// or else in Cache-Control, or else from Expires against Date (or now),
// longer than its Age. It is for handing one client's response to
// another's concurrent request, which RFC 9111 §4 allows only for a fresh
// response: a response without a lifetime of its own (an API's answer that
// depends on a credential or an address the request key does not hold) is
// never handed on, not even on a heuristic (§4.2.2). Whether the response
// may be stored at all (private, no-store, Set-Cookie) is the caller's to
// check. Apart from a targeted field's, which is rare, it does not
// allocate.
func ExplicitlyFresh(n int, field func(i int) (name, value []byte), now time.Time) bool {
	lifetime, maxAge, sMaxAge := time.Duration(-1), int64(Absent), int64(Absent)
	var expires, date []byte
	nExpires, age, target := 0, int64(0), len(TargetList)
	for i := range n {
		name, value := field(i)
		switch {
		case equalFold(name, "Cache-Control"):
			ccDeltas(value, &maxAge, &sMaxAge)
		case equalFold(name, "Expires"):
			expires, nExpires = value, nExpires+1
		case equalFold(name, "Date"):
			date = value
		case equalFold(name, "Age"):
			first, _, _ := bytes.Cut(value, []byte{','})
			if n, ok := ParseDelta(TrimOWS(string(first))); ok {
				age = n
			}
		default:
			for i, t := range TargetList[:target] {
				if equalFold(name, t) {
					target = i
				}
			}
		}
	}
	switch {
	case target < len(TargetList):
		var lines []string
		for i := range n {
			if name, value := field(i); equalFold(name, TargetList[target]) {
				lines = append(lines, string(value))
			}
		}
		// An unparsable targeted field is ignored (RFC 9213 §2.1), and
		// only then does Cache-Control count.
		if d, ok := ParseTargeted(lines); ok {
			lifetime = deltaLifetime(d.MaxAge, d.SMaxAge)
			break
		}
		fallthrough
	default:
		lifetime = deltaLifetime(maxAge, sMaxAge)
		if lifetime < 0 && nExpires == 1 {
			// §4.2.1: several Expires leave it stale; §5.3: an invalid
			// one is in the past.
			exp, ok := ParseHTTPDate(TrimOWS(string(expires)))
			d, dok := ParseHTTPDate(TrimOWS(string(date)))
			if !dok {
				d = now
			}
			if lifetime = 0; ok {
				lifetime = exp.Sub(d)
			}
		}
	}
	return lifetime > time.Duration(age)*time.Second
}

// deltaLifetime is the lifetime s-maxage, or else max-age, gives; -1 for
// neither.
func deltaLifetime(maxAge, sMaxAge int64) time.Duration {
	switch {
	case sMaxAge != Absent:
		return time.Duration(sMaxAge) * time.Second
	case maxAge != Absent:
		return time.Duration(maxAge) * time.Second
	}
	return -1
}

// ccDeltas reads max-age and s-maxage from a Cache-Control value into
// maxAge and sMaxAge; a directive given twice keeps the lower value, and
// an invalid value counts as 0 (RFC 9111 §4.2.1: stale).
func ccDeltas(v []byte, maxAge, sMaxAge *int64) {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte{','})
		name, val, _ := bytes.Cut(item, []byte{'='})
		var dst *int64
		switch n := TrimOWS(string(name)); {
		case strings.EqualFold(n, "max-age"):
			dst = maxAge
		case strings.EqualFold(n, "s-maxage"):
			dst = sMaxAge
		default:
			continue
		}
		d, ok := ParseDelta(strings.Trim(TrimOWS(string(val)), `"`))
		if !ok {
			d = 0
		}
		if *dst == Absent || d < *dst {
			*dst = d
		}
	}
}

func equalFold(b []byte, s string) bool { return len(b) == len(s) && strings.EqualFold(string(b), s) }
