package wire

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeBlocks returns the fenced code blocks of README.md by info string.
func readmeBlocks(t *testing.T) map[string][]string {
	t.Helper()
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	for _, m := range regexp.MustCompile("(?ms)^```([a-z-]*)\n(.*?)^```$").FindAllStringSubmatch(string(text), -1) {
		blocks[m[1]] = append(blocks[m[1]], m[2])
	}
	return blocks
}

// cddlEntry is one member of a CDDL map or array as README.md writes them:
// one per line, the entry's name first in its comment.
type cddlEntry struct {
	key      int // map key; the position in an array
	name     string
	typ      string
	optional bool
}

type cddlRule struct {
	array   bool
	entries []cddlEntry
	ext     bool // ends with "* (int / tstr) => any"
}

var (
	ruleStart = regexp.MustCompile(`^([a-z]+) = ([{\[])$`)
	mapEntry  = regexp.MustCompile(`^(\? )?(\d+) => (.+?),\s*; ([a-z]+): \S`)
	arrEntry  = regexp.MustCompile(`^([a-z]+): (\[\* [a-z]+\]|[^\s,\[]+),?$`)
	extEntry  = regexp.MustCompile(`^\* \(int / tstr\) => any,\s*; extensions: `)
)

// parseCDDL reads the subset of CDDL README.md uses and fails on anything
// else, so the spec cannot drift into a form this test skips.
func parseCDDL(t *testing.T, src string) map[string]*cddlRule {
	t.Helper()
	rules := map[string]*cddlRule{}
	var cur *cddlRule
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case cur == nil:
			m := ruleStart.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("CDDL line %d: want a rule, got %q", i+1, line)
			}
			if rules[m[1]] != nil {
				t.Fatalf("CDDL rule %s defined twice", m[1])
			}
			cur = &cddlRule{array: m[2] == "["}
			rules[m[1]] = cur
		case line == "}" || line == "]":
			cur = nil
		case cur.ext:
			t.Fatalf("CDDL line %d: %q after the extension entry", i+1, line)
		case cur.array:
			m := arrEntry.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("CDDL line %d: want an array entry, got %q", i+1, line)
			}
			cur.entries = append(cur.entries, cddlEntry{key: len(cur.entries), name: m[1], typ: m[2]})
		case extEntry.MatchString(line):
			cur.ext = true
		default:
			m := mapEntry.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("CDDL line %d: want a map entry, got %q", i+1, line)
			}
			key, _ := strconv.Atoi(m[2])
			cur.entries = append(cur.entries, cddlEntry{key: key, name: m[4], typ: m[3], optional: m[1] != ""})
		}
	}
	if cur != nil {
		t.Fatal("CDDL ends inside a rule")
	}
	return rules
}

// cddlTypes are the CDDL types each Go field type may be written as.
var cddlTypes = map[reflect.Type]*regexp.Regexp{
	reflect.TypeFor[uint64]():    regexp.MustCompile(`^(uint|\d+\.\.\d+)$`),
	reflect.TypeFor[Bytes]():     regexp.MustCompile(`^bstr( \.size \(1\.\.\))?$`),
	reflect.TypeFor[[]Field]():   regexp.MustCompile(`^\[\* field\]$`),
	reflect.TypeFor[[]Bytes]():   regexp.MustCompile(`^\[\* bstr\]$`),
	reflect.TypeFor[Hints]():     regexp.MustCompile(`^hints$`),
	reflect.TypeFor[[]Interim](): regexp.MustCompile(`^\[\* interim\]$`),
}

