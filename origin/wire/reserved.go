package wire

// ValuePrefix starts the name of the header field that carries a forwarded
// value to an HTTP application: Wedge-Value-<name>.
const ValuePrefix = "Wedge-Value-"

// Reserved reports whether a request header field named name may only be
// set by Wedge, so that one a client sent must never reach an application:
// a name that starts with ValuePrefix once read the way gateways turn field
// names into variables, and Proxy.
//
// # Why
//
// CGI (RFC 3875 §4.1.18), WSGI, Rack and PHP hand an application its
// request fields as HTTP_* variables: upper-cased, with '-' (and, in some
// servers, every other byte that is not a letter or digit) turned into '_'.
// "Wedge_Value_Identity_Sub: admin" is a different field name from
// "Wedge-Value-Identity-Sub" to HTTP, but both become
// HTTP_WEDGE_VALUE_IDENTITY_SUB, merged with the identity the edge
// verified. So the prefix is matched with ASCII case folded and every byte
// other than a letter or digit taken as '-'. Ordinary fields with '_' (a
// valid token character) still pass. Proxy becomes HTTP_PROXY, which many
// HTTP clients read as their proxy setting (httpoxy, CVE-2016-5385);
// wire.HopByHop covers Proxy-* but not the bare name.
func Reserved[S ~string | ~[]byte](name S) bool {
	const proxy = "proxy"
	if len(name) == len(proxy) {
		return asciiEqualFold(name, proxy)
	}
	if len(name) < len(ValuePrefix) {
		return false
	}
	for i := range len(ValuePrefix) {
		if gatewayFold(name[i]) != gatewayFold(ValuePrefix[i]) {
			return false
		}
	}
	return true
}

// gatewayFold maps c as the most folding gateway does: letters to lower
// case, digits as they are, anything else to '-'.
func gatewayFold(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return c
	}
	return '-'
}
