package wire

import (
	"errors"
	"strings"
	"testing"
)

// TestTunnelKindSeparated: a frame sealed as one kind never opens as
// another. A request frame captured on the link (one that carries a
// WebSocket handshake's fields, within Skew) is not a tunnel's handshake,
// and a handshake is not a request; each refusal is ErrAuth and says
// which kind came. A response never carries the tunnel flag.
func TestTunnelKindSeparated(t *testing.T) {
	for _, cfg := range []Config{{}, {MinCompress: 1 << 20}} { // compressed, and raw
		c := newCodec(t, cfg)
		ws := func() *Request {
			return &Request{Version: Version, Method: Bytes("GET"), Host: Bytes("example.com"), Path: Bytes("/chat"),
				Header: []Field{{Name: Bytes("sec-websocket-key"), Value: Bytes("dGhlIHNhbXBsZSBub25jZQ==")},
					{Name: Bytes("sec-websocket-version"), Value: Bytes("13")}},
				Values: []Field{{Name: Bytes("identity-sub"), Value: Bytes("u42")}}}
		}
		reqFrame, _, err := c.AppendRequest(nil, ws())
		if err != nil {
			t.Fatal(err)
		}
		hsFrame, hx, err := c.AppendTunnelRequest(nil, ws())
		if err != nil {
			t.Fatal(err)
		}
		if IsTunnelHandshake(reqFrame) || !IsTunnelHandshake(hsFrame) || IsTunnelHandshake(hsFrame[:headerLen-1]) {
			t.Fatalf("IsTunnelHandshake: request %v, handshake %v", IsTunnelHandshake(reqFrame), IsTunnelHandshake(hsFrame))
		}
		var r Request
		if _, err := c.DecodeTunnelRequest(reqFrame, &r); !errors.Is(err, ErrAuth) ||
			!strings.Contains(err.Error(), "a request frame where a tunnel's handshake was expected") {
			t.Fatalf("request frame opened as a handshake: %v, want ErrAuth", err)
		}
		if _, err := c.DecodeRequest(hsFrame, &r); !errors.Is(err, ErrAuth) ||
			!strings.Contains(err.Error(), "a tunnel's handshake where a request was expected") {
			t.Fatalf("handshake opened as a request: %v, want ErrAuth", err)
		}
		if _, err := c.DecodeRequestHead(hsFrame, &r); !errors.Is(err, ErrAuth) {
			t.Fatalf("handshake opened as a stream head: %v, want ErrAuth", err)
		}
		// The flag is inside the MAC: cleared or set on a sealed frame, the
		// frame no longer authenticates.
		for name, f := range map[string][]byte{"flag cleared": clearFlag(hsFrame, flagTunnel), "flag set": setFlag(reqFrame, flagTunnel)} {
			if _, err := c.DecodeRequest(f, &r); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "bad MAC") {
				t.Fatalf("%s, as a request: %v, want a bad MAC", name, err)
			}
			if _, err := c.DecodeTunnelRequest(f, &r); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "bad MAC") {
				t.Fatalf("%s, as a handshake: %v, want a bad MAC", name, err)
			}
		}
		// Each kind opens as itself, and a handshake is answered as any
		// request is.
		if _, err := c.DecodeRequest(reqFrame, &r); err != nil || string(r.Path) != "/chat" {
			t.Fatalf("request: %v", err)
		}
		x, err := c.DecodeTunnelRequest(hsFrame, &r)
		if err != nil || !sameRequest(&r, ws()) {
			t.Fatalf("handshake: %+v, %v", r, err)
		}
		resp, _, err := c.AppendResponse(nil, x, &Response{Status: 101})
		if err != nil {
			t.Fatal(err)
		}
		var got Response
		if _, err := c.DecodeResponse(resp, hx, &got); err != nil || got.Status != 101 {
			t.Fatalf("answer to the handshake: %d, %v", got.Status, err)
		}
		if _, err := c.DecodeResponse(signFrame(testKey(), resp[offFlags]|flagTunnel, testNow, resp[headerLen:], hsFrame[offMAC:headerLen]), hx, &got); !errors.Is(err, ErrAuth) ||
			!strings.Contains(err.Error(), "a response with the tunnel flag") {
			t.Fatalf("response with the tunnel flag: %v, want ErrAuth", err)
		}
	}
}

func clearFlag(frame []byte, f byte) []byte {
	out := append([]byte(nil), frame...)
	out[offFlags] &^= f
	return out
}

func setFlag(frame []byte, f byte) []byte {
	out := append([]byte(nil), frame...)
	out[offFlags] |= f
	return out
}
