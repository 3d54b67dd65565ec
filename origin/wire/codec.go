package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/zstd"
)

// Errors a Codec returns, wrapped with detail. Kind names them for metrics.
var (
	ErrFrame       = errors.New("wire: malformed frame")
	ErrAuth        = errors.New("wire: authentication failed")
	ErrTooLarge    = errors.New("wire: envelope too large")
	ErrCompression = errors.New("wire: bad compressed payload")
	ErrEnvelope    = errors.New("wire: malformed envelope")
	ErrVersion     = errors.New("wire: unsupported protocol version")
)

// Kind names the class of a Codec error for metrics labels: "frame", "auth",
// "too_large", "compression", "envelope", "version", or "other".
func Kind(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

var kinds = [...]struct {
	err  error
	name string
}{
	{ErrFrame, "frame"}, {ErrAuth, "auth"}, {ErrTooLarge, "too_large"},
	{ErrCompression, "compression"}, {ErrEnvelope, "envelope"}, {ErrVersion, "version"},
}

// Frame layout; README.md has the normative description.
const (
	headerLen   = 26
	macLen      = 16
	flagZstd    = 1 << 0
	flagStream  = 1 << 1 // a streamed exchange's head: the body follows in chunks (stream.go)
	flagTunnel  = 1 << 2 // a tunnel's handshake (tunnel.go): inside the MAC, so no request passes for one
	flagsKind   = flagStream | flagTunnel
	knownFlags  = flagZstd | flagsKind
	offFlags    = 0
	offKey      = 1
	offTime     = 2
	offMAC      = 10
	labelReq    = "wedge/1 request\x00"
	labelResp   = "wedge/1 response"
	maxKeyBytes = 64
)

// Path is the HTTP request target edges POST frames to. The "1" is the
// framing version: a new frame layout gets a new path, so old and new edges
// can share an origin during an upgrade.
const Path = "/_wedge/1"

// Key is a shared secret that edges and the origin use to sign frames. Its
// ID travels in each frame so keys can be rotated: the origin accepts every
// key it holds, the edge signs with one.
type Key struct {
	ID     uint8
	Secret []byte
}

// ParseKey reads a key in the form "ID:HEX", as `wedgectl origin keygen`
// prints it, with a secret of 16 to 64 bytes.
func ParseKey(s string) (Key, error) {
	id, secret, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Key{}, errors.New("wire: key must look like ID:HEX")
	}
	n, err := strconv.ParseUint(id, 10, 8)
	if err != nil {
		return Key{}, fmt.Errorf("wire: key id %q: must be 0-255", id)
	}
	b, err := hex.DecodeString(secret)
	if err != nil {
		return Key{}, fmt.Errorf("wire: key secret: %w", err)
	}
	if len(b) < 16 || len(b) > maxKeyBytes {
		return Key{}, fmt.Errorf("wire: key secret is %d bytes, want 16 to %d", len(b), maxKeyBytes)
	}
	return Key{ID: uint8(n), Secret: b}, nil
}

// Text formats k the way ParseKey reads it, secret included.
func (k Key) Text() string { return strconv.Itoa(int(k.ID)) + ":" + hex.EncodeToString(k.Secret) }

// SameSecret reports whether k and o sign alike: HMAC pads a secret
// shorter than its block (64 bytes, the most ParseKey takes) with zeros,
// so secrets that differ only in trailing zero bytes are one key.
func (k Key) SameSecret(o Key) bool {
	return bytes.Equal(bytes.TrimRight(k.Secret, "\x00"), bytes.TrimRight(o.Secret, "\x00"))
}

// String names the key without its secret, so a Key or Config that ends up
// in a log line does not leak it.
func (k Key) String() string { return "wire key " + strconv.Itoa(int(k.ID)) }

