// Checking a backup before anything of it is restored: the manifest, every
// file's size and SHA-256, every line, and each module against its name.

package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/talowa/wedge/deploy/manifest"
)

// Bounds on what a backup's files may hold: a manifest, and one line of a
// stream's file (a message of up to a few MiB, in base64, with headers).
const (
	maxManifest = 64 << 20
	maxLine     = 16 << 20
)

// ErrCorrupt is returned (wrapped) for a backup that fails its checks.
var ErrCorrupt = errors.New("backup is corrupted or incomplete")

// Verify checks the backup in dir: the manifest, then each file's size and
// SHA-256, then every line of every stream's file and object index, and
// each module's bytes against the digest that names it. It returns the
// manifest if all is well.
func Verify(dir string) (*Manifest, error) {
	b, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	m, err := check(dir, b)
	if err != nil {
		return nil, fmt.Errorf("backup: %w: %w", ErrCorrupt, err)
	}
	return m, nil
}

// check is Verify of the manifest b, which Backup calls before it puts b
// in place.
func check(dir string, b []byte) (*Manifest, error) {
	m, err := parseManifest(b)
	if err != nil {
		return nil, err
	}
	files := map[string]File{}
	for _, f := range m.Files {
		if _, err := readFile(dir, f); err != nil {
			return nil, err
		}
		files[f.Path] = f
	}
	for _, s := range m.Streams {
		if err := checkStream(dir, s, files); err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.Name, err)
		}
	}
	return m, nil
}

func readManifest(dir string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: %w: %s has no %s: not a backup, or one that did not finish", ErrCorrupt, dir, ManifestFile)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("backup: %w: %s is over %d bytes", ErrCorrupt, ManifestFile, maxManifest)
	}
	want, err := os.ReadFile(filepath.Join(dir, ManifestSum))
	if err != nil {
		return nil, fmt.Errorf("backup: %w: %s: %w", ErrCorrupt, ManifestSum, err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); !bytes.HasPrefix(want, []byte(got+"  ")) {
		return nil, fmt.Errorf("backup: %w: %s has SHA-256 %s, not the one %s holds", ErrCorrupt, ManifestFile, got, ManifestSum)
	}
	return b, nil
}

// parseManifest decodes a backup.json and checks that it is whole: the
// format, the streams' names and kinds, and that each stream's file is
// one of the files, whose paths stay inside the backup directory.
func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%s: format %q, want %q", ManifestFile, m.Format, Format)
	}
	files := map[string]bool{}
	for _, f := range m.Files {
		if err := checkPath(f.Path); err != nil {
			return nil, err
		}
		if files[f.Path] {
			return nil, fmt.Errorf("file %s listed twice", f.Path)
		}
		if f.Size < 0 || len(f.SHA256) != sha256.Size*2 {
			return nil, fmt.Errorf("file %s: size %d, sha256 %q", f.Path, f.Size, f.SHA256)
		}
		files[f.Path] = true
	}
	streams := map[string]bool{}
	for _, s := range m.Streams {
		switch {
		case s.Name == "" || s.Name != s.Config.Name:
			return nil, fmt.Errorf("stream %q: config names %q", s.Name, s.Config.Name)
		case streams[s.Name]:
			return nil, fmt.Errorf("stream %s listed twice", s.Name)
		case s.Kind != kindOf(s.Name):
			return nil, fmt.Errorf("stream %s: kind %q, want %q", s.Name, s.Kind, kindOf(s.Name))
		case !files[s.File]:
			return nil, fmt.Errorf("stream %s: file %q is not among the files", s.Name, s.File)
		case s.Count < 0 || s.FirstSeq > s.LastSeq+1:
			return nil, fmt.Errorf("stream %s: count %d, sequences %d-%d", s.Name, s.Count, s.FirstSeq, s.LastSeq)
		}
		streams[s.Name] = true
	}
	if len(m.Streams) == 0 {
		return nil, fmt.Errorf("%s: no streams", ManifestFile)
	}
	return &m, nil
}

// checkPath accepts a relative, clean, slash-separated path inside the
// backup directory.
func checkPath(p string) error {
	if p != path.Clean(p) || strings.ContainsAny(p, "\\\x00") || p == ManifestFile || !filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("file path %q: want a relative path inside the backup", p)
	}
	return nil
}

