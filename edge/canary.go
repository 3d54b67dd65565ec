// The canary split, on the request path: which version of a chain step a
// request runs (the one a Wedge-Pin header names, else the client's sticky
// side of the split). Apart from release.go, which builds the steps when a
// generation is loaded, because this runs on every request.

package edge

import (
	"bytes"

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
}

// choose picks the version a request runs: the pinned one if the request
// names one of the two, else the client's side of the split.
func (s *step) choose(ctx *fasthttp.RequestCtx) *loaded {
	if s.canary == nil {
		return s.stable
	}
	if pin := ctx.Request.Header.Peek(manifest.PinHeader); len(pin) > 0 {
		switch {
		case pinned(pin, s.stable.m.Name(), s.canary.m.Version()):
			return s.canary
		case pinned(pin, s.stable.m.Name(), s.stable.m.Version()):
			return s.stable
		}
	}
	if clientBucket(s.stable.m.Name(), ctx.RemoteIP()) < s.share {
		return s.canary
	}
	return s.stable
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
// of the plugin name and the client address, so the split is sticky per
// client and independent between plugins.
func clientBucket(plugin string, ip []byte) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(plugin); i++ {
		h = (h ^ uint32(plugin[i])) * 16777619
	}
	for _, c := range ip {
		h = (h ^ uint32(c)) * 16777619
	}
	return h % 10000
}