// Config configures a Codec. The zero value of each field has a default.
type Config struct {
	// Keys are the keys frames may be signed with; Keys[0] signs what this
	// side sends. At least one is required.
	Keys []Key
	// Dicts are zstd dictionaries (as `wedgectl origin train-dict` writes
	// them), each carrying its ID. All of them can be decoded.
	Dicts [][]byte
	// Dict is the ID of the dictionary requests are compressed with; 0 means
	// none. Responses use whatever dictionary their request used.
	Dict uint32
	// MaxEnvelope bounds a frame and the envelope it decompresses to.
	// Default 16 MiB; at least MinMaxEnvelope.
	MaxEnvelope int
	// Skew is how far a request's timestamp may be from this clock.
	// Default 60 s.
	Skew time.Duration
	// Level is the zstd encoder level. Default zstd.SpeedFastest: on
	// envelopes it made frames within a few percent of SpeedDefault's (and
	// smaller on JSON bodies) for two thirds of the CPU (BenchmarkExchange).
	Level zstd.EncoderLevel
	// MinCompress is the envelope size, in bytes of CBOR, from which
	// envelopes sent without a dictionary are compressed; smaller ones go
	// out uncompressed (flags 0). 0 compresses every envelope. Edges and
	// origins use DefaultMinCompress: on the ~1 KB envelopes of a typical
	// exchange zstd saved ~15% of the bytes for ~5 us of CPU on each side
	// (BenchmarkExchange, small/nodict against small/raw). With a
	// dictionary every envelope is compressed: that is what it is for.
	MinCompress int
}

// DefaultMinCompress is the MinCompress the edge and origin binaries use.
const DefaultMinCompress = 2 << 10

// DefaultMaxEnvelope is the MaxEnvelope used when the Config leaves it 0.
const DefaultMaxEnvelope = 16 << 20

// MinMaxEnvelope is the smallest MaxEnvelope a Codec accepts. A zstd frame
// without a content size is bounded by what its blocks can hold, which for
// the smallest envelopes is 1 KiB; below a few KiB that bound would refuse
// ordinary frames.
const MinMaxEnvelope = 4 << 10

// Codec seals and opens frames: CBOR, then zstd, then a MAC. It is safe for
// concurrent use; its encoders and decoders are pooled inside.
type Codec struct {
	keys [256]*keyState
	sign *keyState
	enc  map[uint32]*zstd.Encoder // by dictionary ID; 0 is no dictionary
	dec  *zstd.Decoder
	dict uint32
	max  int
	skew time.Duration
	// minZstd is Config.MinCompress.
	minZstd int
	now     func() time.Time // a hook so tests can fix the clock
	bufs    sync.Pool        // *bytes.Buffer: CBOR being sealed, or a decompressed payload
}

type keyState struct {
	id   uint8
	pool sync.Pool // *macState keyed with this key
}

// macState is a pooled HMAC with scratch space: the hash is an interface, so
// anything passed to it escapes, and a caller's stack array would be moved to
// the heap on every call.
type macState struct {
	h    hash.Hash
	bind [macLen]byte
	sum  [sha256.Size]byte
}

// Exchange carries what answering a request needs from the request: the key
// and dictionary it used and its MAC, which the response's MAC covers so a
// response cannot be replayed onto another request.
type Exchange struct {
	Key  uint8
	Dict uint32
	// Size is the request's CBOR size before compression.
	Size int
	// Sealed is when the request frame was sealed, by the sender's clock:
	// the frame's timestamp, to the millisecond.
	Sealed time.Time
	mac    [macLen]byte
}

