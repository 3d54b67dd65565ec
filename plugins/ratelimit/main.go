// Command ratelimit is the Wedge rate-limiting plugin: a list of policies,
// each counting requests by client IP, a header, a request value (the
// identity an earlier auth plugin verified) or a path prefix against its
// own allowance in the host's GCRA limiter. A request any enforced policy
// refuses gets 429 with Retry-After and the RateLimit / RateLimit-Policy
// fields of draft-ietf-httpapi-ratelimit-headers-11; allowed responses
// carry those fields for the most constrained policy. See README.md.
//
// # Why
//
// Refused requests consume nothing. Every applicable policy but the last
// is first peeked (a take of cost 0, which the host answers without
// storing anything), and units are taken only when all enforced policies
// have one to give. Taking from each policy in turn would let a client that
// keeps hitting a narrow policy (one endpoint) drain its broader allowances
// (its per-IP budget for the whole site) with requests that were never
// served. The last applicable policy needs no peek: when nothing before it
// refused, its take is the peek (a refused take spends nothing), so an
// allowed request makes two takes per applicable policy but one for the
// last, and with one policy a single take. The price is a window between
// peek and take: when another instance spends a policy's last unit inside
// it, the request is refused after some policies gave a unit, which errs on
// the strict side by that one unit.
//
// The RateLimit fields are put on the response in the request phase, and
// the plugin has no response phase: the host adds fields a plugin left on
// its answer when it continued to whatever response the request gets (the
// origin's, or a cache hit a later plugin served), after the response
// phases of the plugins behind it (wasm/abi/README.md section 4), so they
// reach the client and a cache behind this plugin never stores them. That
// saves a whole plugin call on every request.
package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"unsafe"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/wasm/abi"
)

// maxKeyValue bounds the key part taken from a request as is; longer ones
// are hashed, keeping rate keys under the host's 1 KiB limit.
const maxKeyValue = 512

type ratelimit struct {
	cfg          *config
	refusedTotal sdk.Metric

	// Per-call scratch, reused: an instance runs one call at a time and
	// none of it outlives the call.
	states [maxPolicies]state
	keys   [maxPolicies][]byte
	raw    []byte // the path as received
	path   []byte // normalized
	addr   []byte // the client's address
	ip     []byte // what ip keys count the client by (appendIPKey)
	hash   []byte
	out    []byte
	wait   []byte // Retry-After, also RateLimit's t
	field  []byte // RateLimit of a 429
}

// state is what one policy decided for the current request.
type state struct {
	applies bool // the request is in the policy's scope and has a key
	taken   bool // a unit was taken
	refused bool
	r       sdk.RateResult
}

// Configure parses the config (README.md) and defines the metrics.
func (rl *ratelimit) Configure(data []byte) error {
	cfg, err := parseConfig(data)
	if err != nil {
		return err
	}
	if rl.refusedTotal, err = sdk.NewCounter("ratelimit_refused_total"); err != nil {
		return err
	}
	for i := range cfg.policies {
		p := &cfg.policies[i]
		name := "ratelimit_refused_" + p.name + "_total"
		if p.shadow {
			name = "ratelimit_shadow_refused_" + p.name + "_total"
		}
		if p.refused, err = sdk.NewCounter(name); err != nil {
			return errors.New("ratelimit: defining metric " + name + ": " + err.Error())
		}
	}
	rl.cfg = cfg
	return nil
}

