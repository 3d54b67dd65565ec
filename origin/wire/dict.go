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
//
// Each sample counts for its first maxTrainSample bytes: what repeats is
// in the headers and the first bytes of bodies, and the trainer
// (klauspost/compress's dict) panicked on a sample of a few hundred KB,
// as a sampled download is. A panic of the trainer's is an error here.
func TrainDict(samples [][]byte, id uint32, size int) (d []byte, err error) {
	if id == 0 {
		return nil, errors.New("wire: dictionary ID must not be 0")
	}
	if size <= 0 {
		size = 64 << 10
	}
	cut := make([][]byte, len(samples))
	for i, s := range samples {
		cut[i] = s[:min(len(s), maxTrainSample)]
	}
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("wire: train dictionary from %d samples: the trainer failed: %v", len(samples), r)
		}
	}()
	d, err = dict.BuildZstdDict(cut, dict.Options{
		MaxDictSize: size, HashBytes: 6, ZstdDictID: id, ZstdDictCompat: true, ZstdLevel: zstd.SpeedDefault,
	})
	if err != nil {
		return nil, fmt.Errorf("wire: train dictionary from %d samples: %w", len(samples), err)
	}
	return d, nil
}

// maxTrainSample is how much of each sample TrainDict learns from.
const maxTrainSample = 64 << 10
