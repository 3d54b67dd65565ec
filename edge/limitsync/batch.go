package limitsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// A batch is one POP's usage of one scope's keys over one interval:
//
//	version byte (1)
//	uvarint len(pop), pop
//	entries, each: uvarint len(key), key, uvarint limit, uvarint period in ms, uvarint units
//
// An empty batch (no entries) is a heartbeat: it says the POP is there.
const batchVersion = 1

// maxBatch bounds a batch's size, far below NATS's 1 MiB payload limit, so
// a POP with many keys in use publishes several.
const maxBatch = 64 << 10

// maxUnits bounds the units of one entry: more than any limit (an int32)
// could admit in two periods is not usage.
const maxUnits = 2 * math.MaxInt32

// maxPeriodMs is the host's bound on a period (400 days).
const maxPeriodMs = 400 * 24 * 3600 * 1000

// maxEntries bounds the entries charged from one batch. A sender's batch
// of at most maxBatch bytes holds fewer (an entry takes at least 12).
const maxEntries = maxBatch / 8

// entry is one key's usage in a batch.
type entry struct {
	key    []byte
	limit  int32
	period time.Duration
	units  int64
}

// appendHeader starts a batch from pop.
func appendHeader(b []byte, pop string) []byte {
	b = append(b, batchVersion)
	b = binary.AppendUvarint(b, uint64(len(pop)))
	return append(b, pop...)
}

// appendEntry adds one key's usage to a batch, its units clamped to what a
// receiver accepts.
func appendEntry(b []byte, key string, u host.Usage) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(u.Limit))
	b = binary.AppendUvarint(b, uint64(u.Period/time.Millisecond))
	return binary.AppendUvarint(b, uint64(min(u.Units, maxUnits)))
}

var errTruncated = errors.New("limitsync: batch truncated")

// decodeBatch reads a batch published on the subject of scope sc,
// appending its entries (whose keys alias b) to es. It checks everything a peer
// could get wrong: a batch is untrusted input (any client of the control
// plane may publish), and keys outside sc are skipped so a batch can never
// touch a POP-scoped key. A bad entry (a key too long or of another scope,
// a value out of range, one past maxEntries) is skipped and counted in
// skipped; a batch whose framing is broken is refused whole.
func decodeBatch(b []byte, sc host.Scope, es []entry) (pop string, _ []entry, skipped int, err error) {
	if len(b) == 0 || b[0] != batchVersion {
		return "", es, 0, errors.New("limitsync: unknown batch version")
	}
	b = b[1:]
	p, b, err := readBytes(b, 255)
	if err != nil {
		return "", es, 0, err
	}
	if len(p) == 0 {
		return "", es, 0, errors.New("limitsync: batch names no POP")
	}
	pop = string(p)
	n := len(es)
	for len(b) > 0 {
		var e entry
		var limit, period, units uint64
		if e.key, b, err = readBytes(b, math.MaxInt); err != nil { // its length is checked below
			return "", es[:n], 0, err
		}
		if limit, b, err = readUvarint(b); err != nil {
			return "", es[:n], 0, err
		}
		if period, b, err = readUvarint(b); err != nil {
			return "", es[:n], 0, err
		}
		if units, b, err = readUvarint(b); err != nil {
			return "", es[:n], 0, err
		}
		if len(e.key) > abi.MaxRateKeyLen || host.KeyScope(e.key) != sc || len(es)-n >= maxEntries ||
			limit < 1 || limit > math.MaxInt32 || period < 1 || period > maxPeriodMs || units < 1 || units > maxUnits {
			skipped++
			continue
		}
		e.limit, e.period, e.units = int32(limit), time.Duration(period)*time.Millisecond, int64(units)
		es = append(es, e)
	}
	return pop, es, skipped, nil
}

func readUvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errTruncated
	}
	return v, b[n:], nil
}

func readBytes(b []byte, maxLen int) ([]byte, []byte, error) {
	n, b, err := readUvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(maxLen) {
		return nil, nil, fmt.Errorf("limitsync: field of %d bytes, at most %d", n, maxLen)
	}
	if uint64(len(b)) < n {
		return nil, nil, errTruncated
	}
	return b[:n], b[n:], nil
}
