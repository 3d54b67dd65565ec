package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/dict"
	"github.com/klauspost/compress/zstd"
)

// DictID returns the ID a zstd dictionary carries in its header.
func DictID(d []byte) (uint32, error) {
	// A zstd dictionary starts with the magic 0xEC30A437, then its ID.
	if len(d) < 8 || binary.LittleEndian.Uint32(d) != 0xEC30A437 {
		return 0, errors.New("wire: not a zstd dictionary")
	}
	id := binary.LittleEndian.Uint32(d[4:])
	if id == 0 {
		return 0, errors.New("wire: dictionary has ID 0, which means none")
	}
	return id, nil
}

// TrainDict builds a zstd dictionary with the given ID from sample
// envelopes (CBOR, uncompressed). Samples should be real traffic: the
// dictionary learns the header names and values that repeat across
// requests, which is what small envelopes are mostly made of.
func TrainDict(samples [][]byte, id uint32, size int) ([]byte, error) {
	if id == 0 {
		return nil, errors.New("wire: dictionary ID must not be 0")
	}
	if size <= 0 {
		size = 64 << 10
	}
	d, err := dict.BuildZstdDict(samples, dict.Options{
		MaxDictSize: size, HashBytes: 6, ZstdDictID: id, ZstdDictCompat: true, ZstdLevel: zstd.SpeedDefault,
	})
	if err != nil {
		return nil, fmt.Errorf("wire: train dictionary from %d samples: %w", len(samples), err)
	}
	return d, nil
}
