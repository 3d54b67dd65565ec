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
	knownFlags  = flagZstd
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

// String formats k the way ParseKey reads it.
func (k Key) String() string { return strconv.Itoa(int(k.ID)) + ":" + hex.EncodeToString(k.Secret) }

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
	// Default 16 MiB.
	MaxEnvelope int
	// Skew is how far a request's timestamp may be from this clock.
	// Default 60 s.
	Skew time.Duration
	// Level is the zstd encoder level. Default zstd.SpeedDefault.
	Level zstd.EncoderLevel
}

// DefaultMaxEnvelope is the MaxEnvelope used when the Config leaves it 0.
const DefaultMaxEnvelope = 16 << 20

// Codec seals and opens frames: CBOR, then zstd, then a MAC. It is safe for
// concurrent use; its encoders and decoders are pooled inside.
type Codec struct {
	keys    [256]*keyState
	sign    *keyState
	enc     map[uint32]*zstd.Encoder
	dec     *zstd.Decoder
	dict    uint32
	max     int
	skew    time.Duration
	now     func() time.Time
	bufs    sync.Pool // *[]byte scratch for CBOR and decompression
	encMode cbor.UserBufferEncMode
}

type keyState struct {
	id   uint8
	pool sync.Pool // hash.Hash: HMAC-SHA256 with this key
}

// Exchange carries what answering a request needs from the request: the key
// and dictionary it used and its MAC, which the response's MAC covers so a
// response cannot be replayed onto another request.
type Exchange struct {
	Key  uint8
	Dict uint32
	// Size is the request's CBOR size before compression.
	Size int
	mac  [macLen]byte
}

// NewCodec checks cfg and builds a Codec.
func NewCodec(cfg Config) (*Codec, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("wire: no key configured")
	}
	c := &Codec{dict: cfg.Dict, max: cfg.MaxEnvelope, skew: cfg.Skew, now: time.Now,
		enc: map[uint32]*zstd.Encoder{}}
	if c.max <= 0 {
		c.max = DefaultMaxEnvelope
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
		ks.pool.New = func() any { return hmac.New(sha256.New, secret) }
		c.keys[k.ID] = ks
	}
	c.sign = c.keys[cfg.Keys[0].ID]
	level := cfg.Level
	if level == 0 {
		level = zstd.SpeedDefault
	}
	// The MAC already protects the payload, so the zstd checksum would
	// only add 4 bytes to every frame.
	encOpts := []zstd.EOption{zstd.WithEncoderLevel(level), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0))}
	var err error
	if c.enc[0], err = zstd.NewWriter(nil, encOpts...); err != nil {
		return nil, fmt.Errorf("wire: zstd encoder: %w", err)
	}
	for _, d := range cfg.Dicts {
		id, err := DictID(d)
		if err != nil {
			return nil, err
		}
		if c.enc[id] != nil {
			return nil, fmt.Errorf("wire: dictionary %d given twice", id)
		}
		if c.enc[id], err = zstd.NewWriter(nil, append(encOpts, zstd.WithEncoderDict(d))...); err != nil {
			return nil, fmt.Errorf("wire: dictionary %d: %w", id, err)
		}
	}
	if c.enc[c.dict] == nil {
		return nil, fmt.Errorf("wire: dictionary %d is not among the configured ones", c.dict)
	}
	// The window bound keeps a hostile frame from making the decoder
	// allocate a huge history; the memory bound caps what DecodeAll
	// produces, which is what stops a zstd bomb.
	c.dec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(uint64(c.max)),
		zstd.WithDecoderMaxWindow(uint64(min(c.max, 8<<20))), zstd.WithDecoderDicts(cfg.Dicts...),
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd decoder: %w", err)
	}
	if c.encMode, err = cbor.CoreDetEncOptions().UserBufferEncMode(); err != nil {
		return nil, fmt.Errorf("wire: cbor: %w", err)
	}
	c.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	return c, nil
}

// decOptions are the CBOR decode limits. Envelopes nest three deep (map,
// field list, field), so eight levels leave room for fields added later; the
// array bound caps header fields, values and tags.
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
	c.dec.Close()
}

// AppendRequest appends r, sealed into a frame, to dst. It sets r.Version.
func (c *Codec) AppendRequest(dst []byte, r *Request) ([]byte, Exchange, error) {
	r.Version = Version
	start := len(dst)
	dst, n, err := c.seal(dst, r, c.sign, c.dict, nil)
	if err != nil {
		return dst[:start], Exchange{}, err
	}
	x := Exchange{Key: c.sign.id, Dict: c.dict, Size: n}
	copy(x.mac[:], dst[start+offMAC:])
	return dst, x, nil
}

// DecodeRequest opens a request frame into r, which it resets first. The
// frame is authenticated before a byte of it is decompressed or parsed.
func (c *Codec) DecodeRequest(frame []byte, r *Request) (Exchange, error) {
	var x Exchange
	ks, payload, err := c.open(frame, nil)
	if err != nil {
		return x, err
	}
	if err := c.checkTime(frame); err != nil {
		return x, err
	}
	x.Key = ks.id
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
	start := len(dst)
	dst, n, err := c.seal(dst, r, ks, x.Dict, x.mac[:])
	if err != nil {
		return dst[:start], 0, err
	}
	return dst, n, nil
}

