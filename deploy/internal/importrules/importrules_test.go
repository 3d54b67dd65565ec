package importrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pkg is the part of `go list -json` output the rules read.
type pkg struct {
	ImportPath string
	Imports    []string
	Module     *struct{ Main bool }
}

// rules: each package (relative to the module root) and what it must not
// depend on, directly or through anything it imports.
var rules = []struct {
	pkg    string
	why    string
	forbid func(dep pkg) bool
}{
	{"./edge/cmd/edge", "the edge binary links no NATS server: it is a control plane client (deploy/controlplane), never a server",
		func(d pkg) bool { return strings.HasPrefix(d.ImportPath, "github.com/nats-io/nats-server/") }},
	{"./edge/cmd/edge", "the edge never imports the origin server, only the wire format and its own client",
		func(d pkg) bool { return d.ImportPath == "github.com/talowa/wedge/origin" }},
	{"./wasm/abi", "the host<->guest contract imports nothing of ours", ofThisModule},
	{"./origin/wire", "the edge<->origin format imports nothing of ours", ofThisModule},
	{"./deploy/manifest", "the control plane's records import nothing of ours", ofThisModule},
}

func ofThisModule(d pkg) bool { return d.Module != nil && d.Module.Main }

// TestImportRules lists each package's dependencies with `go list -deps`
// and fails on any a rule forbids, naming the chain of imports that brings
// the nearest one in.
func TestImportRules(t *testing.T) {
	root := moduleRoot(t)
	for _, r := range rules {
		deps := list(t, root, r.pkg)
		self := deps[len(deps)-1] // -deps lists a package after its dependencies
		n := 0
		for _, d := range deps {
			if d.ImportPath != self.ImportPath && r.forbid(d) {
				n++
			}
		}
		if n > 0 {
			t.Errorf("%s: %s\n\timports %s\n\t(forbidden packages in all: %d)",
				r.why, r.pkg, strings.Join(nearest(deps, self, r.forbid), "\n\timports "), n)
		}
	}
}

// nearest returns a shortest chain of imports from self to a package of
// deps that forbid matches.
func nearest(deps []pkg, self pkg, forbid func(pkg) bool) []string {
	byPath := make(map[string]pkg, len(deps))
	for _, d := range deps {
		byPath[d.ImportPath] = d
	}
	via := map[string]string{self.ImportPath: ""}
	for queue := []string{self.ImportPath}; len(queue) > 0; queue = queue[1:] {
		for _, next := range byPath[queue[0]].Imports {
			if _, seen := via[next]; seen {
				continue
			}
			via[next] = queue[0]
			if forbid(byPath[next]) {
				var out []string
				for p := next; p != self.ImportPath; p = via[p] {
					out = append([]string{p}, out...)
				}
				return out
			}
			queue = append(queue, next)
		}
	}
	return nil
}

// list runs `go list -deps -json` on pattern in dir.
func list(t *testing.T, dir, pattern string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Module", pattern)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, stderr.String())
	}
	var deps []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -deps %s: %v", pattern, err)
		}
		deps = append(deps, p)
	}
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s listed nothing", pattern)
	}
	return deps
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatal("not inside a module")
	}
	return filepath.Dir(gomod)
}
