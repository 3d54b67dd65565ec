// The canary split, on the request path: which version of a chain step a
// request runs (the one a Wedge-Pin header names, else the client's sticky
// side of the split). Apart from release.go, which builds the steps when a
// generation is loaded, because this runs on every request.

package edge

import (
	"bytes"
	"crypto/subtle"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/deploy/manifest"
)

// step is one plugin of a route's chain: the version it runs and, during a
// rollout, a canary version on a share of the clients.
type step struct {
	key    string // the release key it answers to: plugin or route/plugin
	stable *loaded
	canary *loaded
	share  uint32 // canary share, in 1/10000 of clients
	split  split  // what places a client on a side
	// stableBrk and canaryBrk are the versions' breakers on the step's
	// route (pluginbreaker.go).
	stableBrk, canaryBrk *breakers
}

// split is a canary's split key (manifest.ParseSplit): the client address
// (kind ""), or the value of a header or a cookie named name.
type split struct {
	kind string // "", manifest.SplitHeader or manifest.SplitCookie
	name []byte
}

// String is the split as manifest.Canary.Split has it, "" for the address.
func (sp split) String() string {
	if sp.kind == "" {
		return ""
	}
	return sp.kind + ":" + string(sp.name)
}

// choose picks the version a request runs: the one pin (pinOf) names if
// it is one of the two, else the client's side of the split.
func (s *step) choose(ctx *fasthttp.RequestCtx, pin []byte) *loaded {
	if s.canary == nil {
		return s.stable
	}
	if len(pin) > 0 {
		switch {
		case pinned(pin, s.stable.m.Name(), s.canary.m.Version()):
			return s.canary
		case pinned(pin, s.stable.m.Name(), s.stable.m.Version()):
			return s.stable
		}
	}
	// The address's bytes as an ask's owner hashes them (clientIP), of a
	// UDP address (HTTP/3) too: fasthttp's RemoteIP is 0.0.0.0 for one,
	// and every HTTP/3 client fell on the side of 0.0.0.0.
	var buf [16]byte
	ip := buf[:0]
	if addr := peerAddr(ctx.RemoteAddr()); addr.IsValid() {
		ip = clientIP(addr, &buf)
	}
	return s.forClient(ctx.Request.Header.RawHeaders(), ip)
}

// pinOf is the request's Wedge-Pin, nil unless the request also carries
// the node's admin token (Wedge-Pin-Token): a pin is for an operator's
// smoke test. Honoured from any client, it let one keep the stable side of
// a canary that revokes a key (a token signed with it admitted again) or
// pick a looser one. fromHTTP drops the token, so neither the plugins nor
// the application see it.
func pinOf(ctx *fasthttp.RequestCtx, token string) []byte {
	pin := ctx.Request.Header.Peek(manifest.PinHeader)
	if len(pin) == 0 || token == "" ||
		subtle.ConstantTimeCompare(ctx.Request.Header.Peek(manifest.PinTokenHeader), []byte(token)) != 1 {
		return nil
	}
	return pin
}

// value finds the split's key in a request's header section as received
// (the fields fromHTTP passes on, not fasthttp's parsed view: reading its
// cookies would take the Cookie fields out of the header): the first
// field named name, or the first cookie named name over every Cookie
// field. It is nil for an address split and when the value is missing or
// empty, so the client's address decides.
func (sp *split) value(raw []byte) []byte {
	if sp.kind == "" {
		return nil
	}
	for f := (fields{raw}); ; {
		name, v, ok := f.next()
		if !ok {
			return nil
		}
		switch {
		case sp.kind == manifest.SplitHeader && bytes.EqualFold(name, sp.name):
			if len(v) == 0 {
				return nil
			}
			return v
		case sp.kind == manifest.SplitCookie && bytes.EqualFold(name, []byte("Cookie")):
			if c := cookie(v, sp.name); len(c) > 0 {
				return c
			}
		}
	}
}

// cookie returns the value of the cookie named name in a Cookie field's
// value ("a=1; b=2", RFC 6265 section 4.2.1), without its quotes; nil if
// there is none.
func cookie(v, name []byte) []byte {
	for len(v) > 0 {
		var pair []byte
		pair, v, _ = bytes.Cut(v, []byte(";"))
		k, val, ok := bytes.Cut(bytes.TrimLeft(pair, " \t"), []byte("="))
		if ok && bytes.Equal(k, name) {
			val = bytes.TrimRight(val, " \t")
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val
		}
	}
	return nil
}

// pinned reports whether a Wedge-Pin value ("auth@2.0.0, cache@1.1")
// names plugin@version.
func pinned(v []byte, plugin, version string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte(","))
		item = bytes.TrimSpace(item)
		name, ver, ok := bytes.Cut(item, []byte("@"))
		if ok && string(name) == plugin && string(ver) == version {
			return true
		}
	}
	return false
}

// clientBucket places a client in [0, 10000) for a plugin's split: FNV-1a
// of the plugin name and the client's key (its address, or the split's
// header or cookie value), so the split is sticky per client and
// independent between plugins.
func clientBucket(plugin string, key []byte) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(plugin); i++ {
		h = (h ^ uint32(plugin[i])) * 16777619
	}
	for _, c := range key {
		h = (h ^ uint32(c)) * 16777619
	}
	return h % 10000
}
