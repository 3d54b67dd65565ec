package edge

import (
	"bytes"
	"sort"
	"strings"
	"time"
)

// route is a RouteConfig made ready to serve: its plugins loaded.
type route struct {
	name   string
	host   string
	path   string
	chain  []*step
	origin *origin
	// timeout is the budget of a request to the origin: the route's, or
	// else the origin's.
	timeout time.Duration
	// limit is the origin's concurrency limit (originlimit.go), nil on a
	// route with a timeout of its own: its exchanges take the time the
	// application chooses (a long poll), not a measure of its load.
	limit *originLimit
	// maxBody and maxResponse bound its bodies (stream.go); 0: no
	// bound.
	maxBody, maxResponse int64
	m                    routeMetrics
	// tier: misses go to the regional cache tier, through the shield
	// region if one is named (tier.go).
	tier   bool
	shield string
}

// router holds one generation of routes. It is immutable once built; a
// reload builds a new one and swaps it in whole.
type router struct {
	byHost map[string][]*route // exact host -> routes, longest path first
	any    []*route            // routes for any host, longest path first
}

func newRouter(routes []*route) *router {
	r := &router{byHost: map[string][]*route{}}
	for _, rt := range routes {
		if rt.host == "" {
			r.any = append(r.any, rt)
		} else {
			r.byHost[rt.host] = append(r.byHost[rt.host], rt)
		}
	}
	longestFirst := func(rs []*route) {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].path) > len(rs[j].path) })
	}
	for _, rs := range r.byHost {
		longestFirst(rs)
	}
	longestFirst(r.any)
	return r
}

// match finds the route for a request: routes naming the host first, then
// routes for any host; within each, the longest matching path prefix. host
// may carry a port and any case; path is the path fasthttp normalized
// (percent-decoded, "//", "." and ".." resolved), which the handler has
// already checked decodes from the path as sent, so the route chosen is the
// one for the resource the origin will serve.
func (r *router) match(host, path []byte) *route {
	h := hostOnly(host)
	// Lowercasing into a stack buffer keeps the lookup allocation-free:
	// Go does not allocate for a map index with string(b).
	var buf [256]byte
	if len(h) <= len(buf) {
		n := copy(buf[:], h)
		lower(buf[:n])
		if rt := matchPath(r.byHost[string(buf[:n])], path); rt != nil {
			return rt
		}
	}
	return matchPath(r.any, path)
}

func matchPath(rs []*route, path []byte) *route {
	for _, rt := range rs {
		if prefixMatch(path, rt.path) {
			return rt
		}
	}
	return nil
}

// prefixMatch reports whether path is under prefix. A prefix not ending in
// "/" matches only at a segment boundary, so /api matches /api and /api/x
// but not /apix.
func prefixMatch(path []byte, prefix string) bool {
	if !strings.HasPrefix(string(path), prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// hostOnly strips a port from a Host header value, keeping IPv6 brackets,
// and a trailing dot: "example.com." is the same DNS name, and nginx's
// server names match it too.
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		if i := strings.IndexByte(string(h), ']'); i > 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(string(h), ':'); i >= 0 {
		h = h[:i]
	}
	return bytes.TrimSuffix(h, []byte{'.'})
}

func lower(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}
