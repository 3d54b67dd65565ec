// Package wedge_test checks the repository as a whole rather than one
// package: the module root has no Go package of its own, only these tests.
package wedge_test

import (
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMarkdownLinks checks every relative link and image in the
// repository's Markdown files: it must name a file or directory inside the
// repository (a clone has nothing outside it, and no absolute paths), and a
// #fragment must name a heading of the Markdown file it points at. Links
// with a scheme (https:, mailto:) are not followed.
func TestMarkdownLinks(t *testing.T) {
	for _, err := range checkLinks(".") {
		t.Error(err)
	}
}

// TestMarkdownLinksRefuses holds the checker to what it must find, so a
// checker that silently matches nothing cannot pass.
func TestMarkdownLinksRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", strings.Join([]string{
		"# Top",
		"## The fleet",
		"[ok](docs/A.md) [ok](docs/) [ok](#the-fleet) [ok](docs/A.md#a-heading-1) [ok](https://example.com/x.md)",
		"[outside](../shared/ARCHITECTURE.md)",
		"[absolute](/work/shared/ARCHITECTURE.md)",
		"[missing](docs/B.md)",
		"![missing image](docs/plot.png \"title\")",
		"[missing anchor](#the-flet)",
		"[missing anchor elsewhere](docs/A.md#nowhere)",
		"[ref]: docs/gone.md",
		`<a href="docs/none.html">x</a>`,
		"`[not a link](in/code.md)`",
		"See `../shared/ARCHITECTURE.md`, `docs/gone.go`, `docs/A.md`, `docs`, `text/plain`, `/health`, `go test ./...`.",
		"```",
		"[not a link](in/a/fence.md)",
		"```",
	}, "\n"))
	write("docs/A.md", "# A heading\n\n## A heading\n")
	var got []string
	for _, err := range checkLinks(dir) {
		got = append(got, err.Error())
	}
	want := []string{
		`README.md:4: ../shared/ARCHITECTURE.md: outside the repository`,
		`README.md:5: /work/shared/ARCHITECTURE.md: an absolute path; link relative to the file`,
		`README.md:6: docs/B.md: no such file in the repository`,
		`README.md:7: docs/plot.png: no such file in the repository`,
		`README.md:8: #the-flet: README.md has no heading with that anchor`,
		`README.md:9: docs/A.md#nowhere: docs/A.md has no heading with that anchor`,
		`README.md:10: docs/gone.md: no such file in the repository`,
		`README.md:11: docs/none.html: no such file in the repository`,
		`README.md:13: ../shared/ARCHITECTURE.md: outside the repository`,
		`README.md:13: docs/gone.go: no such file in the repository`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var (
	// inlineLink is the target of [text](target "title") and ![alt](target).
	inlineLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// refLink is a reference definition: [label]: target.
	refLink = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)`)
	// htmlLink is the target of an <a href> or <img src>.
	htmlLink = regexp.MustCompile(`\b(?:href|src)="([^"]*)"`)
	// codeSpan is inline code, where brackets are text.
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	// pathLike is code that may be a file path: `edge/config.go`,
	// `../shared/X.md`, but not `go test ./...` or `plugins/<name>`.
	pathLike = regexp.MustCompile(`^\.{0,2}/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]*)+$`)
	// scheme starts an absolute URL.
	scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// checkLinks returns what is wrong with the links of the Markdown files
// under root, each error naming file and line.
func checkLinks(root string) []error {
	var errs []error
	anchors := map[string]map[string]bool{} // by slash path from root
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".md") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, l := range links(string(b)) {
			if msg := checkLink(root, filepath.ToSlash(rel), l, anchors); msg != "" {
				errs = append(errs, fmt.Errorf("%s:%d: %s: %s", filepath.ToSlash(rel), l.line, l.target, msg))
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("walk %s: %w", root, err))
	}
	return errs
}

type link struct {
	line   int
	target string
	// span is a path in a code span rather than a link: it is checked only
	// when it names a place in the repository, from the file's directory
	// (./, ../) or from the root (a top-level entry first).
	span bool
}

// links returns the link targets of a Markdown text, outside code.
func links(text string) []link {
	var out []link
	for n, line := range prose(text) {
		for _, m := range codeSpan.FindAllString(line, -1) {
			if p := strings.Trim(m, "` "); pathLike.MatchString(p) {
				out = append(out, link{n, p, true})
			}
		}
		line = codeSpan.ReplaceAllString(line, "")
		for _, re := range []*regexp.Regexp{inlineLink, refLink, htmlLink} {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				out = append(out, link{n, m[1], false})
			}
		}
	}
	return out
}

// prose yields the lines of a Markdown text that are not in fenced code,
// with their line numbers.
func prose(text string) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		fence := ""
		for i, line := range strings.Split(text, "\n") {
			trimmed := strings.TrimLeft(line, " ")
			switch {
			case fence != "":
				if strings.HasPrefix(trimmed, fence) {
					fence = ""
				}
			case strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"):
				fence = trimmed[:3]
			default:
				if !yield(i+1, line) {
					return
				}
			}
		}
	}
}

// checkLink says what is wrong with l, in the file at from (a slash path
// from root), or "" if nothing is.
func checkLink(root, from string, l link, anchors map[string]map[string]bool) string {
	target, dir := l.target, path.Dir(from)
	if l.span {
		if strings.HasPrefix(target, "/") {
			return "" // a URL path such as /health
		}
		if !strings.HasPrefix(target, ".") {
			top, _, _ := strings.Cut(target, "/")
			if _, err := os.Stat(filepath.Join(root, top)); err != nil {
				return "" // not a path in the repository: route/plugin, text/plain
			}
			dir = "."
		}
	}
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return ""
	}
	if strings.HasPrefix(target, "/") {
		return "an absolute path; link relative to the file"
	}
	file, frag, _ := strings.Cut(target, "#")
	file, _, _ = strings.Cut(file, "?")
	dest := from
	if file != "" {
		dest = path.Join(dir, file)
		if dest == ".." || strings.HasPrefix(dest, "../") {
			return "outside the repository"
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dest))); err != nil {
			return "no such file in the repository"
		}
	}
	if frag == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	if anchors[dest] == nil {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(dest)))
		if err != nil {
			return err.Error()
		}
		anchors[dest] = headingAnchors(string(b))
	}
	if !anchors[dest][frag] {
		return dest + " has no heading with that anchor"
	}
	return ""
}

// headingAnchors returns the anchors GitHub gives the ATX headings of a
// Markdown text: lower case, spaces to hyphens, other punctuation dropped,
// and -1, -2, ... on repeats.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range prose(text) {
		trimmed := strings.TrimLeft(line, " ")
		h := strings.TrimLeft(trimmed, "#")
		if n := len(trimmed) - len(h); n == 0 || n > 6 || h != "" && h[0] != ' ' {
			continue // not an ATX heading
		}
		h = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(h), "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 0x7f:
				b.WriteRune(r)
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}
