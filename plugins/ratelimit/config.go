package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/wasm/abi"
)

// Bounds of the configuration. A policy costs one or two host calls per
// request and defines a metric; the host allows 64 metrics per plugin.
const (
	maxPolicies = 32
	maxNameLen  = 32
	maxPeriod   = 400 * 24 * time.Hour
)

// keyKind says what a policy counts by.
type keyKind uint8

const (
	keyIP     keyKind = iota // the client's IP address
	keyHeader                // a request header's value
	keyValue                 // a request-scoped value, e.g. the identity auth verified
	keyPath                  // one shared allowance for a path prefix
)

// policy is one configured limit. Everything a request needs is computed
// here, at configure time: the structured-field text of RateLimit-Policy,
// the rate-key prefix, the limit handed to the host.
type policy struct {
	name   string
	kind   keyKind
	arg    string // header name, value name or path prefix
	limit  sdk.Limit
	window int64 // period in whole seconds, RateLimit-Policy's w
	shadow bool
	// fallbackIP counts requests without the key by client IP; otherwise
	// such requests skip the policy.
	fallbackIP bool

	policyField string // `"perip";q=100;w=60`
	keyPrefix   []byte // "ratelimit\x00perip\x00"
	// What a 429 for this policy needs that does not depend on the
	// request: the RateLimit field up to r's value, and the problem body
	// when this policy is the only one refusing (the common case).
	limitPrefix []byte // `"perip";r=`
	problem     []byte // the problem+json body naming this policy alone
	refused     sdk.Metric
}

// scopePrefix is the key prefix by which the host shares a policy's
// allowance across the POPs of a region or all POPs; a pop scope has none.
var scopePrefix = map[string]string{"region": "@region:", "global": "@global:"}

// config is the parsed plugin configuration.
type config struct {
	policies   []policy
	headers    bool // RateLimit fields on allowed responses
	ipv6Prefix int  // the bits of an IPv6 client's address ip keys count by
}

// parseConfig reads the JSON configuration described in README.md. It runs
// once per instance, so clarity beats speed here; it still uses jsonscan
// rather than encoding/json to keep the module small.
func parseConfig(data []byte) (*config, error) {
	c := &config{headers: true, ipv6Prefix: 64}
	if len(data) == 0 {
		return nil, errors.New("ratelimit: config required: {\"policies\":[...]}")
	}
	var policiesRaw []byte
	var err error
	var it jsonscan.Iter
	it.Object(data)
	for it.Next() {
		switch name := string(it.Name()); name {
		case "policies":
			policiesRaw = it.Value()
		case "headers":
			if c.headers, err = jsonscan.Bool(it.Value()); err != nil {
				return nil, errors.New("ratelimit: headers must be true or false")
			}
		case "ipv6_prefix":
			n, err := jsonscan.Int(it.Value())
			if err != nil || n < 1 || n > 128 {
				return nil, errors.New("ratelimit: ipv6_prefix must be a whole number of bits from 1 to 128")
			}
			c.ipv6Prefix = int(n)
		default:
			return nil, fmt.Errorf("ratelimit: unknown config field %q", name)
		}
	}
	if it.Err() != nil {
		return nil, fmt.Errorf("ratelimit: config is not a JSON object: %w", it.Err())
	}
	if policiesRaw == nil {
		return nil, errors.New("ratelimit: config needs policies")
	}
	var arr jsonscan.Iter
	arr.Array(policiesRaw)
	seen := map[string]bool{}
	for arr.Next() {
		if len(c.policies) == maxPolicies {
			return nil, fmt.Errorf("ratelimit: at most %d policies", maxPolicies)
		}
		p, err := parsePolicy(arr.Value())
		if err != nil {
			return nil, fmt.Errorf("ratelimit: policy %d: %w", len(c.policies)+1, err)
		}
		if seen[p.name] {
			return nil, fmt.Errorf("ratelimit: policy name %q used twice", p.name)
		}
		seen[p.name] = true
		c.policies = append(c.policies, p)
	}
	if arr.Err() != nil {
		return nil, fmt.Errorf("ratelimit: policies must be an array of objects: %w", arr.Err())
	}
	if len(c.policies) == 0 {
		return nil, errors.New("ratelimit: policies is empty")
	}
	return c, nil
}