// NewCodec checks cfg and builds a Codec.
func NewCodec(cfg Config) (_ *Codec, err error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("wire: no key configured")
	}
	if cfg.MinCompress < 0 {
		return nil, fmt.Errorf("wire: MinCompress %d is negative", cfg.MinCompress)
	}
	c := &Codec{dict: cfg.Dict, max: cfg.MaxEnvelope, skew: cfg.Skew, now: time.Now, minZstd: cfg.MinCompress,
		enc: map[uint32]*zstd.Encoder{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	switch {
	case c.max == 0:
		c.max = DefaultMaxEnvelope
	case c.max < MinMaxEnvelope:
		return nil, fmt.Errorf("wire: MaxEnvelope %d is below the minimum of %d", c.max, MinMaxEnvelope)
	}
	if c.skew <= 0 {
		c.skew = 60 * time.Second
	}
	for _, k := range cfg.Keys {
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("wire: key %d: secret shorter than 16 bytes", k.ID)
		}
		if c.keys[k.ID] != nil {
			return nil, fmt.Errorf("wire: key %d given twice", k.ID)
		}
		secret := bytes.Clone(k.Secret)
		ks := &keyState{id: k.ID}
		ks.pool.New = func() any { return &macState{h: hmac.New(sha256.New, secret)} }
		c.keys[k.ID] = ks
	}
	c.sign = c.keys[cfg.Keys[0].ID]
	level := cfg.Level
	if level == 0 {
		level = zstd.SpeedFastest
	}
	// The MAC already protects the payload, so the zstd checksum would
	// only add 4 bytes to every frame.
	encOpts := []zstd.EOption{zstd.WithEncoderLevel(level), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0))}
	e, err := zstd.NewWriter(nil, encOpts...)
	if err != nil {
		return nil, fmt.Errorf("wire: zstd encoder: %w", err)
	}
	c.enc[0] = e
	for _, d := range cfg.Dicts {
		id, err := DictID(d)
		if err != nil {
			return nil, err
		}
		if c.enc[id] != nil {
			return nil, fmt.Errorf("wire: dictionary %d given twice", id)
		}
		e, err := zstd.NewWriter(nil, append(encOpts, zstd.WithEncoderDict(d))...)
		if err != nil {
			return nil, fmt.Errorf("wire: dictionary %d: %w", id, err)
		}
		c.enc[id] = e
	}
	if c.enc[c.dict] == nil {
		return nil, fmt.Errorf("wire: dictionary %d is not among the configured ones", c.dict)
	}
	// The memory bound caps what DecodeAll produces; it backs up
	// checkZstd, which refuses bombs before decoding starts. DecodeAll
	// keeps its history in its output, so a window up to that same bound
	// costs nothing more (and a larger one could not be filled anyway).
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(uint64(c.max)),
		zstd.WithDecoderMaxWindow(uint64(c.max)),
		zstd.WithDecoderDicts(cfg.Dicts...), zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd decoder: %w", err)
	}
	c.dec = dec
	c.bufs.New = func() any { return bytes.NewBuffer(make([]byte, 0, 4096)) }
	return c, nil
}

// MaxEnvelope is the bound on frames and envelopes this Codec enforces;
// transports size their body limits from it.
func (c *Codec) MaxEnvelope() int { return c.max }

// Skew is how far from this clock a request's timestamp may be: the window
// in which a captured request frame can be replayed.
func (c *Codec) Skew() time.Duration { return c.skew }

// decOptions are the CBOR decode limits. Envelopes nest five deep (map,
// interim list, interim, field list, field), so eight levels leave room for
// fields added later; the array bound caps header fields, values and tags.
var decOptions = cbor.DecOptions{
	DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	MaxNestedLevels:  8,
	MaxArrayElements: MaxFields,
	MaxMapPairs:      64,
	IndefLength:      cbor.IndefLengthForbidden,
	TagsMd:           cbor.TagsForbidden,
}

// MaxFields bounds the header fields (and forwarded values, and tags) of one
// envelope.
const MaxFields = 1024

// Close releases the encoders' and decoder's goroutines.
func (c *Codec) Close() {
	for _, e := range c.enc {
		e.Close()
	}
	if c.dec != nil {
		c.dec.Close()
	}
}

// AppendRequest appends r, sealed into a frame, to dst. It sets r.Version.
func (c *Codec) AppendRequest(dst []byte, r *Request) ([]byte, Exchange, error) {
	return c.appendRequest(dst, r, 0)
}

// appendRequest is AppendRequest for a frame of the kind the flags in kind
// name (none, or flagTunnel): they are sealed into the MAC with the rest.
func (c *Codec) appendRequest(dst []byte, r *Request, kind byte) ([]byte, Exchange, error) {
	r.Version = Version
	if len(r.Method) == 0 {
		return dst, Exchange{}, fmt.Errorf("%w: request without a method", ErrEnvelope)
	}
	if err := checkCounts(len(r.Header), len(r.Values), 0); err != nil {
		return dst, Exchange{}, err
	}
	start := len(dst)
	dst, n, err := c.seal(dst, r, c.sign, c.dict, nil, kind)
	if err != nil {
		return dst[:start], Exchange{}, err
	}
	x := Exchange{Key: c.sign.id, Dict: c.dict, Size: n, Sealed: frameTime(dst[start:])}
	copy(x.mac[:], dst[start+offMAC:])
	return dst, x, nil
}

