package abi_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
)

var identityNames = []string{abi.IdentityMethod, abi.IdentitySub, abi.IdentityIss, abi.IdentityScope, abi.IdentityKey}

// TestIdentityNames: the identity values are forwarded, so each name must
// pass value_set's rules for a forwarded key, and the spec names each.
func TestIdentityNames(t *testing.T) {
	spec := readSpec(t)
	for _, name := range identityNames {
		if !abi.ValidToken(name) || len(name) > abi.MaxValueKeyLen {
			t.Errorf("%q cannot be a forwarded value's key", name)
		}
		if !strings.Contains(spec, "`"+name+"`") {
			t.Errorf("README.md does not name the identity value %q", name)
		}
	}
}

// TestIdentityNamesInDocsAndScripts: what cannot import the constants
// (READMEs, the benchmark scripts' configs) spells only names they define,
// so a renamed value cannot leave a rate limit keyed on a value no plugin
// sets.
func TestIdentityNamesInDocsAndScripts(t *testing.T) {
	mention := regexp.MustCompile(`identity-[a-z]+`)
	root := filepath.Join("..", "..")
	seen := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md", ".sh", ".yaml", ".yml":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range mention.FindAllString(string(b), -1) {
			seen++
			if !slices.Contains(identityNames, m) {
				t.Errorf("%s names the identity value %q, which package abi does not define", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Fatal("found no mention of an identity value: is the walk at the module root?")
	}
}