// readFile reads a file of the backup, and checks its size and SHA-256
// against the manifest's. Restore publishes the bytes it returns, not the
// file read again: one changed since Verify (a copy still running, a
// network file system) is refused, not restored unchecked.
func readFile(dir string, f File) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != f.Size {
		return nil, fmt.Errorf("%s: %d bytes, the manifest says %d", f.Path, len(b), f.Size)
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != f.SHA256 {
		return nil, fmt.Errorf("%s: sha256 %x, the manifest says %s", f.Path, got, f.SHA256)
	}
	return b, nil
}

// checkStream reads a stream's file through: as many lines as the
// manifest counts, each well formed, in sequence order (without gaps for a
// plain stream, which is restored with its sequences).
func checkStream(dir string, s Stream, files map[string]File) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(s.File)))
	if err != nil {
		return err
	}
	defer f.Close()
	n := 0
	if s.Kind == KindObjects {
		err = readObjects(f, func(o *Object) error {
			n++
			return checkObject(s, o, files)
		})
	} else {
		var last uint64
		err = readMessages(f, func(m *Message) error {
			n++
			switch {
			case m.Seq < s.FirstSeq || m.Seq > s.LastSeq:
				return fmt.Errorf("message %d: sequence outside %d-%d", m.Seq, s.FirstSeq, s.LastSeq)
			case n > 1 && m.Seq <= last:
				return fmt.Errorf("message %d after %d: out of order", m.Seq, last)
			case s.Kind == KindStream && m.Seq != s.FirstSeq+uint64(n-1):
				return fmt.Errorf("message %d: want %d: a plain stream is restored with its sequences, which needs them without gaps",
					m.Seq, s.FirstSeq+uint64(n-1))
			}
			last = m.Seq
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.File, err)
	}
	if n != s.Count {
		return fmt.Errorf("%s: %d lines, the manifest counts %d", s.File, n, s.Count)
	}
	return nil
}

// checkObject checks an object's file: listed, of the object's size and
// digest, and for a module, the bytes whose sha256 is its name.
func checkObject(s Stream, o *Object, files map[string]File) error {
	f, ok := files[o.File]
	if !ok {
		return fmt.Errorf("object %s: file %q is not among the files", o.Name, o.File)
	}
	if uint64(f.Size) != o.Size {
		return fmt.Errorf("object %s: %d bytes, its index says %d", o.Name, f.Size, o.Size)
	}
	sum, _ := hex.DecodeString(f.SHA256)
	if want := "SHA-256=" + base64.URLEncoding.EncodeToString(sum); o.Digest != want {
		return fmt.Errorf("object %s: digest %s, its bytes' is %s", o.Name, o.Digest, want)
	}
	if s.Name == "OBJ_"+manifest.BucketModules && o.Name != f.SHA256 {
		return fmt.Errorf("module %s: its bytes hash to %s", o.Name, f.SHA256)
	}
	return nil
}

// readMessages decodes a stream's file, calling fn for each message.
func readMessages(r io.Reader, fn func(*Message) error) error {
	return readLines(r, func(line []byte) error {
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			return err
		}
		switch {
		case m.Subject == "":
			return fmt.Errorf("message %d: no subject", m.Seq)
		case m.Seq == 0:
			return errors.New("message without a sequence")
		case m.Data != nil && m.DataB64 != nil:
			return fmt.Errorf("message %d: both data and data_b64", m.Seq)
		}
		return fn(&m)
	})
}

// readObjects decodes an object store's index, calling fn for each object.
func readObjects(r io.Reader, fn func(*Object) error) error {
	return readLines(r, func(line []byte) error {
		var o Object
		if err := json.Unmarshal(line, &o); err != nil {
			return err
		}
		if o.Name == "" {
			return errors.New("object without a name")
		}
		if err := checkPath(o.File); err != nil {
			return fmt.Errorf("object %s: %w", o.Name, err)
		}
		return fn(&o)
	})
}

// readLines calls fn for each line of r, numbering the lines in errors.
func readLines(r io.Reader, fn func([]byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w (a line over %d bytes?)", err, maxLine)
	}
	return nil
}
