package edge

import "github.com/valyala/fasthttp"

// ServedHeader is the response field that names the plugin versions that
// served a request, when the config's served_header is on.
const ServedHeader = "Wedge-Served"

// setServed sets ServedHeader to the versions of the request's first ran
// plugins (those whose request phase ran, in chain order), replacing one
// an origin sent: the field is the edge's word. The text is built in
// x.served, which the next request x serves reuses, so this allocates
// nothing once x is warm.
func setServed(ctx *fasthttp.RequestCtx, x *exchange, ran int) {
	h := &ctx.Response.Header
	h.Del(ServedHeader)
	if ran == 0 {
		return
	}
	b := x.served[:0]
	for i, l := range x.chain.held[:ran] {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, l.m.Name()...)
		b = append(b, '@')
		b = append(b, l.m.Version()...)
	}
	x.served = b
	h.SetBytesV(ServedHeader, b)
}
