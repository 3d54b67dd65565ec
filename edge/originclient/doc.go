// Package originclient is the edge's client for the origin service: it seals
// a wire.Request into a frame, POSTs it to wire.Path over pooled keep-alive
// HTTP/1.1 connections, and opens the response frame into a wire.Response,
// all within the caller's deadline. One Client talks to one origin and owns
// that origin's circuit breaker and metric series.
//
// Do never outlives its deadline by more than scheduling noise: the deadline
// bounds waiting for a pooled connection, dialing (with the built-in dialer),
// the TLS handshake, writing and reading, and retry backoff is skipped when it
// would not leave time for another attempt.
//
// # Why
//
// Retries are limited to what cannot run a request twice: idempotent methods
// (RFC 9110 §9.2.2) after transport failures or a 503 overload refusal, and
// any method when nothing was sent: the connection could not be established,
// or a pooled keep-alive connection turned out to be closed by the origin
// (idle timeout, restart). The latter is caught before the request is written
// by peeking at the socket, since once a request is written to such a
// connection its reset looks like any other and a POST could not be retried.
// The pool's idle timeout (fasthttp's default, 10 s) should still stay below
// the origin's, which leaves only the race of a close in flight.
//
// The circuit breaker counts what says the origin is unwell: transport
// failures, timeouts, 5xx refusals, responses that fail authentication or do
// not decode, and failure envelopes the origin made itself (502, 503, 504
// with Response.Error set). An application's own 500 is a well-formed answer
// and does not count, nor do 4xx refusals, which say the origin is up and
// this edge is misconfigured.
//
// Requests, responses and frame buffers are pooled per Client, so a steady
// exchange into a reused wire.Response allocates nothing (TestDoAllocs,
// BenchmarkDo). The dead-connection check costs one non-blocking recvfrom
// per request on a reused connection.
package originclient
