package wire

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Streamed exchanges (README.md, "Streamed bodies"): a body too large for
// one envelope, or of unknown length, travels after its envelope, the head,
// as a sequence of chunks. The HTTP body of a streamed exchange is the head
// frame's length (4 bytes, big-endian), the head frame (flag 0x02 set, the
// envelope's body empty), then the chunks; each chunk's MAC covers the one
// before it, from the head's MAC on, so chunks cannot be dropped,
// reordered, repeated or spliced in from another exchange, and the explicit
// end chunk means a body cut short is never taken for a whole one.

// StreamContentType is the Content-Type of an HTTP body holding a streamed
// exchange's head and chunks (a whole frame's is application/wedge).
const StreamContentType = "application/wedge-stream"

// Chunk layout.
const (
	// MaxChunk bounds the data of one chunk, so a receiver holds at most
	// that much of a body at a time.
	MaxChunk      = 64 << 10
	chunkHeadLen  = 4 + macLen // type, 24-bit length, MAC
	chunkData     = 0
	chunkEnd      = 1
	headLenPrefix = 4
	labelChunk    = "wedge/1 chunk\x00\x00\x00"
)

var labelChunkBytes = []byte(labelChunk)

// AppendRequestHead appends r, sealed as the head of a streamed request, to
// dst: a request frame with the stream flag, whose body follows in chunks
// (NewBodyWriter with the returned Exchange). r.Body must be empty.
func (c *Codec) AppendRequestHead(dst []byte, r *Request) ([]byte, Exchange, error) {
	if len(r.Body) > 0 {
		return dst, Exchange{}, fmt.Errorf("%w: a streamed request's head carries no body", ErrEnvelope)
	}
	start := len(dst)
	dst, x, err := c.AppendRequest(dst, r)
	if err != nil {
		return dst, x, err
	}
	x.mac = c.keys[x.Key].reseal(dst[start:], nil)
	return dst, x, nil
}

// DecodeRequestHead opens the head of a streamed request into r; its body
// is read with NewBodyReader and the returned Exchange.
func (c *Codec) DecodeRequestHead(frame []byte, r *Request) (Exchange, error) {
	return c.decodeRequest(frame, r, flagStream)
}

// AppendResponseHead appends r, sealed as the head of a streamed response
// that answers x, to dst, and moves x on to the head, so that a body
// writer made with x next continues its MAC chain. r.Body must be empty.
func (c *Codec) AppendResponseHead(dst []byte, x *Exchange, r *Response) ([]byte, int, error) {
	if len(r.Body) > 0 {
		return dst, 0, fmt.Errorf("%w: a streamed response's head carries no body", ErrEnvelope)
	}
	start := len(dst)
	dst, n, err := c.AppendResponse(dst, *x, r)
	if err != nil {
		return dst, n, err
	}
	x.mac = c.keys[x.Key].reseal(dst[start:], x.mac[:])
	return dst, n, nil
}

// DecodeResponseHead opens the head of a streamed response that answers x
// into r and moves x on to the head, for the body reader that follows.
func (c *Codec) DecodeResponseHead(frame []byte, x *Exchange, r *Response) (int, error) {
	n, err := c.decodeResponse(frame, *x, r, flagStream)
	if err != nil {
		return n, err
	}
	copy(x.mac[:], frame[offMAC:])
	return n, nil
}

// reseal sets the stream flag on a sealed frame and signs it again.
func (ks *keyState) reseal(frame, bind []byte) [macLen]byte {
	frame[offFlags] |= flagStream
	mac := ks.sum(frame, bind)
	copy(frame[offMAC:], mac[:])
	return mac
}

// AppendHead appends frame with the length prefix it has in front of a
// streamed exchange's chunks.
func AppendHead(dst, frame []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(frame)))
	return append(dst, frame...)
}

// ReadHead reads a length-prefixed head frame from r into buf's storage.
// The frame is at most MaxEnvelope bytes; it is not opened here. The
// buffer grows as the bytes arrive: before the frame is authenticated, its
// length is only a claim, and a peer that claims MaxEnvelope and sends a
// byte holds little memory.
func (c *Codec) ReadHead(r io.Reader, buf []byte) ([]byte, error) {
	var p [headLenPrefix]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return buf[:0], fmt.Errorf("%w: stream head length: %w", ErrFrame, unexpected(err))
	}
	n := binary.BigEndian.Uint32(p[:])
	if uint64(n) > uint64(c.max) {
		return buf[:0], fmt.Errorf("%w: stream head of %d bytes, limit %d", ErrTooLarge, n, c.max)
	}
	b := bytes.NewBuffer(buf[:0])
	m, err := b.ReadFrom(io.LimitReader(r, int64(n)))
	if err == nil && m < int64(n) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return b.Bytes()[:0], fmt.Errorf("%w: stream head: %w", ErrFrame, err)
	}
	return b.Bytes(), nil
}

// unexpected reads an end of input before the end chunk as the truncation
// it is.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chain is the running MAC of a streamed body.
type chain struct {
	ks  *keyState
	mac [macLen]byte
}

// next is the MAC of a chunk after c.mac: label, previous MAC, the chunk's
// type and length as sent, its data.
func (c *chain) next(head, data []byte) [macLen]byte {
	m := c.ks.pool.Get().(*macState)
	m.h.Reset()
	m.h.Write(labelChunkBytes)
	copy(m.bind[:], c.mac[:])
	m.h.Write(m.bind[:])
	m.h.Write(head[:4])
	m.h.Write(data)
	var out [macLen]byte
	copy(out[:], m.h.Sum(m.sum[:0]))
	c.ks.pool.Put(m)
	return out
}

