package httpcache

// This file is the cache key format: the one definition that the plugin
// (storing, invalidating), the host (cache_request) and the edge's purge by
// URL (edge/admin.go) build keys with. A purge finds what the plugin stored
// only while all of them build the very same bytes for one URL.

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"unsafe"

	"github.com/talowa/wedge/wasm/abi"
)

// Key is the primary key: scheme, host and target, the path and query as
// the client sent them (percent-encoded, query members in their order),
// in the form RFC 3986 §6.2.2 and RFC 9110 §4.2.3 make equivalent URIs
// share: the scheme and host in lower case (ASCII letters only, as hosts
// are routed; a non-ASCII byte is percent-encoded), the host without a
// trailing dot or the scheme's default port, and percent-escapes in upper
// case. A purge of one form then reaches what a request in another
// stored. GET
// and HEAD share it: a HEAD is answered from a stored GET. A change of
// format takes a new prefix.
//
// For scheme "https", host "Example.com.:443", path "/a%2fb" and query
// "y=2&x=1" it is "wc1\x00https://example.com/a%2Fb?y=2&x=1".
func Key(scheme, host, path, query string) string {
	return string(AppendKey(nil, scheme, host, path, query))
}

// AppendKey appends Key(scheme, host, path, query) to dst.
func AppendKey(dst []byte, scheme, host, path, query string) []byte {
	dst = append(dst, "wc1\x00"...)
	dst = appendLower(dst, scheme)
	dst = append(dst, "://"...)
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		name, port = host[:i], host[i:]
	}
	if (port == ":80" && strings.EqualFold(scheme, "http")) || (port == ":443" && strings.EqualFold(scheme, "https")) {
		port = ""
	}
	dst = appendLower(dst, strings.TrimSuffix(name, "."))
	dst = append(dst, port...)
	dst = appendEscapes(dst, path)
	if query != "" {
		dst = append(dst, '?')
		dst = appendEscapes(dst, query)
	}
	return dst
}

// appendEscapes appends s in the normal form of RFC 3986 §6.2.2: the hex
// digits of a percent-escape in upper case, an escaped unreserved
// character decoded ("%7E" is "~"), and the bytes a request target never
// holds raw (controls, space, non-ASCII) escaped, so that a URL as a
// person types it ("/café") keys as a client sends it ("/caf%C3%A9").
// Other escapes stay: decoding "%2F" would change the path.
func appendEscapes(dst []byte, s string) []byte {
	const upper = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b := unhex(s[i+1])<<4 | unhex(s[i+2])
			if unreserved(b) {
				dst = append(dst, b)
			} else {
				dst = append(dst, '%', upper[b>>4], upper[b&15])
			}
			i += 2
		case c <= ' ' || c >= 0x7f:
			dst = append(dst, '%', upper[c>>4], upper[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// unreserved says whether c is an unreserved character (RFC 3986 §2.3).
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// AppendURLKey appends the primary key of the requests for the absolute URL
// u to dst: the key a request for it is stored under. The path is u's as
// written (EscapedPath), since requests are keyed by the path as sent, and
// an empty path is "/": RFC 9110 §4.2.3 makes "http://x" and "http://x/"
// one resource, and a client asks for "/" in both cases (RFC 9112 §3.2.1).
func AppendURLKey(dst []byte, u *url.URL) []byte {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return AppendKey(dst, u.Scheme, u.Host, path, u.RawQuery)
}

// appendLower appends s with its ASCII letters in lower case, as the
// edge's router matches hosts, and percent-encodes controls, space, DEL,
// '%' and non-ASCII bytes. Unicode case folding would make another host of
// this one: the Kelvin sign (U+212A) lowers to "k" and every invalid UTF-8
// byte to U+FFFD, so a Host routed to one origin would key as a host
// routed to another. fasthttp and net/url hand over a host decoded
// ("%E2%84%AA" as the sign's bytes, "%25" as '%'), so '%' is escaped too,
// or "a%25E2" would key as "a\xE2".
func appendLower(dst []byte, s string) []byte {
	const upper = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' {
			dst = append(dst, '%', upper[c>>4], upper[c&15])
		} else {
			dst = append(dst, lowerASCII(c))
		}
	}
	return dst
}

// SameOriginKey resolves a Location or Content-Location value against the
// request URI and returns its cache key, if it has the request's origin:
// RFC 9111 §4.4 forbids invalidating another origin's URIs.
func SameOriginKey(scheme, host, path, query, ref string) (string, bool) {
	base, err := url.Parse(strings.ToLower(scheme) + "://" + host + path)
	if err != nil {
		return "", false
	}
	base.RawQuery = query
	r, err := url.Parse(ref)
	if err != nil {
		return "", false
	}
	u := base.ResolveReference(r)
	if !equalASCIIFold(u.Scheme, base.Scheme) || !equalASCIIFold(u.Host, base.Host) {
		return "", false
	}
	return string(AppendURLKey(nil, u)), true
}

// equalASCIIFold is strings.EqualFold for ASCII letters only, as keys and
// the router compare hosts: EqualFold takes the Kelvin sign for "k".
func equalASCIIFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// VariantKey is the secondary key of one variant of the primary key.
func VariantKey(key, gen, v string) string {
	return string(AppendVariantKey(nil, key, gen, v))
}

// AppendVariantKey appends VariantKey(key, gen, v) to dst: the primary
// key, the generation and the variant, or the variant's SHA-256 when the
// key would pass half of abi.MaxCacheKeyLen. The entry's Meta, not its
// key, proves a match.
func AppendVariantKey(dst []byte, key, gen, v string) []byte {
	start := len(dst)
	dst = append(dst, key...)
	dst = append(dst, "\x00v\x00"...)
	dst = append(dst, gen...)
	dst = append(dst, 0)
	if len(dst)-start+len(v) <= abi.MaxCacheKeyLen/2 {
		return append(dst, v...)
	}
	dst = append(dst, '#')
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(v), len(v)))
	return hex.AppendEncode(dst, sum[:])
}