func parsePolicy(raw []byte) (policy, error) {
	p := policy{fallbackIP: true}
	var keySpec, missing, scope string
	var limit, burst int64
	var hasKey, hasLimit, hasPeriod, hasMissing bool
	var err error
	var it jsonscan.Iter
	it.Object(raw)
	for it.Next() {
		v := it.Value()
		switch name := string(it.Name()); name {
		case "name":
			if p.name, err = jsonscan.String(v); err != nil {
				return p, errors.New("name must be a string")
			}
		case "key":
			hasKey = true
			if keySpec, err = jsonscan.String(v); err != nil {
				return p, errors.New("key must be a string")
			}
		case "limit":
			hasLimit = true
			if limit, err = jsonscan.Int(v); err != nil || limit < 1 || limit > math.MaxInt32 {
				return p, fmt.Errorf("limit must be an integer from 1 to %d", math.MaxInt32)
			}
		case "period":
			hasPeriod = true
			s, err := jsonscan.String(v)
			if err != nil {
				return p, errors.New(`period must be a duration string such as "1s" or "1m"`)
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				return p, fmt.Errorf("period %q: %w", s, err)
			}
			// RateLimit-Policy's w is whole seconds (the draft supports no
			// sub-second precision), so a period is too: the advertised
			// policy is then exactly the enforced one.
			if d < time.Second || d > maxPeriod || d%time.Second != 0 {
				return p, fmt.Errorf("period %q must be whole seconds, from 1s to 400 days", s)
			}
			p.limit.Period = d
			p.window = int64(d / time.Second)
		case "burst":
			if burst, err = jsonscan.Int(v); err != nil || burst < 1 || burst > math.MaxInt32 {
				return p, fmt.Errorf("burst must be an integer from 1 to %d", math.MaxInt32)
			}
		case "shadow":
			if p.shadow, err = jsonscan.Bool(v); err != nil {
				return p, errors.New("shadow must be true or false")
			}
		case "scope":
			if scope, err = jsonscan.String(v); err != nil || scopePrefix[scope] == "" && scope != "pop" {
				return p, errors.New(`scope must be "pop", "region" or "global"`)
			}
		case "missing":
			hasMissing = true
			if missing, err = jsonscan.String(v); err != nil || (missing != "skip" && missing != "ip") {
				return p, errors.New(`missing must be "skip" or "ip"`)
			}
			p.fallbackIP = missing == "ip"
		default:
			return p, fmt.Errorf("unknown field %q", name)
		}
	}
	if it.Err() != nil {
		return p, errors.New("not a JSON object")
	}
	if !validName(p.name) {
		return p, fmt.Errorf("name %q must match [a-z][a-z0-9_]* and be at most %d bytes", p.name, maxNameLen)
	}
	if !hasKey || !hasLimit || !hasPeriod {
		return p, fmt.Errorf("policy %q needs key, limit and period", p.name)
	}
	if err := p.parseKey(keySpec); err != nil {
		return p, fmt.Errorf("policy %q: %w", p.name, err)
	}
	if hasMissing && (p.kind == keyIP || p.kind == keyPath) {
		return p, fmt.Errorf("policy %q: missing applies to header: and value: keys only", p.name)
	}
	if burst == 0 {
		burst = limit
	}
	p.limit.Count, p.limit.Burst = int(limit), int(burst)
	p.policyField = quote(p.name) + ";q=" + strconv.FormatInt(limit, 10) + ";w=" + strconv.FormatInt(p.window, 10)
	// The host's limiter is shared by every plugin on the node, so keys
	// carry the plugin and the policy name: the name is the counter's
	// identity, and routes configuring the same name share it.
	// A region or global scope is the host's to share: it is named by the
	// key's prefix (wasm/abi/README.md, ratelimit_take).
	p.keyPrefix = []byte(scopePrefix[scope] + "ratelimit\x00" + p.name + "\x00")
	p.limitPrefix = []byte(quote(p.name) + ";r=")
	p.problem = []byte(problemHead + quote(p.name) + problemTail)
	return p, nil
}

// parseKey reads "ip", "header:<name>", "value:<name>" or "path:<prefix>".
func (p *policy) parseKey(spec string) error {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "ip":
		if arg != "" || strings.Contains(spec, ":") {
			return fmt.Errorf("key %q: ip takes no argument", spec)
		}
		p.kind = keyIP
	case "header":
		if !abi.ValidHeaderName(arg) {
			return fmt.Errorf("key %q: header needs a header name", spec)
		}
		p.kind, p.arg = keyHeader, arg
	case "value":
		if arg == "" || len(arg) > abi.MaxValueKeyLen {
			return fmt.Errorf("key %q: value needs a request value name of 1 to %d bytes", spec, abi.MaxValueKeyLen)
		}
		p.kind, p.arg = keyValue, arg
	case "path":
		if !validPrefix(arg) {
			return fmt.Errorf("key %q: path needs a prefix starting with / without %%, ? or #", spec)
		}
		p.kind, p.arg = keyPath, arg
	default:
		return fmt.Errorf("key %q: want ip, header:<name>, value:<name> or path:<prefix>", spec)
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// validPrefix accepts printable ASCII paths starting with '/'. Percent
// signs are refused because requests are matched after decoding escaped
// unreserved characters (see underPrefix); a prefix is written decoded.
func validPrefix(s string) bool {
	if s == "" || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

// quote writes s as a structured-field String (RFC 9651 section 3.3.3).
// Policy names are [a-z0-9_], so no escapes are ever needed.
func quote(s string) string { return `"` + s + `"` }
