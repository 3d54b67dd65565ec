package wire

// TunnelPath is the HTTP request target an edge POSTs a tunnel's handshake
// to: a request frame with the tunnel flag, on a connection of its own,
// opened for the tunnel (a WebSocket upgrade, RFC 6455). The origin
// answers as on Path, with a response frame answering it; when that
// response's status is 101, both sides carry the tunnel's bytes, raw, on
// the same connection from the byte after the frame on, until either
// closes it. Any other status ends the tunnel before it began, and the
// origin closes the connection. README.md ("Tunnels") is the normative
// description.
const TunnelPath = "/_wedge/1/tunnel"

// AppendTunnelRequest appends r, sealed as a tunnel's handshake, to dst: a
// request frame with the tunnel flag (0x04), which the MAC covers. A
// handshake opens an interactive session in the name of whoever r
// carries, so it must not be what a request frame captured on the link
// can be replayed as: DecodeRequest refuses this frame, and
// DecodeTunnelRequest refuses any other.
func (c *Codec) AppendTunnelRequest(dst []byte, r *Request) ([]byte, Exchange, error) {
	return c.appendRequest(dst, r, flagTunnel)
}

// DecodeTunnelRequest opens a tunnel's handshake, as AppendTunnelRequest
// sealed it, into r, which it resets first. A request frame, or a stream
// head, is refused with ErrAuth: it was not signed as a handshake.
func (c *Codec) DecodeTunnelRequest(frame []byte, r *Request) (Exchange, error) {
	return c.decodeRequest(frame, r, flagTunnel)
}

// IsTunnelHandshake reports whether frame carries the tunnel flag. It
// authenticates nothing: it only tells a receiver that also takes
// handshakes sealed as requests (by edges that predate the flag) which of
// DecodeTunnelRequest and DecodeRequest to open it with.
func IsTunnelHandshake(frame []byte) bool {
	return len(frame) >= headerLen && frame[offFlags]&flagTunnel != 0
}
