package wire

// TunnelPath is the HTTP request target an edge POSTs a tunnel's handshake
// to: a request frame, on a connection of its own, opened for the tunnel
// (a WebSocket upgrade, RFC 6455). The origin answers as on Path, with a
// response frame answering it; when that response's status is 101, both
// sides carry the tunnel's bytes, raw, on the same connection from the
// byte after the frame on, until either closes it. Any other status ends
// the tunnel before it began, and the origin closes the connection.
// README.md ("Tunnels") is the normative description.
const TunnelPath = "/_wedge/1/tunnel"
