package readmetest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestBlocks(t *testing.T) {
	f := filepath.Join(t.TempDir(), "README.md")
	readme := "# p\n\n## Config\n\n```json\n{}\n```\n\n## Examples\n\nText.\n\n```json\n{\"a\": 1}\n```\n\n" +
		"```scenario\n# a comment, not a heading\nget /\n```\n\n### A subsection\n\n```http\n> GET /\n< 200\n```\n\n## Other\n\n```json\n{}\n```\n"
	if err := os.WriteFile(f, []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Lang: "json", Text: `{"a": 1}`, Line: 13},
		{Lang: "scenario", Text: "# a comment, not a heading\nget /", Line: 17},
		{Lang: "http", Text: "> GET /\n< 200", Line: 24},
	}
	if got := Blocks(t, f, "## Examples"); !reflect.DeepEqual(got, want) {
		t.Errorf("Examples:\n got %+v\nwant %+v", got, want)
	}
	if got := Blocks(t, f, ""); len(got) != 5 || got[0].Line != 5 || got[4].Line != 31 {
		t.Errorf("whole file: %+v, want the 5 blocks from line 5 to 31", got)
	}
}