// DecodeRequest opens a request frame into r, which it resets first. The
// frame is authenticated before a byte of it is decompressed or parsed.
func (c *Codec) DecodeRequest(frame []byte, r *Request) (Exchange, error) {
	return c.decodeRequest(frame, r, 0)
}

// decodeRequest is DecodeRequest for a frame of the kind the flags in kind
// name: none for a whole envelope, flagStream for a streamed request's
// head (DecodeRequestHead), flagTunnel for a tunnel's handshake
// (DecodeTunnelRequest).
func (c *Codec) decodeRequest(frame []byte, r *Request, kind byte) (Exchange, error) {
	var x Exchange
	ks, payload, err := c.open(frame, nil, kind)
	if err != nil {
		return x, err
	}
	if err := c.checkTime(frame); err != nil {
		return x, err
	}
	x.Key = ks.id
	x.Sealed = frameTime(frame)
	copy(x.mac[:], frame[offMAC:])
	r.Reset()
	x.Size, x.Dict, err = c.decode(frame[offFlags], payload, r)
	if err != nil {
		return x, err
	}
	if r.Version != Version {
		return x, fmt.Errorf("%w %d (this side speaks %d)", ErrVersion, r.Version, Version)
	}
	if len(r.Method) == 0 {
		return x, fmt.Errorf("%w: request without a method", ErrEnvelope)
	}
	return x, nil
}

// AppendResponse appends r, sealed into a frame that answers x, to dst. It
// uses the key and dictionary the request used.
func (c *Codec) AppendResponse(dst []byte, x Exchange, r *Response) ([]byte, int, error) {
	ks := c.keys[x.Key]
	if ks == nil {
		return dst, 0, fmt.Errorf("%w: unknown key %d", ErrAuth, x.Key)
	}
	if r.Status < 100 || r.Status > 599 {
		return dst, 0, fmt.Errorf("%w: status %d", ErrEnvelope, r.Status)
	}
	if err := checkCounts(len(r.Header), 0, len(r.Cache.Tags)); err != nil {
		return dst, 0, err
	}
	if err := checkInterim(r.Interim); err != nil {
		return dst, 0, err
	}
	start := len(dst)
	dst, n, err := c.seal(dst, r, ks, x.Dict, x.mac[:], 0)
	if err != nil {
		return dst[:start], n, err
	}
	return dst, n, nil
}

// DecodeResponse opens a response frame that answers x into r, which it
// resets first, and returns the envelope's size before compression.
func (c *Codec) DecodeResponse(frame []byte, x Exchange, r *Response) (int, error) {
	return c.decodeResponse(frame, x, r, 0)
}

// decodeResponse is DecodeResponse for a whole envelope or, with kind
// flagStream, for a streamed response's head (DecodeResponseHead).
func (c *Codec) decodeResponse(frame []byte, x Exchange, r *Response, kind byte) (int, error) {
	ks, payload, err := c.open(frame, x.mac[:], kind)
	if err != nil {
		return 0, err
	}
	if ks.id != x.Key {
		return 0, fmt.Errorf("%w: response signed with key %d, request with %d", ErrAuth, ks.id, x.Key)
	}
	r.Reset()
	n, _, err := c.decode(frame[offFlags], payload, r)
	if err != nil {
		return n, err
	}
	if r.Status < 100 || r.Status > 599 {
		return n, fmt.Errorf("%w: status %d", ErrEnvelope, r.Status)
	}
	return n, checkInterim(r.Interim)
}

// checkInterim refuses informational responses that may not travel: more
// than MaxInterim, or a status outside 102..199.
func checkInterim(in []Interim) error {
	if len(in) > MaxInterim {
		return fmt.Errorf("%w: %d interim responses, limit %d", ErrEnvelope, len(in), MaxInterim)
	}
	for i := range in {
		if s := in[i].Status; s < 102 || s > 199 {
			return fmt.Errorf("%w: interim status %d", ErrEnvelope, s)
		}
		if err := checkCounts(len(in[i].Header), 0, 0); err != nil {
			return fmt.Errorf("interim response %d: %w", i, err)
		}
	}
	return nil
}

