package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/talowa/wedge/internal/readmetest"
	"github.com/talowa/wedge/sdk/sdktest"
	"github.com/talowa/wedge/wasm/host"
	"github.com/talowa/wedge/wasm/wasmtest"
)

// readmeExample is one ```http block of the README's Examples section.
type readmeExample struct {
	text      string
	req       host.Request
	status    int
	header    []host.HeaderField // must be on the response
	values    map[string]string  // forwarded to the origin, exactly
	notOrigin []string           // fields the origin must not receive
}

// readme parses the Examples section: the ```json block is the config, each
// ```http block an example in the format the README describes.
func readme(t *testing.T) (config []byte, examples []readmeExample) {
	t.Helper()
	for _, b := range readmetest.Blocks(t, "README.md", "## Examples") {
		switch b.Lang {
		case "json":
			config = []byte(b.Text)
		case "http":
			examples = append(examples, parseExample(t, b.Text))
		default:
			t.Fatalf("README.md:%d: code block of unknown kind %q", b.Line, b.Lang)
		}
	}
	if config == nil || len(examples) == 0 {
		t.Fatal("README.md: Examples needs a json config block and http example blocks")
	}
	return config, examples
}

func parseExample(t *testing.T, block string) readmeExample {
	ex := readmeExample{text: block, values: map[string]string{}}
	for i, line := range strings.Split(block, "\n") {
		kind, body, _ := strings.Cut(line, " ")
		name, value, isField := strings.Cut(body, ": ")
		switch {
		case kind == ">" && i == 0:
			m, p, _ := strings.Cut(body, " ")
			ex.req = get(p)
			ex.req.Method = m
		case kind == ">" && isField:
			ex.req.Header.Add(name, value)
		case kind == "<" && ex.status == 0:
			n, err := strconv.Atoi(body)
			if err != nil {
				t.Fatalf("README.md: bad status line %q", line)
			}
			ex.status = n
		case kind == "<" && isField:
			ex.header = append(ex.header, host.HeaderField{Name: name, Value: value})
		case kind == "=" && isField:
			ex.values[name] = value
		case kind == "-":
			ex.notOrigin = append(ex.notOrigin, body)
		default:
			t.Fatalf("README.md: cannot read example line %q", line)
		}
	}
	if ex.req.Method == "" || ex.status == 0 {
		t.Fatalf("README.md: example without request or status:\n%s", block)
	}
	return ex
}

func runReadme(t *testing.T, do func(host.Request) *host.Result, examples []readmeExample) {
	for _, ex := range examples {
		t.Run(ex.req.Path, func(t *testing.T) {
			res := do(ex.req)
			if res.RequestErr != nil || res.Resp.Status != ex.status {
				t.Fatalf("%s\ngot %d (%v) %q", ex.text, res.Resp.Status, res.RequestErr, res.Resp.Body)
			}
			for _, f := range ex.header {
				if v, _ := res.Resp.Header.Get(f.Name); v != f.Value {
					t.Errorf("%s: got %s: %q", f.Name, f.Name, v)
				}
			}
			if got := forwarded(res); len(got) != len(ex.values) {
				t.Errorf("forwarded %v, want %v", got, ex.values)
			}
			for k, v := range ex.values {
				if got := forwarded(res)[k]; got != v {
					t.Errorf("forwarded %s=%q, want %q", k, got, v)
				}
			}
			for _, name := range ex.notOrigin {
				if v, has := res.Req.Header.Get(name); has || res.Answered {
					t.Errorf("origin received %s: %q (answered %v)", name, v, res.Answered)
				}
			}
		})
	}
}

func TestReadmeNative(t *testing.T) {
	config, examples := readme(t)
	if len(examples) < 8 {
		t.Fatalf("parsed %d examples; the parser lost some", len(examples))
	}
	h := sdktest.New(t, &auth{}, config)
	runReadme(t, h.Do, examples)
}

func TestReadmeWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	config, examples := readme(t)
	runReadme(t, wasmtest.Load(t, ".", config).Do, examples)
}
