package main

import (
	"strconv"
	"strings"
	"unsafe"
)

// view is b as a string without a copy. The caller guarantees b does not
// change while the string is in use: a per-instance buffer that is only
// rewritten by the next call, or a slice nothing else holds.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// meta is what the plugin stores beside a cached response: the policy the
// response came with, so a lookup decides freshness without reading the
// stored headers (which stay in the host), the validators for conditional
// requests, and the Vary bookkeeping.
//
// Encoded as "wc1" then "key=value" lines. Header values never hold a
// newline (the host refuses control characters), so no escaping is needed;
// the variant string uses NUL and 0x01 as separators for the same reason.
type meta struct {
	initialAge     int64 // ms: corrected_initial_age at store time (RFC 9111 §4.2.3)
	lifetime       int64 // ms: freshness lifetime (§4.2.1)
	noCache        bool  // always validate (§5.2.2.4)
	mustRevalidate bool  // no stale use (§5.2.2.2, .8, .10)
	swr, sie       int64 // seconds, stale-while-revalidate and stale-if-error windows; 0 none
	etag, lastMod  string
	varyNames      string // normalised Vary, "" without one
	variant        string // this entry's values of the Vary'd request headers
	gen            string // generation of the primary entry its variants hang off
}

func (m *meta) encode() []byte {
	b := []byte("wc1\n")
	num := func(k string, v int64) {
		b = append(b, k...)
		b = append(b, '=')
		b = strconv.AppendInt(b, v, 10)
		b = append(b, '\n')
	}
	str := func(k, v string) {
		if v != "" {
			b = append(b, k...)
			b = append(b, '=')
			b = append(b, v...)
			b = append(b, '\n')
		}
	}
	num("ia", m.initialAge)
	num("lt", m.lifetime)
	flags := ""
	if m.noCache {
		flags += "n"
	}
	if m.mustRevalidate {
		flags += "m"
	}
	str("f", flags)
	if m.swr > 0 {
		num("swr", m.swr)
	}
	if m.sie > 0 {
		num("sie", m.sie)
	}
	str("et", m.etag)
	str("lm", m.lastMod)
	str("vn", m.varyNames)
	str("vv", m.variant)
	str("g", m.gen)
	return b
}

// decodeMeta parses meta; ok is false for anything this version did not
// write, which the plugin then treats as a miss. The strings in m share b's
// memory, so b must not change afterwards: callers pass the fresh slice
// sdk.CacheLookup returned, which saves a copy on every lookup.
func decodeMeta(b []byte) (m meta, ok bool) {
	s := view(b)
	rest, found := strings.CutPrefix(s, "wc1\n")
	if !found {
		return m, false
	}
	for line := range strings.SplitSeq(rest, "\n") {
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
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
			m.initialAge = n()
		case "lt":
			m.lifetime = n()
		case "f":
			m.noCache, m.mustRevalidate = strings.Contains(v, "n"), strings.Contains(v, "m")
		case "swr":
			m.swr = n()
		case "sie":
			m.sie = n()
		case "et":
			m.etag = v
		case "lm":
			m.lastMod = v
		case "vn":
			m.varyNames = v
		case "vv":
			m.variant = v
		case "g":
			m.gen = v
		}
		if !ok {
			return m, false
		}
	}
	return m, true
}

// state carries what the request phase learned to the response phase, in a
// request-scoped value: the two phases may run on different instances.
type state struct {
	mode       byte   // see mode* below
	fwd        string // RFC 9211 fwd reason
	noStore    bool   // the request said no-store (§5.2.1.5)
	clientCond bool   // the client sent its own conditionals
	reqTime    int64  // ms, when the request phase ran: request_time of §4.2.3
	reqSIE     int64  // the request's stale-if-error, seconds
	entryKey   string // the stored response being revalidated, if any
	// The primary entry as the lookup found it, to place a new variant.
	primary      bool
	primaryNames string
	primaryVar   string
	primaryGen   string
}

// A hit saves no state, except one that asked for a background
// revalidation (hitState): the state it saved for that copy of the request
// must not be found by its own response phase.
const (
	modeHit     = 'h' // answered from cache
	modeForward = 'f' // a cacheable request that went to the origin
	modeUnsafe  = 'u' // an unsafe method: invalidate on success
	modeBypass  = 'b' // nothing to do but say so
	modeAnswer  = 'a' // the plugin answered without the cache (504)
)

// hitState is what a hit that asked for a background revalidation saves
// after the call: it replaces the forwarding state saved for the host's
// copy of the request, so the hit's own response phase passes through.
const hitState = string(modeHit) + "\n"

func (s *state) encode() string {
	var b strings.Builder
	b.WriteByte(s.mode)
	b.WriteByte('\n')
	put := func(k, v string) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	put("fwd", s.fwd)
	if s.noStore {
		put("ns", "1")
	}
	if s.clientCond {
		put("cc", "1")
	}
	put("rt", strconv.FormatInt(s.reqTime, 10))
	if s.reqSIE > 0 {
		put("sie", strconv.FormatInt(s.reqSIE, 10))
	}
	if s.entryKey != "" {
		put("ek", s.entryKey)
	}
	if s.primary {
		put("p", "1")
		put("pn", s.primaryNames)
		put("pv", s.primaryVar)
		put("pg", s.primaryGen)
	}
	return b.String()
}

func decodeState(v string) (s state, ok bool) {
	if len(v) < 2 || v[1] != '\n' {
		return s, false
	}
	s.mode = v[0]
	for line := range strings.SplitSeq(v[2:], "\n") {
		k, val, _ := strings.Cut(line, "=")
		switch k {
		case "fwd":
			s.fwd = val
		case "ns":
			s.noStore = true
		case "cc":
			s.clientCond = true
		case "rt":
			s.reqTime, _ = strconv.ParseInt(val, 10, 64)
		case "sie":
			s.reqSIE, _ = strconv.ParseInt(val, 10, 64)
		case "ek":
			s.entryKey = val
		case "p":
			s.primary = true
		case "pn":
			s.primaryNames = val
		case "pv":
			s.primaryVar = val
		case "pg":
			s.primaryGen = val
		}
	}
	return s, true
}
