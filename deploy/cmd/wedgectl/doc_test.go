package main

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestDocListsEveryCommand keeps the package doc, which is what `go doc`
// shows an operator, from falling behind the command table again (it once
// listed 5 of 19 commands).
func TestDocListsEveryCommand(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	for name := range commands {
		if !strings.Contains(doc, "\twedgectl "+name+" ") {
			t.Errorf("the package doc does not list wedgectl %s", name)
		}
	}
	if n := strings.Count(doc, "\twedgectl "); n != len(commands) {
		t.Errorf("the package doc lists %d commands, the table has %d", n, len(commands))
	}
}
