package edge

import (
	"errors"
	"net"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/internal/tracing"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/host"
)

// Origin sends a sampled request to the origin within a span of kind
// client, a child of the request's: how long the edge waited on the
// origin (the origin client's queue and retries, the link, the origin
// service, or the regional tier's ask), apart from its own work. The
// traceparent the origin gets names this span, so the origin service's
// span is its child; a traceparent a plugin put in place of the one
// naming the request's span goes on as the plugin left it. The span's
// times are the access log's readings of the clock when it is on, as a
// plugin call's are.
func (c *tracedChain) Origin(x *host.MemExchange) {
	o := c.rt.origin
	sp := c.t.Child(c.parent, "origin "+o.name, trace.SpanKindClient, c.now())
	h := &x.Req.Header
	from, perr := tracing.Find(len(h.Fields),
		func(i int) string { return h.Fields[i].Name }, func(i int) string { return h.Fields[i].Value })
	if perr == nil && from.SpanID == c.parent.SpanContext().SpanID() {
		// Plugins read the request's span in the traceparent: the response
		// phases get it back.
		was, _ := h.Get(tracing.Header)
		var buf [64]byte
		sc := sp.SpanContext()
		p := tracing.Parent{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: sc.TraceFlags()}
		h.Set(tracing.Header, x.CopyString(p.Append(buf[:0])))
		defer h.Set(tracing.Header, was)
	}
	err := c.forward(x) // handler.go
	sp.SetAttributes(attribute.String("wedge.origin", o.name))
	if addr, port, perr := net.SplitHostPort(o.addr); perr == nil {
		sp.SetAttributes(attribute.String("server.address", addr))
		if n, perr := strconv.Atoi(port); perr == nil {
			sp.SetAttributes(attribute.Int("server.port", n))
		}
	}
	// Body sizes only where the body was whole: a streamed one's size is
	// not known until it has gone by.
	if c.st == nil || c.st.in == nil {
		sp.SetAttributes(attribute.Int("http.request.body.size", len(x.Req.Body)))
	}
	if err != nil {
		// No answer came: the status is the edge's own, not the origin's.
		sp.SetAttributes(attribute.String("error.type", errorType(err)))
		sp.SetStatus(codes.Error, err.Error())
	} else {
		status := x.Resp.Status
		sp.SetAttributes(attribute.Int("http.response.status_code", status))
		if c.st == nil || c.st.body == nil {
			sp.SetAttributes(attribute.Int("http.response.body.size", len(x.Resp.Body)))
		}
		// 5xx only, as the request's span and the origin's upstream span
		// judge: a 4xx is the origin's answer to the client, passed on.
		if status >= 500 {
			sp.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
			sp.SetStatus(codes.Error, "")
		}
	}
	sp.End(trace.WithTimestamp(c.now()))
}

// errorType is the span's error.type for the origin client's failure: the
// kinds its errors_total metric counts.
func errorType(err error) string {
	switch {
	case errors.Is(err, originclient.ErrBreakerOpen):
		return "breaker_open"
	case errors.Is(err, originclient.ErrTimeout):
		return "timeout"
	case errors.Is(err, originclient.ErrRefused):
		return "refused"
	case errors.Is(err, originclient.ErrTransport):
		return "transport"
	case errors.Is(err, errOriginBusy):
		return "origin_busy" // originlimit.go: not sent
	case errors.Is(err, originclient.ErrPoolFull):
		return "pool_full"
	case errors.Is(err, originclient.ErrCancelled):
		return "cancelled"
	}
	return wire.Kind(err)
}