// OnRequest evaluates every policy; see the package doc for why it peeks
// before it takes. It allocates nothing (TestHitPathAllocs).
func (rl *ratelimit) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	last := -1 // the last policy that applies
	var ip []byte
	haveIP, havePath := false, false
	for i := range rl.cfg.policies {
		p := &rl.cfg.policies[i]
		rl.states[i] = state{}
		key := append(rl.keys[i][:0], p.keyPrefix...)
		start := len(key)
		found := true
		switch p.kind {
		case keyPath:
			if !havePath {
				rl.raw = req.AppendPath(rl.raw[:0])
				rl.path, havePath = normalizePath(rl.path[:0], rl.raw), true
			}
			if !underPrefix(rl.path, p.arg) {
				rl.keys[i] = key
				continue
			}
			key = append(key, 'p')
		case keyHeader:
			key = append(key, 'k')
			key, found = req.Header().AppendValue(key, p.arg)
			found = found && len(key) > start+1
		case keyValue:
			key, found = req.AppendValue(append(key, 'k'), p.arg)
			found = found && len(key) > start+1
		}
		if !found && !p.fallbackIP {
			rl.keys[i] = key[:start]
			continue
		}
		if p.kind == keyIP || !found {
			if !haveIP {
				rl.addr = req.AppendClientAddr(rl.addr[:0])
				rl.ip = rl.cfg.appendIPKey(rl.ip[:0], clientIP(rl.addr))
				ip, haveIP = rl.ip, true
			}
			key = append(append(key[:start], 'i'), ip...)
		}
		if len(key)-start > maxKeyValue {
			rl.hash = sdk.Digest(abi.DigestSHA256, rl.hash[:0], key[start+1:])
			key = append(append(key[:start], 'h'), rl.hash...)
		}
		rl.keys[i] = key
		rl.states[i].applies = true
		last = i
	}
	refused := false
	for i := 0; i <= last; i++ {
		p, st := &rl.cfg.policies[i], &rl.states[i]
		if !st.applies {
			continue
		}
		if i == last && !refused {
			// The take is the peek: refused, it spent nothing.
			if err := take(p, st, rl.keys[i]); err != nil {
				return rl.fail(p, err)
			}
		} else {
			_, r, err := p.limit.Take(rl.keys[i], 0)
			if err != nil {
				return rl.fail(p, err)
			}
			st.r = r
			if r.Remaining < 1 {
				// The peek says no; a real take confirms it (a refused
				// take spends nothing) and returns the wait. If a unit
				// came back in between, the take succeeds and the unit is
				// spent, even should another policy refuse: the same
				// one-unit strictness as the race the package doc
				// describes.
				if err := take(p, st, rl.keys[i]); err != nil {
					return rl.fail(p, err)
				}
			}
		}
		if st.refused && rl.record(p, st, rl.keys[i]) {
			refused = true
		}
	}
	if !refused {
		for i := range last {
			p, st := &rl.cfg.policies[i], &rl.states[i]
			if !st.applies || st.taken || st.refused {
				continue
			}
			if err := take(p, st, rl.keys[i]); err != nil {
				return rl.fail(p, err)
			}
			if st.refused && rl.record(p, st, rl.keys[i]) {
				refused = true
			}
		}
	}
	if refused {
		return rl.refuse(resp)
	}
	if rl.cfg.headers {
		if err := rl.addFields(resp); err != nil {
			return sdk.Fail(err)
		}
	}
	return sdk.Continue
}

// take spends one unit of p's limit for key and notes the outcome in st: a
// refused take spends nothing and says how long to wait.
func take(p *policy, st *state, key []byte) error {
	ok, r, err := p.limit.Take(key, 1)
	if err != nil {
		return err
	}
	st.r, st.taken, st.refused = r, ok, !ok
	return nil
}

// record counts and reports a refusal by p; it returns whether the
// refusal blocks the request (p is not in shadow mode).
func (rl *ratelimit) record(p *policy, st *state, key []byte) bool {
	p.refused.Record(1)
	if !p.shadow {
		return true
	}
	kind, id := rl.keyID(p, key[len(p.keyPrefix):])
	sdk.Info("ratelimit: shadow policy would refuse", "policy", p.name, "key_kind", kind, "key", id,
		"retry_after_ms", strconv.FormatInt(st.r.RetryAfterMs, 10))
	return false
}

