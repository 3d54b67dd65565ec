package edge

import (
	"bufio"
	"bytes"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
)

// FuzzRequestFields: whatever header section fasthttp accepts and lenient
// lets through, fromHTTP's copy for plugins and the origin holds token
// names and values without line breaks or surrounding whitespace, never a
// field the edge keeps to itself, no more than an envelope carries, and
// each field fasthttp parsed the same way (Cookie aside: fasthttp merges
// its lines).
func FuzzRequestFields(f *testing.F) {
	for _, s := range []string{
		"Host: x\r\nAccept: a\r\ncookie: a=1\r\nx-multi:  one \r\ncontent-type: t\r\nCookie: b=2\r\n\r\n",
		"Host: x\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nWedge-Value-Identity-Sub: a\r\nX: \t\r\n\r\n",
		"Host: x\r\nX: a\r\n b\r\n\r\n",
		"Host: x\nX: a\n\n",
		"Host: x\r\nX A: b\r\n:v\r\nY:\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	n := &Node{idBase: "f-"}
	x := new(exchange)
	f.Fuzz(func(t *testing.T, section []byte) {
		var r fasthttp.Request
		if r.Read(bufio.NewReader(bytes.NewReader(append([]byte("GET / HTTP/1.1\r\n"), section...)))) != nil {
			return
		}
		ctx := new(fasthttp.RequestCtx)
		ctx.Init(&r, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
		if status, _ := lenient(ctx); status != 0 {
			return
		}
		x.reset()
		n.fromHTTP(ctx, x)
		fields := x.Req.Header.Fields
		if len(fields) > wire.MaxFields {
			t.Fatalf("%d fields, past the envelope's %d", len(fields), wire.MaxFields)
		}
		for _, fd := range fields {
			switch {
			case !abi.ValidToken(fd.Name):
				t.Fatalf("field name %q is not a token", fd.Name)
			case strings.ContainsAny(fd.Value, "\r\n") || strings.TrimLeft(fd.Value, " \t") != fd.Value || strings.TrimRight(fd.Value, " \t") != fd.Value:
				t.Fatalf("field %q: value %q", fd.Name, fd.Value)
			case hopByHop(fd.Name) || strings.EqualFold(fd.Name, "Host") || wire.Reserved(fd.Name):
				t.Fatalf("field %q passed on", fd.Name)
			case strings.EqualFold(fd.Name, "Cookie"):
			default:
				var all []string
				for _, v := range r.Header.PeekAll(fd.Name) {
					all = append(all, string(v))
				}
				if !slices.Contains(all, fd.Value) {
					t.Fatalf("field %q: %q, fasthttp parsed %q", fd.Name, fd.Value, all)
				}
			}
		}
	})
}
