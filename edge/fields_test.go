package edge_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/origintest"
	"github.com/talowa/wedge/origin/wire"
)

// TestFieldsInClientOrder: the request's fields reach plugins and the
// origin as the client sent them: in its order, names spelt as sent, one
// field per line. fasthttp's own view of the header puts Content-Type,
// User-Agent and Cookie first, spells them its way and merges Cookie
// lines, which header_names (in order of first appearance) would report.
func TestFieldsInClientOrder(t *testing.T) {
	addr := origintest.Start(t, origin.HandlerFunc(func(_ context.Context, req *wire.Request, resp *wire.Response) {
		resp.Status = 200
		for _, f := range req.Header {
			resp.Body = fmt.Appendf(resp.Body, "%s=%s|", f.Name, f.Value)
		}
	})).Addr
	n := startNode(t, config(addr, hello(t), ""))
	resp, body := n.raw(t, "POST /api/x HTTP/1.1\r\nHost: api.example.com\r\nAccept: a\r\ncookie: a=1\r\n"+
		"x-multi:  one \r\ncontent-type: text/plain\r\nCookie: b=2\r\nuser-agent: ua\r\nX-Multi: two\r\nContent-Length: 1\r\n\r\nx")
	want := "Accept=a|cookie=a=1|x-multi=one|content-type=text/plain|Cookie=b=2|user-agent=ua|X-Multi=two|"
	if resp.StatusCode != 200 || body != want {
		t.Fatalf("%d: the origin got\n%s\nwant\n%s", resp.StatusCode, body, want)
	}
}
