// Package wire is the edge<->origin format, defined once: the CBOR
// envelopes an edge sends for a request no plugin answered and the origin
// sends back, and the frame that compresses and signs them. The edge and the
// origin service both import it; it imports nothing of Wedge's.
//
// README.md in this directory is the normative spec, with the CDDL of both
// envelopes, the frame layout, the HTTP contract and worked examples; the
// tests check it against the code, and testdata/golden holds vectors that
// they check byte for byte.
//
// # Why
//
// CBOR with small integer keys keeps small, header-heavy envelopes small
// before compression, and deterministic encoding makes the same envelope the
// same bytes, which golden vectors and a trained zstd dictionary both rely
// on. The dictionary pays most on small envelopes, where it supplies the
// header names and values a lone request cannot: about 3x smaller frames in
// TestDictShrinksSmallEnvelopes; see BenchmarkExchange for the cost.
//
// The envelope types carry fxamacker/cbor struct tags, and its reflective
// decoder, with the decode limits, is the reference for what is refused. The
// codec itself writes and reads envelopes without reflection (fast.go),
// which cost ~6 us of the ~1 KB exchange's ~7 us of CBOR: it writes the
// bytes the reflective encoder writes, reads the shape encoders produce, and
// hands anything else (extension keys, null, hostile input) to the
// reflective decoder, so it accepts nothing that one refuses
// (FuzzFastDecode). Without a dictionary, envelopes under
// Config.MinCompress go uncompressed: zstd on ~1 KB of CBOR saved ~15% of
// the bytes for most of the codec's CPU.
//
// Frames are signed with a shared key (HMAC-SHA256, truncated to 128 bits)
// rather than relying on mTLS alone, so the origin authenticates every
// envelope before it decompresses or parses a byte of it: an unauthenticated
// peer cannot reach the zstd or CBOR decoders at all. A response's MAC covers
// its request's MAC, so it cannot be replayed onto another request. The MAC
// does not hide anything: links that are not trusted need TLS as well.
//
// A body too large for an envelope, or of unknown length, streams after its
// envelope (the head, flag 0x02) in chunks of at most MaxChunk, each MAC
// chained to the one before from the head's (stream.go, FuzzBodyReader),
// so a receiver holds and checks one chunk at a time, and a body cut short
// or rearranged is refused.
//
// Key holders are still not trusted with memory: a zstd payload is checked
// from its headers alone (content size, or what its blocks can hold) before
// it is decompressed, so a bomb is refused without being inflated.
//
// The codec path allocates nothing once warm: frames are appended to the
// caller's buffer, scratch buffers and MAC states are pooled, and decoding
// into a reused Request or Response appends into its existing capacity
// (TestAllocs).
package wire
