// Package wire is the edge<->origin format, defined once: the CBOR
// envelopes an edge sends for a request no plugin answered and the origin
// sends back, and the frame that compresses and signs them. The edge and the
// origin service both import it; it imports nothing of Wedge's.
//
// README.md in this directory is the normative spec, with the CDDL of both
// envelopes and the frame layout; testdata/ holds golden vectors that the
// tests check byte for byte.
//
// # Why
//
// CBOR with small integer keys keeps small, header-heavy envelopes small
// before compression, and deterministic encoding makes the same envelope the
// same bytes, which golden vectors and a trained zstd dictionary both rely
// on. The dictionary pays most on small envelopes, where it supplies the
// header names and values a lone request cannot: see BenchmarkWireMix.
//
// Frames are signed with a shared key (HMAC-SHA256, truncated to 128 bits)
// rather than relying on mTLS alone, so the origin authenticates every
// envelope before it decompresses or parses a byte of it: an unauthenticated
// peer cannot reach the zstd or CBOR decoders at all. A response's MAC covers
// its request's MAC, so it cannot be replayed onto another request.
package wire