// checkCounts refuses to send what the peer's decoder would refuse, so the
// sender gets the clear error rather than the peer.
func checkCounts(header, values, tags int) error {
	switch {
	case header > MaxFields:
		return fmt.Errorf("%w: %d header fields, limit %d", ErrEnvelope, header, MaxFields)
	case values > MaxFields:
		return fmt.Errorf("%w: %d forwarded values, limit %d", ErrEnvelope, values, MaxFields)
	case tags > MaxFields:
		return fmt.Errorf("%w: %d cache tags, limit %d", ErrEnvelope, tags, MaxFields)
	}
	return nil
}

// seal appends header, then the compressed CBOR of v, then fills in the MAC.
// kind holds the flags that say what kind of frame it is, if not a whole
// request or response.
func (c *Codec) seal(dst []byte, v any, ks *keyState, dict uint32, bind []byte, kind byte) ([]byte, int, error) {
	enc := c.enc[dict]
	if enc == nil {
		return dst, 0, fmt.Errorf("%w: dictionary %d unknown here", ErrCompression, dict)
	}
	buf := c.bufs.Get().(*bytes.Buffer)
	defer c.bufs.Put(buf)
	buf.Reset()
	raw := appendEnvelope(buf.AvailableBuffer(), v)
	if cap(raw) > buf.Cap() {
		// Keep the bigger buffer for the next envelope.
		*buf = *bytes.NewBuffer(raw[:0])
	}
	if len(raw) > c.max {
		return dst, len(raw), fmt.Errorf("%w: envelope of %d bytes, limit %d", ErrTooLarge, len(raw), c.max)
	}
	start := len(dst)
	dst = append(dst, make([]byte, headerLen)...)
	h := dst[start:]
	h[offKey] = ks.id
	binary.BigEndian.PutUint64(h[offTime:], uint64(c.now().UnixMilli()))
	if dict == 0 && len(raw) < c.minZstd {
		h[offFlags] = kind
		dst = append(dst, raw...)
	} else {
		h[offFlags] = kind | flagZstd
		dst = enc.EncodeAll(raw, dst)
	}
	// Incompressible envelopes grow a little in zstd; the peer would refuse
	// a frame past its bound, so refuse it here.
	if n := len(dst) - start; n > c.max {
		return dst, len(raw), fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, n, c.max)
	}
	mac := ks.sum(dst[start:], bind)
	copy(dst[start+offMAC:], mac[:])
	return dst, len(raw), nil
}

// open checks a frame's header and MAC and returns the key and the payload.
// kind holds the flags the frame's kind flags (flagsKind) must equal: a
// streamed exchange's head taken for a whole envelope would be a body cut
// off, and a request taken for a tunnel's handshake (or the reverse) would
// be a frame captured on the link put to a use its sender never signed.
func (c *Codec) open(frame, bind []byte, kind byte) (*keyState, []byte, error) {
	if len(frame) < headerLen {
		return nil, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrFrame, len(frame), headerLen)
	}
	if len(frame) > c.max {
		return nil, nil, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, len(frame), c.max)
	}
	if f := frame[offFlags]; f&^knownFlags != 0 {
		return nil, nil, fmt.Errorf("%w: unknown flags %#x", ErrFrame, f)
	}
	ks := c.keys[frame[offKey]]
	if ks == nil {
		return nil, nil, fmt.Errorf("%w: unknown key %d", ErrAuth, frame[offKey])
	}
	want := ks.sum(frame, bind)
	if !hmac.Equal(want[:], frame[offMAC:offMAC+macLen]) {
		return nil, nil, fmt.Errorf("%w: bad MAC for key %d", ErrAuth, ks.id)
	}
	if got := frame[offFlags] & flagsKind; got != kind {
		return nil, nil, kindError(got, kind, bind != nil)
	}
	return ks, frame[headerLen:], nil
}

