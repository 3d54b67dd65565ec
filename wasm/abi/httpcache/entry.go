package httpcache

import (
	"strconv"
	"strings"
	"unsafe"
)

// view is b as a string without a copy. The caller guarantees b does not
// change while the string is in use: a per-instance buffer that is only
// rewritten by the next call, or a slice nothing else holds.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Meta is what the plugin stores beside a cached response: the policy the
// response came with, so a lookup decides freshness without reading the
// stored headers (which stay in the host), the validators for conditional
// requests, and the Vary bookkeeping.
//
// Encoded as "wc1" then "key=value" lines. Header values never hold a
// newline (the host refuses control characters), so no escaping is needed;
// the variant string uses NUL and 0x01 as separators for the same reason.
type Meta struct {
	InitialAge     int64 // ms: corrected_initial_age at store time (RFC 9111 §4.2.3)
	Lifetime       int64 // ms: freshness lifetime (§4.2.1)
	NoCache        bool  // always validate (§5.2.2.4)
	MustRevalidate bool  // no stale use (§5.2.2.2, .8, .10)
	SWR, SIE       int64 // seconds, stale-while-revalidate and stale-if-error windows; 0 none
	ETag, LastMod  string
	VaryNames      string // normalised Vary, "" without one
	Variant        string // this entry's values of the Vary'd request headers
	Gen            string // generation of the primary entry its variants hang off
}

// Meta and State are both records: a first line that says which, then
// "key=value" lines. These write and read one line of either.

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, '=')
	b = append(b, v...)
	return append(b, '\n')
}

func appendIntField(b []byte, k string, v int64) []byte {
	b = append(b, k...)
	b = append(b, '=')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '\n')
}

// appendSetField writes a field only when it has a value: a reader finds
// an absent field as the zero value anyway.
func appendSetField(b []byte, k, v string) []byte {
	if v == "" {
		return b
	}
	return appendField(b, k, v)
}

// nextField splits the first line off rest (skipping empty ones) into its
// key and value. A loop over IndexByte rather than strings.SplitSeq: the
// host decodes a Meta on every lookup, and the iterator costs a third of it.
func nextField(rest string) (k, v, tail string, ok bool) {
	for rest != "" {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if line != "" {
			k, v, _ = strings.Cut(line, "=")
			return k, v, rest, true
		}
	}
	return "", "", "", false
}

// Encode renders m as DecodeMeta reads it.
func (m *Meta) Encode() []byte {
	b := []byte("wc1\n")
	b = appendIntField(b, "ia", m.InitialAge)
	b = appendIntField(b, "lt", m.Lifetime)
	flags := ""
	if m.NoCache {
		flags += "n"
	}
	if m.MustRevalidate {
		flags += "m"
	}
	b = appendSetField(b, "f", flags)
	if m.SWR > 0 {
		b = appendIntField(b, "swr", m.SWR)
	}
	if m.SIE > 0 {
		b = appendIntField(b, "sie", m.SIE)
	}
	b = appendSetField(b, "et", m.ETag)
	b = appendSetField(b, "lm", m.LastMod)
	b = appendSetField(b, "vn", m.VaryNames)
	b = appendSetField(b, "vv", m.Variant)
	return appendSetField(b, "g", m.Gen)
}

// DecodeMeta parses meta; ok is false for anything this version did not
// write, which is then treated as a miss. The strings in m share b's
// memory, so b must not change afterwards: callers pass the fresh slice
// sdk.CacheLookup returned, or the host its immutable stored copy, which
// saves a copy on every lookup.
func DecodeMeta(b []byte) (m Meta, ok bool) {
	s := view(b)
	rest, found := strings.CutPrefix(s, "wc1\n")
	if !found {
		return m, false
	}
	for {
		k, v, tail, more := nextField(rest)
		if !more {
			break
		}
		rest = tail
		n := func() int64 {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				ok = false
			}
			return x
		}
		ok = true
		switch k {
		case "ia":
			m.InitialAge = n()
		case "lt":
			m.Lifetime = n()
		case "f":
			m.NoCache, m.MustRevalidate = strings.Contains(v, "n"), strings.Contains(v, "m")
		case "swr":
			m.SWR = n()
		case "sie":
			m.SIE = n()
		case "et":
			m.ETag = v
		case "lm":
			m.LastMod = v
		case "vn":
			m.VaryNames = v
		case "vv":
			m.Variant = v
		case "g":
			m.Gen = v
		}
		if !ok {
			return m, false
		}
	}
	return m, true
}

// State carries what the request phase learned to the response phase, in a
// request-scoped value: the two phases may run on different instances.
type State struct {
	Mode       byte   // see mode* below
	Fwd        string // RFC 9211 fwd reason
	NoStore    bool   // the request said no-store (§5.2.1.5)
	ClientCond bool   // the client sent its own conditionals
	ReqTime    int64  // ms, when the request phase ran: request_time of §4.2.3
	ReqSIE     int64  // the request's stale-if-error, seconds
	EntryKey   string // the stored response being revalidated, if any
	// The primary entry as the lookup found it, to place a new variant.
	Primary      bool
	PrimaryNames string
	PrimaryVar   string
	PrimaryGen   string
}

