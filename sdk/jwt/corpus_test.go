package jwt_test

import (
	"bytes"
	"embed"
	"io/fs"
	"os"
	"strconv"
	"testing"
)

// corpusFS is the checked-in fuzz corpus, embedded so that it is checked
// even where the test binary cannot read files.
//
//go:embed testdata/fuzz
var corpusFS embed.FS

// noTestdata reports whether testing will fail to read the corpus of
// target: under "wazero run" without a mounted directory, WASI answers
// EBADF, which testing treats as an error rather than as no corpus.
func noTestdata(target string) bool {
	_, err := os.ReadDir("testdata/fuzz/" + target)
	return err != nil && !os.IsNotExist(err)
}

// embeddedCorpus decodes the embedded corpus files of target (the "go test
// fuzz v1" format, []byte arguments only).
func embeddedCorpus(f *testing.F, target string) [][][]byte {
	dir := "testdata/fuzz/" + target
	files, err := fs.ReadDir(corpusFS, dir)
	if err != nil {
		return nil
	}
	var entries [][][]byte
	for _, file := range files {
		data, err := corpusFS.ReadFile(dir + "/" + file.Name())
		if err != nil {
			f.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		if len(lines) < 2 || string(lines[0]) != "go test fuzz v1" {
			f.Fatalf("%s: not a corpus file", file.Name())
		}
		var args [][]byte
		for _, line := range lines[1:] {
			q, ok := bytes.CutPrefix(line, []byte("[]byte("))
			q, ok2 := bytes.CutSuffix(q, []byte(")"))
			s, err := strconv.Unquote(string(q))
			if !ok || !ok2 || err != nil {
				f.Fatalf("%s: cannot decode %q", file.Name(), line)
			}
			args = append(args, []byte(s))
		}
		entries = append(entries, args)
	}
	return entries
}