// kindError says why a frame of kind got, which authenticated, is refused
// where one of kind want was expected. Signed as one kind, a frame is
// another kind's forgery (ErrAuth); the stream flag is the exception, its
// mismatch a malformed exchange (ErrFrame), as it has always been.
func kindError(got, want byte, response bool) error {
	switch {
	case got&flagTunnel != 0 && response:
		return fmt.Errorf("%w: a response with the tunnel flag: only a tunnel's handshake carries it", ErrAuth)
	case got&flagTunnel != 0 && want&flagTunnel == 0:
		return fmt.Errorf("%w: a tunnel's handshake where a request was expected: it was sealed for %s only", ErrAuth, TunnelPath)
	case want&flagTunnel != 0 && got&flagTunnel == 0:
		return fmt.Errorf("%w: a request frame where a tunnel's handshake was expected: a handshake is sealed with the tunnel flag (0x04), which edges before it leave out", ErrAuth)
	case got&flagStream != 0:
		return fmt.Errorf("%w: a streamed exchange's head where a whole envelope was expected", ErrFrame)
	}
	return fmt.Errorf("%w: a whole envelope where a streamed exchange's head was expected", ErrFrame)
}

// frameTime reads a frame's timestamp.
func frameTime(frame []byte) time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(frame[offTime:])))
}

func (c *Codec) checkTime(frame []byte) error {
	t := frameTime(frame)
	if d := c.now().Sub(t); d > c.skew || d < -c.skew {
		return fmt.Errorf("%w: timestamp %s is %s off this clock, more than %s",
			ErrAuth, t.UTC().Format(time.RFC3339Nano), d.Round(time.Millisecond), c.skew)
	}
	return nil
}

// decode decompresses payload if flags say so and decodes the CBOR into v.
// It returns the CBOR size and the dictionary the payload used.
func (c *Codec) decode(flags byte, payload []byte, v any) (int, uint32, error) {
	raw := payload
	var dict uint32
	if flags&flagZstd != 0 {
		var err error
		if dict, err = c.checkZstd(payload); err != nil {
			return 0, dict, err
		}
		buf := c.bufs.Get().(*bytes.Buffer)
		defer c.bufs.Put(buf)
		buf.Reset()
		out, err := c.dec.DecodeAll(payload, buf.AvailableBuffer())
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
				return 0, dict, fmt.Errorf("%w: payload decompresses past %d bytes: %w", ErrTooLarge, c.max, err)
			}
			return 0, dict, fmt.Errorf("%w: %w", ErrCompression, err)
		}
		if cap(out) > buf.Cap() {
			// Keep the bigger buffer DecodeAll grew for the next frame.
			*buf = *bytes.NewBuffer(out[:0])
		}
		raw = out
	}
	if len(raw) > c.max {
		return len(raw), dict, fmt.Errorf("%w: envelope of %d bytes, limit %d", ErrTooLarge, len(raw), c.max)
	}
	if err := unmarshal(raw, v); err != nil {
		return len(raw), dict, err
	}
	return len(raw), dict, nil
}

// zstdBlockMax is the most one zstd block holds decompressed (RFC 8878
// §3.1.1.2.4, Block_Maximum_Size).
const zstdBlockMax = 128 << 10

