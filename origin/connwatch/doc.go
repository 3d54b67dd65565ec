// Package connwatch tells whether a pooled keep-alive connection is fit to
// carry the next request: between a response and the next request an
// HTTP/1.1 connection must be silent, so anything readable on it then (EOF,
// a reset, or bytes nobody asked for) means it must not be used again.
//
// Watch wraps a client connection so that the first Write after a Read,
// which is where a new request starts, peeks at the socket first and fails
// with ErrStale, before a byte goes out, when it is not silent. The edge's
// origin client and the origin service's upstream proxy both dial through
// it.
//
// # Why
//
// A request written onto a connection its server already closed fails with
// a reset that looks like a failure after sending, so a POST could not be
// retried; caught before the write, any method can go to a fresh
// connection. Stray bytes are worse: a peer that wrote more than its
// response framed (bytes past Content-Length, a body on a 204 or on an
// answer to HEAD) leaves them to be read as the answer to the next request
// on that connection, which a cache would then store under the next URL.
//
// The check is one non-blocking recvfrom with MSG_PEEK per request on a
// reused connection, and allocates nothing. WatchIdle skips it for a
// connection reused soon after its last response, for a peer that closes
// connections only after a long idle timeout and never writes past its
// responses: the edge's link to the origin service uses it, the origin's
// link to applications (which may misbehave) checks every reuse. It sees the socket, not what a
// TLS layer above it has buffered; a reader that buffers (bufio) must still
// check its own buffer is empty before it gives a connection back. Bytes
// that arrive after the peek, while the request is on its way, cannot be
// told from the answer: that race is HTTP/1.1's own, and only closing the
// connection after every response would remove it.
//
// Hangup uses the same peek on the server's side of a connection, while a
// request on it waits for an answer from elsewhere: EOF or a reset there
// means the client hung up, and Abort closes the connection the request
// went on upstream, so the wait ends and the hang-up travels on (the edge
// to the origin service, the origin service to the application). Under
// TLS, a client's close_notify alert comes before its close; on Linux the
// close behind it is seen (POLLRDHUP), the alert never read. A
// request on an HTTP/2 or HTTP/3 stream (a Stream) has no socket of its
// own, and Hangup waits on the stream's context instead.
//
// On platforms without MSG_PEEK (see peek_other.go) Watch returns the
// connection unwrapped and nothing is checked.
package connwatch