// TestSpecCDDL checks README.md's CDDL against the struct tags: every field
// listed with its key, its name and a matching type; an entry is optional
// exactly when the field is omitted when empty (or, for method, required
// and not empty); nothing listed that the structs lack.
func TestSpecCDDL(t *testing.T) {
	blocks := readmeBlocks(t)
	if len(blocks["cddl"]) == 0 {
		t.Fatal("README.md has no cddl block")
	}
	rules := parseCDDL(t, strings.Join(blocks["cddl"], "\n"))
	types := map[string]reflect.Type{
		"request":  reflect.TypeFor[Request](),
		"response": reflect.TypeFor[Response](),
		"hints":    reflect.TypeFor[Hints](),
		"field":    reflect.TypeFor[Field](),
		"interim":  reflect.TypeFor[Interim](),
	}
	if len(rules) != len(types) {
		t.Errorf("CDDL defines %d rules, want %d (request, response, hints, field, interim)", len(rules), len(types))
	}
	for name, typ := range types {
		rule := rules[name]
		if rule == nil {
			t.Errorf("CDDL has no rule %s", name)
			continue
		}
		// Maps take unknown keys; the field array does not.
		if rule.ext == rule.array {
			t.Errorf("CDDL %s: extension entry %v, array %v", name, rule.ext, rule.array)
		}
		byKey := map[int]cddlEntry{}
		for _, e := range rule.entries {
			if _, dup := byKey[e.key]; dup {
				t.Errorf("CDDL %s: key %d twice", name, e.key)
			}
			byKey[e.key] = e
		}
		seen := 0
		for f := range typ.Fields() {
			if f.Name == "_" {
				continue
			}
			key, omitempty := structKey(t, typ, f, rule.array, seen)
			seen++
			e, ok := byKey[key]
			if !ok {
				t.Errorf("CDDL %s lacks %s.%s (key %d)", name, typ.Name(), f.Name, key)
				continue
			}
			delete(byKey, key)
			if !strings.EqualFold(e.name, f.Name) {
				t.Errorf("CDDL %s key %d is named %q, the field is %s", name, key, e.name, f.Name)
			}
			if re := cddlTypes[f.Type]; re == nil || !re.MatchString(e.typ) {
				t.Errorf("CDDL %s.%s has type %q for Go %s", name, e.name, e.typ, f.Type)
			}
			nonEmpty := strings.HasSuffix(e.typ, ".size (1..)")
			if !rule.array && e.optional != omitempty && !(nonEmpty && !e.optional) {
				t.Errorf("CDDL %s.%s optional %v, Go omitempty %v", name, e.name, e.optional, omitempty)
			}
		}
		for _, e := range byKey {
			t.Errorf("CDDL %s lists %s (key %d), %s has no such field", name, e.name, e.key, typ.Name())
		}
	}
}

// structKey reads a field's CBOR key from its tag: "N,keyasint[,omitempty]"
// in maps, the position in toarray structs.
func structKey(t *testing.T, typ reflect.Type, f reflect.StructField, array bool, pos int) (int, bool) {
	tag := f.Tag.Get("cbor")
	if array {
		if tag != "" {
			t.Fatalf("%s.%s: tag %q in a toarray struct", typ.Name(), f.Name, tag)
		}
		return pos, false
	}
	parts := strings.Split(tag, ",")
	key, err := strconv.Atoi(parts[0])
	if err != nil || len(parts) < 2 || parts[1] != "keyasint" {
		t.Fatalf("%s.%s: tag %q is not an integer key", typ.Name(), f.Name, tag)
	}
	return key, len(parts) == 3 && parts[2] == "omitempty"
}

// readmeExample is the request README.md's worked example describes, as
// its Go block writes it.
var readmeExample = &Request{
	Version: 1, ID: Bytes("r1"), Method: Bytes("GET"), Scheme: Bytes("https"),
	Host: Bytes("example.com"), Path: Bytes("/hello"), Query: Bytes("a=1"),
	Header: []Field{
		{Name: Bytes("accept"), Value: Bytes("text/plain")},
		{Name: Bytes("accept"), Value: Bytes("*/*")},
	},
	Client:  Bytes("192.0.2.1"),
	Values:  []Field{{Name: Bytes("identity-sub"), Value: Bytes("u42")}},
	Timeout: 1_500_000,
}

var readmeExampleResponse = &Response{
	Status: 200, Header: []Field{{Name: Bytes("content-type"), Value: Bytes("text/plain")}},
	Body: Bytes("hello\n"), Cache: Hints{TTL: 60},
}