// checkZstd reads the header and the block headers of the payload without
// decompressing anything. The payload must be exactly one zstd frame whose
// dictionary this side holds and whose decompressed size is bounded by
// MaxEnvelope: by its Frame_Content_Size, or when the frame has none, by
// what its blocks can hold at most. So a zstd bomb is refused before a byte
// of it is decoded, whether or not its header states its size.
func (c *Codec) checkZstd(p []byte) (uint32, error) {
	var h zstd.Header
	if err := h.Decode(p); err != nil {
		return 0, fmt.Errorf("%w: zstd header: %w", ErrCompression, err)
	}
	if h.Skippable {
		return 0, fmt.Errorf("%w: skippable zstd frame", ErrCompression)
	}
	if h.DictionaryID != 0 && c.enc[h.DictionaryID] == nil {
		return h.DictionaryID, fmt.Errorf("%w: unknown dictionary %d", ErrCompression, h.DictionaryID)
	}
	if h.HasFCS && h.FrameContentSize > uint64(c.max) {
		return h.DictionaryID, fmt.Errorf("%w: zstd frame content size %d, limit %d", ErrTooLarge, h.FrameContentSize, c.max)
	}
	// A single-segment frame's window is its content size, checked above.
	if !h.SingleSegment && h.WindowSize > uint64(c.max) {
		return h.DictionaryID, fmt.Errorf("%w: zstd window %d, limit %d", ErrTooLarge, h.WindowSize, c.max)
	}
	blockMax := uint64(zstdBlockMax)
	if !h.SingleSegment && h.WindowSize < blockMax {
		blockMax = h.WindowSize
	}
	var bound uint64
	off := h.HeaderSize
	for last := false; !last; {
		if len(p)-off < 3 {
			return h.DictionaryID, fmt.Errorf("%w: zstd frame truncated", ErrCompression)
		}
		bh := uint32(p[off]) | uint32(p[off+1])<<8 | uint32(p[off+2])<<16
		off += 3
		last = bh&1 != 0
		size := int(bh >> 3)
		switch (bh >> 1) & 3 {
		case 0: // raw
			bound += uint64(size)
		case 1: // RLE: one byte, repeated size times
			bound += uint64(size)
			size = 1
		case 2: // compressed
			bound += blockMax
		default:
			return h.DictionaryID, fmt.Errorf("%w: reserved zstd block type", ErrCompression)
		}
		if len(p)-off < size {
			return h.DictionaryID, fmt.Errorf("%w: zstd frame truncated", ErrCompression)
		}
		off += size
	}
	if h.HasCheckSum {
		off += 4
	}
	if off != len(p) {
		if off > len(p) {
			return h.DictionaryID, fmt.Errorf("%w: zstd frame truncated", ErrCompression)
		}
		return h.DictionaryID, fmt.Errorf("%w: %d bytes after the zstd frame", ErrCompression, len(p)-off)
	}
	if !h.HasFCS && bound > uint64(c.max) {
		return h.DictionaryID, fmt.Errorf("%w: zstd frame without content size may decompress to %d bytes, limit %d", ErrTooLarge, bound, c.max)
	}
	return h.DictionaryID, nil
}

var (
	labelReqBytes  = []byte(labelReq)
	labelRespBytes = []byte(labelResp)
)

// sum is the truncated HMAC-SHA256 of a frame: a label naming the
// direction, the MAC of the request it answers (responses only), the header
// up to the MAC (the flags, which name the frame's kind, among it), and the
// payload.
func (ks *keyState) sum(frame, bind []byte) (out [macLen]byte) {
	m := ks.pool.Get().(*macState)
	m.h.Reset()
	if bind == nil {
		m.h.Write(labelReqBytes)
	} else {
		m.h.Write(labelRespBytes)
		copy(m.bind[:], bind)
		m.h.Write(m.bind[:])
	}
	m.h.Write(frame[:offMAC])
	m.h.Write(frame[headerLen:])
	copy(out[:], m.h.Sum(m.sum[:0]))
	ks.pool.Put(m)
	return out
}

// Marshal returns the deterministic CBOR of a Request or Response, as it is
// before compression: what golden vectors hold and what dictionaries are
// trained on.
func Marshal(v any) ([]byte, error) {
	switch v.(type) {
	case *Request, *Response:
	default:
		return nil, fmt.Errorf("wire: cannot marshal %T", v)
	}
	return appendEnvelope(nil, v), nil
}

// appendEnvelope appends the deterministic CBOR of a *Request or *Response.
func appendEnvelope(dst []byte, v any) []byte {
	if r, ok := v.(*Request); ok {
		return appendRequest(dst, r)
	}
	return appendResponse(dst, v.(*Response))
}

// Unmarshal decodes CBOR into a Request or Response under the same limits a
// Codec applies (but without the frame's size bound). It checks the CBOR
// and the field types only: DecodeRequest and DecodeResponse also check the
// version, the method and the status.
func Unmarshal(b []byte, v any) error {
	switch v.(type) {
	case *Request, *Response:
	default:
		return fmt.Errorf("wire: cannot unmarshal into %T", v)
	}
	return unmarshal(b, v)
}

// unmarshal resets v, a *Request or *Response, and decodes b into it: on
// the fast path when b has the shape encoders write, else with the
// reflective decoder, whose verdict (and error) is the reference.
func unmarshal(b []byte, v any) error {
	switch v := v.(type) {
	case *Request:
		v.Reset()
		if decodeRequest(b, v) {
			return nil
		}
		v.Reset()
	case *Response:
		v.Reset()
		if decodeResponse(b, v) {
			return nil
		}
		v.Reset()
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return nil
}

var decMode, _ = decOptions.DecMode()
