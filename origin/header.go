package origin

import (
	"bytes"
	"slices"
	"time"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// valuePrefix starts the header field that carries a forwarded value to an
// HTTP application: Wedge-Value-<Name>.
const valuePrefix = wire.ValuePrefix

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// asciiEqualFold compares b with s, ignoring ASCII case.
func asciiEqualFold[S ~string | ~[]byte](b []byte, s S) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if asciiLower(b[i]) != asciiLower(s[i]) {
			return false
		}
	}
	return true
}

// listedInConnection reports whether name is one of the field names that
// the Connection fields among fs list, which are hop-by-hop too.
func listedInConnection(fs []wire.Field, name []byte) bool {
	for i := range fs {
		if asciiEqualFold(fs[i].Name, "connection") && hasToken(fs[i].Value, name) {
			return true
		}
	}
	return false
}

// hasToken reports whether the comma-separated list v holds tok (ASCII
// case-insensitive). A list member may carry parameters after '=' or ';'.
func hasToken[S ~string | ~[]byte](v []byte, tok S) bool {
	for len(v) > 0 {
		var item []byte
		item, v = cutItem(v, ',')
		if i := bytes.IndexAny(item, "=;"); i >= 0 {
			item = trimOWS(item[:i])
		}
		if asciiEqualFold(item, tok) {
			return true
		}
	}
	return false
}

// cutItem splits the first member, without surrounding whitespace, off
// the list v whose members sep separates.
func cutItem(v []byte, sep byte) (item, rest []byte) {
	if i := bytes.IndexByte(v, sep); i >= 0 {
		return trimOWS(v[:i]), v[i+1:]
	}
	return trimOWS(v), nil
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validTarget reports whether b may stand in a request line: no controls,
// spaces or DEL.
func validTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validPath reports whether b is an origin-form path (RFC 9112 §3.2.1),
// or empty, which stands for "/".
func validPath(b []byte) bool {
	return len(b) == 0 || (b[0] == '/' && validTarget(b))
}

// fillTags gathers purge tags from Surrogate-Key (space separated) and
// Cache-Tag (comma separated) into the cache hints, keeping the fields.
func fillTags(resp *wire.Response) {
	for i := range resp.Header {
		f := &resp.Header[i]
		switch {
		case asciiEqualFold(f.Name, "surrogate-key"):
			resp.Cache.Tags = appendTags(resp.Cache.Tags, f.Value, ' ')
		case asciiEqualFold(f.Name, "cache-tag"):
			resp.Cache.Tags = appendTags(resp.Cache.Tags, f.Value, ',')
		}
	}
}

func appendTags(tags []wire.Bytes, v []byte, sep byte) []wire.Bytes {
	for len(v) > 0 && len(tags) < wire.MaxFields {
		var t []byte
		if t, v = cutItem(v, sep); len(t) > 0 {
			tags = appendTag(tags, t)
		}
	}
	return tags
}

// appendTag appends a copy of t, reusing spare capacity.
func appendTag(tags []wire.Bytes, t []byte) []wire.Bytes {
	if len(tags) < cap(tags) {
		tags = tags[:len(tags)+1]
		tags[len(tags)-1] = append(tags[len(tags)-1][:0], t...)
		return tags
	}
	return append(tags, wire.Bytes(bytes.Clone(t)))
}

// shareable reports whether one client's response may be handed to another
// client that sent an identical request at the same time: a response a
// shared cache could store (RFC 9111 §3) and reuse at once, since it says
// itself how long it stays fresh (an API's answer without a lifetime may
// depend on a credential or address the key does not hold: an X-Api-Key,
// the client's IP), that carries no per-client state, and that the
// application, not the origin, produced.
func shareable(resp *wire.Response) bool {
	if len(resp.Error) > 0 {
		return false
	}
	switch s := resp.Status; {
	case s >= 200 && s < 400:
	case s == 404, s == 405, s == 410, s == 414, s == 501:
	default:
		return false
	}
	for i := range resp.Header {
		f := &resp.Header[i]
		switch {
		case asciiEqualFold(f.Name, "set-cookie"):
			return false
		case asciiEqualFold(f.Name, "cache-control"):
			if hasToken(f.Value, "private") || hasToken(f.Value, "no-store") ||
				hasToken(f.Value, "no-cache") {
				return false
			}
		case asciiEqualFold(f.Name, "vary"):
			// The key holds only varyFields: a response that varies on
			// anything else (or on "*") may not suit the other requests.
			if !varyCovered(f.Value) {
				return false
			}
		}
	}
	return httpcache.ExplicitlyFresh(len(resp.Header), func(i int) ([]byte, []byte) {
		return resp.Header[i].Name, resp.Header[i].Value
	}, time.Now())
}

// varyCovered reports whether every field the Vary list v names is one of
// varyFields, which requests must agree on to be collapsed.
func varyCovered(v []byte) bool {
	for len(v) > 0 {
		var item []byte
		if item, v = cutItem(v, ','); len(item) > 0 && !slices.ContainsFunc(varyFields[:], func(n string) bool {
			return asciiEqualFold(item, n)
		}) {
			return false
		}
	}
	return true
}

// copyResponse makes dst a deep copy of src, reusing dst's buffers.
func copyResponse(dst, src *wire.Response) {
	dst.Reset()
	dst.Status = src.Status
	for i := range src.Header {
		dst.AddHeader(src.Header[i].Name, src.Header[i].Value)
	}
	dst.Body = append(dst.Body, src.Body...)
	dst.Error = append(dst.Error, src.Error...)
	dst.Cache.TTL, dst.Cache.Stale = src.Cache.TTL, src.Cache.Stale
	for _, t := range src.Cache.Tags {
		dst.Cache.Tags = appendTag(dst.Cache.Tags, t)
	}
	for i := range src.Interim {
		in := dst.AddInterim(src.Interim[i].Status)
		for _, f := range src.Interim[i].Header {
			in.AddHeader(f.Name, f.Value)
		}
	}
}