// DecodeResponse opens a response frame that answers x into r, which it
// resets first, and returns the envelope's size before compression.
func (c *Codec) DecodeResponse(frame []byte, x Exchange, r *Response) (int, error) {
	ks, payload, err := c.open(frame, x.mac[:])
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
	return n, nil
}

// seal appends header, then the compressed CBOR of v, then fills in the MAC.
func (c *Codec) seal(dst []byte, v any, ks *keyState, dict uint32, bind []byte) ([]byte, int, error) {
	enc := c.enc[dict]
	if enc == nil {
		return dst, 0, fmt.Errorf("%w: dictionary %d unknown here", ErrCompression, dict)
	}
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	buf := bytes.NewBuffer((*bp)[:0])
	if err := c.encMode.MarshalToBuffer(v, buf); err != nil {
		return dst, 0, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	raw := buf.Bytes()
	*bp = raw[:0]
	if len(raw) > c.max {
		return dst, len(raw), fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), c.max)
	}
	start := len(dst)
	dst = append(dst, make([]byte, headerLen)...)
	h := dst[start:]
	h[offFlags] = flagZstd
	h[offKey] = ks.id
	binary.BigEndian.PutUint64(h[offTime:], uint64(c.now().UnixMilli()))
	dst = enc.EncodeAll(raw, dst)
	mac := ks.sum(dst[start:], bind)
	copy(dst[start+offMAC:], mac[:])
	return dst, len(raw), nil
}

// open checks a frame's header and MAC and returns the key and the payload.
func (c *Codec) open(frame, bind []byte) (*keyState, []byte, error) {
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
		return nil, nil, fmt.Errorf("%w: bad signature", ErrAuth)
	}
	return ks, frame[headerLen:], nil
}

func (c *Codec) checkTime(frame []byte) error {
	t := time.UnixMilli(int64(binary.BigEndian.Uint64(frame[offTime:])))
	if d := c.now().Sub(t); d > c.skew || d < -c.skew {
		return fmt.Errorf("%w: timestamp %s off by %s, more than %s", ErrAuth, t.UTC().Format(time.RFC3339), d.Round(time.Millisecond), c.skew)
	}
	return nil
}

// decode decompresses payload if flags say so and decodes the CBOR into v.
// It returns the CBOR size and the dictionary the payload used.
func (c *Codec) decode(flags byte, payload []byte, v any) (int, uint32, error) {
	var dict uint32
	raw := payload
	if flags&flagZstd != 0 {
		var h zstd.Header
		if err := h.Decode(payload); err != nil {
			return 0, 0, fmt.Errorf("%w: %w", ErrCompression, err)
		}
		dict = h.DictionaryID
		bp := c.bufs.Get().(*[]byte)
		defer c.bufs.Put(bp)
		out, err := c.dec.DecodeAll(payload, (*bp)[:0])
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return 0, dict, fmt.Errorf("%w: decompresses past %d bytes: %w", ErrTooLarge, c.max, err)
			}
			return 0, dict, fmt.Errorf("%w: %w", ErrCompression, err)
		}
		*bp = out[:0]
		raw = out
	}
	if len(raw) > c.max {
		return len(raw), dict, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), c.max)
	}
	if err := decMode.Unmarshal(raw, v); err != nil {
		return len(raw), dict, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return len(raw), dict, nil
}

// sum is the truncated HMAC-SHA256 of a frame: a label naming the direction,
// the MAC of the request it answers (responses only), the header up to the
// MAC, and the payload.
func (ks *keyState) sum(frame, bind []byte) (out [macLen]byte) {
	h := ks.pool.Get().(hash.Hash)
	h.Reset()
	if bind == nil {
		h.Write([]byte(labelReq))
	} else {
		h.Write([]byte(labelResp))
		h.Write(bind)
	}
	h.Write(frame[:offMAC])
	h.Write(frame[headerLen:])
	var scratch [sha256.Size]byte
	copy(out[:], h.Sum(scratch[:0]))
	ks.pool.Put(h)
	return out
}

// detEnc is the deterministic (RFC 8949 §4.2.1 core) encoding every
// envelope uses.
var detEnc, _ = cbor.CoreDetEncOptions().EncMode()

// Marshal returns the deterministic CBOR of a Request or Response, as it is
// before compression: what golden vectors hold and what dictionaries are
// trained on.
func Marshal(v any) ([]byte, error) {
	switch v.(type) {
	case *Request, *Response:
	default:
		return nil, fmt.Errorf("wire: cannot marshal %T", v)
	}
	b, err := detEnc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return b, nil
}

// Unmarshal decodes CBOR into a Request or Response under the same limits a
// Codec applies (but without the frame's size bound).
func Unmarshal(b []byte, v any) error {
	switch v := v.(type) {
	case *Request:
		v.Reset()
	case *Response:
		v.Reset()
	default:
		return fmt.Errorf("wire: cannot unmarshal into %T", v)
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	return nil
}

var decMode, _ = decOptions.DecMode()