// keyID names the value part of p's key k (its tag byte, then the value)
// in a log line: a client IP as it is, a path policy by nothing (the
// policy says it), and a header or request value only by its keyed digest
// (abi.DigestKeyed), since it may be a credential: an API key or a bearer
// token must not reach the logs, and a plain hash of a guessable value (a
// user ID) is undone by trying candidates. The digest's first 16 bytes, in
// hex, tell one client's lines apart from another's on a node.
func (rl *ratelimit) keyID(p *policy, k []byte) (kind, id string) {
	switch {
	case len(k) == 0:
		return "", ""
	case k[0] == 'i': // the policy's own kind, or a missing key's fallback
		return "ip", string(k[1:])
	case p.kind == keyPath:
		return "path", ""
	}
	kind = "header"
	if p.kind == keyValue {
		kind = "value"
	}
	rl.hash = sdk.Digest(abi.DigestKeyed, rl.hash[:0], k[1:])
	return kind, "keyed:" + hex.EncodeToString(rl.hash[:min(len(rl.hash), 16)])
}

func (rl *ratelimit) fail(p *policy, err error) sdk.Action {
	return sdk.Fail(errors.New("ratelimit: policy " + p.name + ": " + err.Error()))
}

// problemHead and problemTail frame a 429's problem body (the draft's
// quota-exceeded type) around the names of the policies that refused.
const (
	problemHead = `{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded",` +
		`"title":"Request cannot be satisfied as assigned quota has been exceeded","status":429,"violated-policies":[`
	problemTail = "]}\n"
)

// refuse answers 429. Retry-After and the RateLimit fields name the
// enforced policy with the longest wait, since the client has to wait for
// all of them; the problem body (the draft's quota-exceeded type) lists
// every enforced policy that refused. Everything but the two numbers was
// prepared by Configure, and the numbers are written into reused buffers:
// a refused request allocates nothing (TestRefusePathAllocs).
func (rl *ratelimit) refuse(resp sdk.Response) sdk.Action {
	rl.refusedTotal.Record(1)
	worst, violated := -1, 0
	for i := range rl.cfg.policies {
		st := &rl.states[i]
		if !st.refused || rl.cfg.policies[i].shadow {
			continue
		}
		violated++
		if worst < 0 || st.r.RetryAfterMs > rl.states[worst].r.RetryAfterMs {
			worst = i
		}
	}
	p, st := &rl.cfg.policies[worst], &rl.states[worst]
	// The wait rounds up, so a client that honours it is never early; the
	// draft wants Retry-After no earlier than the effective window's end,
	// so t is the same number.
	rl.wait = strconv.AppendInt(rl.wait[:0], max(ceilSeconds(st.r.RetryAfterMs), 1), 10)
	f := append(rl.field[:0], p.limitPrefix...)
	f = strconv.AppendInt(f, st.r.Remaining, 10)
	rl.field = append(append(f, ";t="...), rl.wait...)
	body := p.problem
	if violated > 1 {
		b := append(rl.out[:0], problemHead...)
		sep := ""
		for i := range rl.cfg.policies {
			if rl.states[i].refused && !rl.cfg.policies[i].shadow {
				b = append(append(append(b, sep...), '"'), rl.cfg.policies[i].name...)
				b = append(b, '"')
				sep = ","
			}
		}
		rl.out = append(b, problemTail...)
		body = rl.out
	}
	h := resp.Header()
	for _, f := range [...][2]string{
		{"Content-Type", "application/problem+json"},
		{"Retry-After", view(rl.wait)},
		{"RateLimit-Policy", p.policyField},
		{"RateLimit", view(rl.field)},
	} {
		if err := h.Set(f[0], f[1]); err != nil {
			return sdk.Fail(err)
		}
	}
	return resp.Answer(429, body)
}