// A hit saves no state, except one that asked for a background
// revalidation (hitState): the state it saved for that copy of the request
// must not be found by its own response phase.
const (
	ModeHit     = 'h' // answered from cache
	ModeForward = 'f' // a cacheable request that went to the origin
	ModeUnsafe  = 'u' // an unsafe method: invalidate on success
	ModeBypass  = 'b' // nothing to do but say so
	ModeAnswer  = 'a' // answered without the cache (504)
)

// HitState is what a hit that asked for a background revalidation saves
// after the call: it replaces the forwarding state saved for the host's
// copy of the request, so the hit's own response phase passes through.
const HitState = string(ModeHit) + "\n"

// Encode renders s as "<mode>\n" then "key=value" lines.
func (s *State) Encode() string { return string(s.AppendTo(nil)) }

// DecodeState parses what State.Encode wrote; ok is false for a value of
// another shape.
func DecodeState(v string) (s State, ok bool) {
	if len(v) < 2 || v[1] != '\n' {
		return s, false
	}
	s.Mode = v[0]
	for rest := v[2:]; ; {
		k, val, tail, more := nextField(rest)
		if !more {
			break
		}
		rest = tail
		switch k {
		case "fwd":
			s.Fwd = val
		case "ns":
			s.NoStore = true
		case "cc":
			s.ClientCond = true
		case "rt":
			s.ReqTime, _ = strconv.ParseInt(val, 10, 64)
		case "sie":
			s.ReqSIE, _ = strconv.ParseInt(val, 10, 64)
		case "ek":
			s.EntryKey = val
		case "p":
			s.Primary = true
		case "pn":
			s.PrimaryNames = val
		case "pv":
			s.PrimaryVar = val
		case "pg":
			s.PrimaryGen = val
		}
	}
	return s, true
}

// StateKey names the request-scoped value that carries State from the
// request phase to the response phase.
const StateKey = "cache.state"

// AppendTo appends s.Encode() to dst.
func (s *State) AppendTo(dst []byte) []byte {
	dst = append(dst, s.Mode, '\n')
	dst = appendField(dst, "fwd", s.Fwd)
	if s.NoStore {
		dst = appendField(dst, "ns", "1")
	}
	if s.ClientCond {
		dst = appendField(dst, "cc", "1")
	}
	dst = appendIntField(dst, "rt", s.ReqTime)
	if s.ReqSIE > 0 {
		dst = appendIntField(dst, "sie", s.ReqSIE)
	}
	dst = appendSetField(dst, "ek", s.EntryKey)
	if s.Primary {
		dst = appendField(dst, "p", "1")
		dst = appendField(dst, "pn", s.PrimaryNames)
		dst = appendField(dst, "pv", s.PrimaryVar)
		dst = appendField(dst, "pg", s.PrimaryGen)
	}
	return dst
}

// PragmaNoCache reports whether Pragma field lines hold no-cache, which
// counts only in a request without Cache-Control (RFC 9111 §5.4).
func PragmaNoCache(lines []string) bool {
	found := false
	for _, l := range lines {
		SplitList(l, func(m string) { found = found || strings.EqualFold(m, "no-cache") })
	}
	return found
}

// What cache_request returns, as flags: whether the host answered, and
// what the plugin counts.
const (
	// Answered: the host answered the request (a hit, a 304 to the
	// client's conditional, a range of a hit, or a 504 for only-if-cached
	// without a usable entry); the plugin returns Answer. Without it the
	// request goes to the origin and the response phase finds the State.
	Answered = 1 << iota
	// Hit: the answer came from the cache.
	Hit
	// Forward: the request goes to the origin for this cache (a miss, or a
	// validation of a stale entry).
	Forward
	// Revalidating: a background revalidation was scheduled (RFC 5861 §3),
	// which goes to the origin too.
	Revalidating
)

// What cache_response returns, as flags.
const (
	// Settled: the host finished the response phase. The response is not
	// stored (or the request phase left nothing to do); its Cache-Status
	// member is added and the targeted field consumed. Without it nothing
	// was changed and the plugin decides: a response that may be stored,
	// a 304 or 5xx to a validation of an entry, an unsafe method's.
	Settled = 1 << iota
)

// cache_response's options: what the plugin's config changes in the
// decision.
const (
	// StripCDN removes CDN-Cache-Control too (RFC 9213 §3 lets it pass
	// downstream by default).
	StripCDN = 1 << iota
	// StripSetCookie stores responses with Set-Cookie without it rather
	// than not at all.
	StripSetCookie
	// ResponseOptions is every option.
	ResponseOptions = StripCDN | StripSetCookie
)
