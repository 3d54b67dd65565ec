package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/talowa/wedge/origin/wire"
)

// originKeygen prints a fresh shared key for signing edge<->origin frames,
// in the ID:HEX form both `origin -key` and the edge config read.
func originKeygen(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("origin keygen", flag.ContinueOnError)
	id := fs.Uint("id", 1, "key id (0-255), so keys can be rotated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id > 255 || fs.NArg() != 0 {
		return errors.New("origin keygen: want only -id 0..255")
	}
	k := wire.Key{ID: uint8(*id), Secret: make([]byte, 32)}
	rand.Read(k.Secret)
	fmt.Fprintln(stdout, k.Text())
	return nil
}

// originTrainDict trains a zstd dictionary for the edge<->origin link from
// sample envelopes (the CBOR files `origin -samples DIR` records) and says how
// much it saves on them.
func originTrainDict(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("origin train-dict", flag.ContinueOnError)
	out := fs.String("o", "wedge.dict", "output file")
	id := fs.Uint("id", 1, "dictionary id (1-4294967295); edges and the origin load dictionaries by it")
	size := fs.Int("size", 64<<10, "dictionary size in bytes")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("origin train-dict: want sample files or directories")
	}
	if *id == 0 || *id > 1<<32-1 {
		return errors.New("origin train-dict: -id must be 1..4294967295")
	}
	samples, err := readSamples(fs.Args())
	if err != nil {
		return err
	}
	if len(samples) == 0 {
		return fmt.Errorf("origin train-dict: no samples in %s: run the origin service with -samples DIR for a while first", strings.Join(fs.Args(), ", "))
	}
	dict, err := wire.TrainDict(samples, uint32(*id), *size)
	if err != nil {
		return fmt.Errorf("origin train-dict: %w", err)
	}
	plain, withDict, err := compressedSizes(samples, dict)
	if err != nil {
		return fmt.Errorf("origin train-dict: %w", err)
	}
	if err := os.WriteFile(*out, dict, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dictionary %d: %s, %d bytes, from %d samples\n", *id, *out, len(dict), len(samples))
	fmt.Fprintf(stdout, "on the samples: %d bytes zstd without it, %d with it (%.2fx smaller)\n",
		plain, withDict, float64(plain)/float64(max(withDict, 1)))
	return nil
}

// readSamples reads every file named or found under the named directories,
// and refuses anything that is not a request or response envelope: a
// dictionary trained on the wrong bytes would quietly cost more than none.
func readSamples(paths []string) ([][]byte, error) {
	var samples [][]byte
	add := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if wire.Unmarshal(b, new(wire.Request)) != nil && wire.Unmarshal(b, new(wire.Response)) != nil {
			return fmt.Errorf("origin train-dict: %s is not a CBOR envelope", path)
		}
		samples = append(samples, b)
		return nil
	}
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return err
			}
			return add(path)
		})
		if err != nil {
			return nil, err
		}
	}
	return samples, nil
}

// compressedSizes sums the zstd size of each sample without and with dict.
func compressedSizes(samples [][]byte, dict []byte) (plain, withDict int, err error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	if err != nil {
		return 0, 0, err
	}
	defer enc.Close()
	encDict, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithEncoderDict(dict))
	if err != nil {
		return 0, 0, err
	}
	defer encDict.Close()
	var buf []byte
	for _, s := range samples {
		buf = enc.EncodeAll(s, buf[:0])
		plain += len(buf)
		buf = encDict.EncodeAll(s, buf[:0])
		withDict += len(buf)
	}
	return plain, withDict, nil
}