// addFields puts the RateLimit fields of the most constrained enforced
// policy on the response: the fewest units left, then the longest time to
// a full allowance, then the first configured. Shadow policies are never
// advertised: they do not limit the client. The host adds the fields to
// the response the client gets, next to any the origin sent: both fields
// are lists, and an origin's own policies stay visible beside the edge's.
func (rl *ratelimit) addFields(resp sdk.Response) error {
	best := -1
	for i := range rl.cfg.policies {
		st := &rl.states[i]
		if !st.taken || rl.cfg.policies[i].shadow {
			continue
		}
		if b := &rl.states[max(best, 0)]; best < 0 || st.r.Remaining < b.r.Remaining ||
			st.r.Remaining == b.r.Remaining && st.r.ResetMs > b.r.ResetMs {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	p, st := &rl.cfg.policies[best], &rl.states[best]
	h := resp.Header()
	if err := h.Add("RateLimit-Policy", p.policyField); err != nil {
		return err
	}
	b := append(rl.out[:0], '"')
	b = append(b, p.name...)
	b = append(b, `";r=`...)
	b = strconv.AppendInt(b, st.r.Remaining, 10)
	b = append(b, ";t="...)
	// t is the time until the whole burst is back: within it the client
	// cannot get more than r units at once.
	b = strconv.AppendInt(b, ceilSeconds(st.r.ResetMs), 10)
	rl.out = b
	return h.AddBytes("RateLimit", b)
}

// ceilSeconds rounds milliseconds up to whole seconds, the unit of
// Retry-After and of the RateLimit t parameter.
func ceilSeconds(ms int64) int64 { return (ms + 999) / 1000 }

// clientIP strips the port from "203.0.113.7:51234" or "[2001:db8::1]:443".
func clientIP[T string | []byte](addr T) T {
	if len(addr) > 0 && addr[0] == '[' {
		for i := 1; i < len(addr); i++ {
			if addr[i] == ']' {
				return addr[1:i]
			}
		}
		return addr
	}
	colon := -1
	for i := 0; i < len(addr); i++ {
		if addr[i] == ':' {
			if colon >= 0 {
				return addr // a bare IPv6 address: no port to strip
			}
			colon = i
		}
	}
	if colon >= 0 {
		return addr[:colon]
	}
	return addr
}

// appendIPKey appends what ip policies count ip by: an IPv4 address as it
// is, an IPv6 one by its network of c.ipv6Prefix bits ("2001:db8:1:2::/64").
// An ISP gives a household or a host at least a /64, from which it takes
// whatever addresses it likes: counted by address, an IPv6 client would
// get a fresh allowance with each.
func (c *config) appendIPKey(dst, ip []byte) []byte {
	if bytes.IndexByte(ip, ':') < 0 {
		return append(dst, ip...)
	}
	a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(ip), len(ip))) // not kept
	if err != nil {
		return append(dst, ip...)
	}
	if a = a.Unmap(); a.Is6() && c.ipv6Prefix < 128 {
		if p, err := a.Prefix(c.ipv6Prefix); err == nil {
			return p.AppendTo(dst)
		}
	}
	return a.WithZone("").AppendTo(dst)
}

// normalizePath appends path to dst with percent-escaped unreserved
// characters decoded (RFC 3986 section 6.2.2.2: "/%73earch" is "/search"),
// so an escape cannot slip a request past a path policy. Other escapes
// stay as they are: decoding "%2F" would change the path's meaning.
func normalizePath[T string | []byte](dst []byte, path T) []byte {
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) {
			if d, ok := unhex(path[i+1], path[i+2]); ok && unreserved(d) {
				dst = append(dst, d)
				i += 2
				continue
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func unhex(a, b byte) (byte, bool) {
	hi, ok1 := hexVal(a)
	lo, ok2 := hexVal(b)
	return hi<<4 | lo, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// underPrefix reports whether path lies under prefix at a segment
// boundary: "/search" covers "/search" and "/search/x" but not
// "/searchlight"; a prefix ending in '/' covers everything below it.
func underPrefix(path []byte, prefix string) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// view is b as a string without a copy, for a value the host copies
// before the buffer is written again.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func init() { sdk.Register(&ratelimit{}) }

func main() {}
