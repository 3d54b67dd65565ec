// Package readmetest reads the fenced code blocks of a README for the
// tests that run a plugin's README examples. Each plugin's README writes
// what an example does in a small language of its own (an HTTP exchange
// for auth, a scenario for cache, exchange scripts for ratelimit), since
// each shows something different; where the examples stand and how they
// are fenced is one convention, read here once.
package readmetest

import (
	"os"
	"strings"
	"testing"
)

// Block is one fenced code block.
type Block struct {
	// Lang is the info string after the opening fence: "json", "http".
	Lang string
	// Text is the lines between the fences, joined by newlines, without a
	// newline at the end.
	Text string
	// Line is the opening fence's line number in the file, for messages.
	Line int
}

// Blocks returns the fenced code blocks of file in order, from the heading
// line section ("## Examples") to the next heading of its level or a
// higher one; an empty section is the whole file. A line in a block that
// starts with # is the block's, not a heading. It fails t if the file or
// the section is missing or a block is left open.
func Blocks(t testing.TB, file, section string) []Block {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	level := strings.IndexFunc(section, func(r rune) bool { return r != '#' })
	in, found := section == "", section == ""
	var out []Block
	var open *Block
	var lines []string
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case open != nil && line == "```":
			open.Text = strings.Join(lines, "\n")
			out = append(out, *open)
			open = nil
		case open != nil:
			lines = append(lines, line)
		case in && strings.HasPrefix(line, "```"):
			open, lines = &Block{Lang: line[3:], Line: i + 1}, nil
		case section != "" && line == section:
			in, found = true, true
		case in && section != "" && strings.HasPrefix(line, "#") && heading(line) <= level:
			in = false
		}
	}
	switch {
	case open != nil:
		t.Fatalf("%s:%d: the block is not closed", file, open.Line)
	case !found:
		t.Fatalf("%s has no %q section", file, section)
	}
	return out
}

// heading is the level of a Markdown heading line: its leading #s.
func heading(line string) int {
	return len(line) - len(strings.TrimLeft(line, "#"))
}