// hexBlock reads a README hex listing: '#' starts a comment to the end of
// the line.
func hexBlock(t *testing.T, block string) []byte {
	t.Helper()
	var b strings.Builder
	for line := range strings.Lines(block) {
		line, _, _ = strings.Cut(line, "#")
		b.WriteString(line + "\n")
	}
	return parseHex(t, []byte(b.String()))
}

func onlyBlock(t *testing.T, blocks map[string][]string, info string) string {
	t.Helper()
	if len(blocks[info]) != 1 {
		t.Fatalf("README.md has %d %s blocks, want 1", len(blocks[info]), info)
	}
	return blocks[info][0]
}

func TestSpecExamples(t *testing.T) {
	blocks := readmeBlocks(t)
	want := mustMarshal(t, readmeExample)
	if got := hexBlock(t, onlyBlock(t, blocks, "cbor-pretty")); !bytes.Equal(got, want) {
		t.Errorf("README example is\n%x\nMarshal gives\n%x", got, want)
	}
	if got := strings.TrimSpace(onlyBlock(t, blocks, "cbor-diag")); got != diag(t, want) {
		t.Errorf("README diagnostic notation is\n%s\nthe CBOR is\n%s", got, diag(t, want))
	}
	// The Go block is the same value: compare it with the literal above,
	// whitespace aside.
	goBlock := strings.Join(strings.Fields(onlyBlock(t, blocks, "go")), "")
	for _, part := range []string{`ID:wire.Bytes("r1")`, `Timeout:1_500_000`, `Client:wire.Bytes("192.0.2.1")`, `{Name:wire.Bytes("accept"),Value:wire.Bytes("*/*")}`} {
		if !strings.Contains(goBlock, part) {
			t.Errorf("README Go example lacks %s", part)
		}
	}

	reqFrame := hexBlock(t, onlyBlock(t, blocks, "frame-request"))
	if built := signFrame(testKey(), 0, testNow, want, nil); !bytes.Equal(reqFrame, built) {
		t.Errorf("README request frame is\n%x\nbuilt from the spec\n%x", reqFrame, built)
	}
	respFrame := hexBlock(t, onlyBlock(t, blocks, "frame-response"))
	if built := signFrame(testKey(), 0, testNow.Add(1234e6), mustMarshal(t, readmeExampleResponse), reqFrame[offMAC:headerLen]); !bytes.Equal(respFrame, built) {
		t.Errorf("README response frame is\n%x\nbuilt from the spec\n%x", respFrame, built)
	}

	// And a Codec opens both.
	c := newCodec(t, Config{})
	var r Request
	x, err := c.DecodeRequest(reqFrame, &r)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRequest(&r, readmeExample) {
		t.Fatalf("decoded %+v", r)
	}
	var resp Response
	if _, err := c.DecodeResponse(respFrame, x, &resp); err != nil {
		t.Fatal(err)
	}
	if !sameResponse(&resp, readmeExampleResponse) {
		t.Fatalf("decoded %+v", resp)
	}
}

// TestSpecConstants keeps the numbers README.md states in step with the
// code.
func TestSpecConstants(t *testing.T) {
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for _, want := range []string{
		"`" + Path + "`",
		"`MaxFields`, " + strconv.Itoa(MaxFields),
		"`MaxInterim`, " + strconv.Itoa(MaxInterim),
		"| 0 | 1 | flags |", "| 1 | 1 | key id |", "| 2 | 8 | timestamp", "| 10 | 16 | MAC |", "| 26 | rest | payload",
		`"wedge/1 request\x00"`, `"wedge/1 response"`,
		"| entries of one map | " + strconv.Itoa(decOptions.MaxMapPairs) + " |",
		"| 8 levels;",
		"(default 16 MiB)",
		"at least 4 KiB",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
	if headerLen != 26 || offMAC != 10 || macLen != 16 || offTime != 2 || offKey != 1 ||
		len(labelReq) != 16 || len(labelResp) != 16 || decOptions.MaxNestedLevels != 8 ||
		DefaultMaxEnvelope != 16<<20 || MinMaxEnvelope != 4<<10 || Version != 1 {
		t.Error("a constant README.md states has changed")
	}
}