func (c *Codec) chainOf(x *Exchange) (chain, error) {
	ks := c.keys[x.Key]
	if ks == nil {
		return chain{}, fmt.Errorf("%w: unknown key %d", ErrAuth, x.Key)
	}
	return chain{ks: ks, mac: x.mac}, nil
}

// BodyWriter writes a streamed body as chunks to an io.Writer. Each Write
// sends its bytes at once, in chunks of at most MaxChunk (the caller
// flushes the writer beneath where it buffers); Close sends the end chunk.
type BodyWriter struct {
	w     io.Writer
	x     *Exchange
	c     chain
	head  [chunkHeadLen]byte
	n     int64
	ended bool
}

// NewBodyWriter returns a writer of the body that follows x's head. Once
// it is closed, x stands at the body's end: a response to a streamed
// request is sealed against it, so it covers the whole request.
func (c *Codec) NewBodyWriter(w io.Writer, x *Exchange) (*BodyWriter, error) {
	ch, err := c.chainOf(x)
	if err != nil {
		return nil, err
	}
	return &BodyWriter{w: w, x: x, c: ch}, nil
}

// Write sends p as one or more data chunks.
func (b *BodyWriter) Write(p []byte) (int, error) {
	if b.ended {
		return 0, errors.New("wire: write after the end of a streamed body")
	}
	done := 0
	for len(p) > 0 {
		d := p[:min(len(p), MaxChunk)]
		if err := b.chunk(chunkData, d); err != nil {
			return done, err
		}
		done += len(d)
		p = p[len(d):]
	}
	return done, nil
}

// Close sends the end chunk and moves the Exchange on to it.
func (b *BodyWriter) Close() error {
	if b.ended {
		return nil
	}
	if err := b.chunk(chunkEnd, nil); err != nil {
		return err
	}
	b.ended = true
	b.x.mac = b.c.mac
	return nil
}

// Len is the bytes of body written so far.
func (b *BodyWriter) Len() int64 { return b.n }

func (b *BodyWriter) chunk(typ byte, data []byte) error {
	h := b.head[:]
	h[0] = typ
	h[1], h[2], h[3] = byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	mac := b.c.next(h, data)
	copy(h[4:], mac[:])
	if _, err := b.w.Write(h); err != nil {
		return err
	}
	if _, err := b.w.Write(data); err != nil {
		return err
	}
	b.c.mac = mac
	b.n += int64(len(data))
	return nil
}

// BodyReader reads a streamed body from its chunks, checking each one
// before a byte of it is returned. Read returns io.EOF after a verified end
// chunk only; a body cut short, a chunk out of place or tampered with, is
// an error wrapping ErrFrame or ErrAuth.
type BodyReader struct {
	r     io.Reader
	x     *Exchange
	c     chain
	buf   *[]byte // the current chunk's data, pooled
	data  []byte  // what is left of it
	index int
	n     int64
	err   error
}

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, MaxChunk); return &b }}

// NewBodyReader returns a reader of the body that follows x's head. Once
// it has returned io.EOF, x stands at the body's end. Close it to give
// back its buffer.
func (c *Codec) NewBodyReader(r io.Reader, x *Exchange) (*BodyReader, error) {
	ch, err := c.chainOf(x)
	if err != nil {
		return nil, err
	}
	return &BodyReader{r: r, x: x, c: ch, buf: chunkBufs.Get().(*[]byte)}, nil
}

// Read returns the data of verified chunks. It returns what one chunk
// holds as soon as that chunk is in, so a body sent in pieces (server-sent
// events) is passed on piece by piece.
func (b *BodyReader) Read(p []byte) (int, error) {
	for len(b.data) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.err = b.next()
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// Len is the bytes of body verified so far.
func (b *BodyReader) Len() int64 { return b.n }

// Close gives back the reader's buffer. It does not close what it reads.
func (b *BodyReader) Close() error {
	if b.buf != nil {
		chunkBufs.Put(b.buf)
		b.buf, b.data = nil, nil
	}
	if b.err == nil {
		b.err = errors.New("wire: streamed body closed")
	}
	return nil
}

// next reads and checks one chunk: its data into b.data, or io.EOF at a
// verified end.
func (b *BodyReader) next() error {
	if b.buf == nil {
		return errors.New("wire: streamed body closed")
	}
	var h [chunkHeadLen]byte
	if _, err := io.ReadFull(b.r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: streamed body ended after %d chunks without its end chunk", ErrFrame, b.index)
		}
		return fmt.Errorf("%w: chunk %d: %w", ErrFrame, b.index, unexpected(err))
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	switch {
	case h[0] != chunkData && h[0] != chunkEnd:
		return fmt.Errorf("%w: chunk %d: unknown type %d", ErrFrame, b.index, h[0])
	case h[0] == chunkEnd && n != 0:
		return fmt.Errorf("%w: chunk %d: end chunk with %d bytes of data", ErrFrame, b.index, n)
	case h[0] == chunkData && (n == 0 || n > MaxChunk):
		return fmt.Errorf("%w: chunk %d: %d bytes of data, want 1 to %d", ErrFrame, b.index, n, MaxChunk)
	}
	data := (*b.buf)[:n]
	if _, err := io.ReadFull(b.r, data); err != nil {
		return fmt.Errorf("%w: chunk %d: %w", ErrFrame, b.index, unexpected(err))
	}
	mac := b.c.next(h[:], data)
	if !hmac.Equal(mac[:], h[4:]) {
		return fmt.Errorf("%w: chunk %d: bad MAC (tampered with, out of order, or from another exchange)", ErrAuth, b.index)
	}
	b.c.mac = mac
	b.index++
	if h[0] == chunkEnd {
		b.x.mac = mac
		return io.EOF
	}
	b.n += int64(n)
	b.data = data
	return nil
}
