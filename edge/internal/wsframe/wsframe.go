// Package wsframe follows the frames of one direction of a WebSocket
// connection (RFC 6455 §5) as its bytes pass through a proxy: it reads each
// frame header, checks it, counts the payload of each message against a
// bound and skips the payload itself, which it never buffers or unmasks.
// The edge's tunnels run one Tracker per direction, to enforce the message
// size limit and to know where frames start, so that a close frame it sends
// of its own (a drain) lands between two frames, never inside one.
//
// # Why
//
// A proxy that only copies bytes cannot bound a message, nor insert a
// close frame: both need the frame boundaries. Parsing only headers keeps
// the cost to a few bytes per frame and the memory to none per message,
// whatever the message size. Payloads are not checked (UTF-8 of text
// messages, the contents of a close frame): the endpoints do that, and
// with permessage-deflate (RFC 7692) the payload is compressed anyway.
package wsframe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors Scan returns, wrapped with detail.
var (
	// ErrProtocol is a frame header RFC 6455 does not allow: a reserved
	// opcode, a fragmented or oversized control frame, a continuation
	// outside a message or a new message inside one, a mask where none
	// belongs (or none where one must be), a length with its top bit set.
	ErrProtocol = errors.New("wsframe: protocol error")
	// ErrTooBig is a message whose payload, over all its fragments, would
	// pass the Tracker's Max.
	ErrTooBig = errors.New("wsframe: message too big")
)

// MaxHeader is the longest frame header: 2 bytes, an 8-byte length and a
// 4-byte masking key. Scan leaves an incomplete header at the end of its
// input unconsumed, so a caller keeps at most this many bytes for the next
// call.
const MaxHeader = 14

// Opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPong         = 0xA
)

// Tracker follows one direction of a WebSocket stream. The zero value,
// with Masked and Max set as the direction needs, is ready; it must not be
// copied once used.
type Tracker struct {
	// Masked is whether frames must be masked: those a client sends are,
	// those a server sends are not (RFC 6455 §5.1).
	Masked bool
	// Max bounds a message's payload, summed over its fragments; 0 is no
	// bound. Control frames do not count: they carry at most 125 bytes.
	Max uint64

	left   uint64 // payload bytes of the current frame still to come
	msg    uint64 // payload of the current data message so far
	frag   bool   // a data message has begun and not ended (FIN not seen)
	closed bool   // a close frame has been seen
}

// Boundary reports whether the stream is between two frames: everything
// Scan consumed ends with a whole frame.
func (t *Tracker) Boundary() bool { return t.left == 0 }

// Closed reports whether a close frame has been seen.
func (t *Tracker) Closed() bool { return t.closed }

// Scan consumes p, the next bytes of the stream, and returns how many of
// them it consumed: whole frame headers, checked, and the payload bytes
// that follow them. It stops before a header that is incomplete at the
// end of p (to be passed again with the bytes that follow), and before a
// header it refuses, with the error. With stop set it stops at the first
// frame boundary, which may be where it starts: the caller then writes
// something of its own between two frames.
func (t *Tracker) Scan(p []byte, stop bool) (int, error) {
	n := 0
	for n < len(p) {
		if t.left > 0 {
			m := min(t.left, uint64(len(p)-n))
			n += int(m)
			t.left -= m
			continue
		}
		if stop {
			return n, nil
		}
		h, err := t.header(p[n:])
		if err != nil || h == 0 {
			return n, err
		}
		n += h
	}
	return n, nil
}

// header reads the frame header at the start of p and returns its length,
// or 0 when p holds only part of it. The Tracker changes only when the
// header is whole and accepted.
func (t *Tracker) header(p []byte) (int, error) {
	if len(p) < 2 {
		return 0, nil
	}
	fin, op := p[0]&0x80 != 0, p[0]&0x0f
	masked, size := p[1]&0x80 != 0, uint64(p[1]&0x7f)
	h := 2
	switch size {
	case 126:
		h += 2
	case 127:
		h += 8
	}
	if masked {
		h += 4
	}
	if len(p) < h {
		return 0, nil
	}
	switch size {
	case 126:
		size = uint64(binary.BigEndian.Uint16(p[2:]))
	case 127:
		size = binary.BigEndian.Uint64(p[2:])
		if size>>63 != 0 {
			return 0, fmt.Errorf("%w: payload length with its most significant bit set", ErrProtocol)
		}
	}
	if masked != t.Masked {
		if t.Masked {
			return 0, fmt.Errorf("%w: unmasked frame from a client", ErrProtocol)
		}
		return 0, fmt.Errorf("%w: masked frame from a server", ErrProtocol)
	}
	msg, frag := t.msg, t.frag
	switch {
	case op >= opClose:
		if op > opPong {
			return 0, fmt.Errorf("%w: reserved control opcode %#x", ErrProtocol, op)
		}
		if !fin {
			return 0, fmt.Errorf("%w: fragmented control frame", ErrProtocol)
		}
		if size > 125 {
			return 0, fmt.Errorf("%w: control frame of %d bytes, at most 125", ErrProtocol, size)
		}
	case op == opContinuation && !t.frag:
		return 0, fmt.Errorf("%w: continuation frame outside a message", ErrProtocol)
	case op == opText || op == opBinary:
		if t.frag {
			return 0, fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol)
		}
		msg = 0
	case op != opContinuation:
		return 0, fmt.Errorf("%w: reserved opcode %#x", ErrProtocol, op)
	}
	if op < opClose {
		if t.Max > 0 && size > t.Max-msg {
			return 0, fmt.Errorf("%w: past %d bytes", ErrTooBig, t.Max)
		}
		msg += size
		frag = !fin
		if fin {
			msg = 0
		}
	}
	t.msg, t.frag, t.left = msg, frag, size
	if op == opClose {
		t.closed = true
	}
	return h, nil
}

// AppendClose appends a close frame with code and no reason (RFC 6455
// §5.5.1), masked with key when masked is set (a frame to a server).
func AppendClose(dst []byte, code uint16, masked bool, key [4]byte) []byte {
	payload := [2]byte{byte(code >> 8), byte(code)}
	if !masked {
		return append(dst, 0x80|opClose, 2, payload[0], payload[1])
	}
	return append(dst, 0x80|opClose, 0x80|2, key[0], key[1], key[2], key[3],
		payload[0]^key[0], payload[1]^key[1])
}
