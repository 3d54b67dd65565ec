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
// DoStream sends a request body that streams in chunks after the head, and
// takes an answer the origin streams as a Body to read: it holds a chunk of
// either at a time, and the deadline bounds the head while each wait for a
// piece of a body gets the budget anew. A streamed request body is never
// sent twice once a byte of it went out.
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
// The circuit breaker is there for an origin that cannot serve at all (its
// process down, the link broken or stalled, no application behind it): it
// fails requests fast and makes /ready say so. It must never open for one
// request's or one URL's trouble, since that would refuse every other
// request to the origin, so it counts only what speaks for the origin as a
// whole. Failures that prove the origin down open it after BreakerConfig
// Failures in a row: connections refused or broken, 5xx refusals (the
// origin's overload 503), responses that fail authentication or do not
// decode, and failure envelopes of scope wire.ScopeOrigin (no healthy
// upstream). Timeouts are ambiguous (a stalled origin, or one slow URL
// whose origin-made 504 arrived a little late), so they count only towards
// the other rule: a FailureRatio of failures among at least MinRequests
// attempts that ended in a rolling Window, gobreaker's. A stalled origin
// therefore opens it only once MinRequests have timed out within the
// window: under lighter traffic every request waits out its deadline
// instead of failing fast. What says the
// origin is up counts as a success and breaks a run: the application's
// answers, 4xx refusals (the origin is up, this edge is misconfigured),
// and failure envelopes of scope wire.ScopeRequest, which the origin makes
// when one request's upstream timed out, closed the connection or sent an
// invalid or too large response. A response too large for this edge is
// one response's trouble and counts as nothing. Once open, it lets Probes
// requests through after OpenFor; as many successes close it, a failure
// opens it again. Why it opened is in breaker_opens_total, TripReason (which /ready
// shows) and a log line with the counts that tripped it.
//
// Requests, responses and frame buffers are pooled per Client, so a steady
// exchange into a reused wire.Response allocates nothing (TestDoAllocs,
// BenchmarkDo). The dead-connection check costs one non-blocking recvfrom
// per request on a reused connection.
package originclient
