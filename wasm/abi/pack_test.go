package abi_test

import (
	"bytes"
	"testing"

	"github.com/talowa/wedge/wasm/abi"
)

func TestNextItem(t *testing.T) {
	for _, c := range []struct {
		list string
		want []string
	}{
		{"", nil},
		{"\x00", []string{""}},
		{"a\x00b\x00", []string{"a", "b"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"a\x00tail", []string{"a", "tail"}}, // a truncated last item comes back as is
	} {
		var got []string
		for rest := []byte(c.list); ; {
			item, r, ok := abi.NextItem(rest)
			if !ok {
				break
			}
			got = append(got, string(item))
			rest = r
		}
		if len(got) != len(c.want) {
			t.Fatalf("%q: got %q, want %q", c.list, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%q: got %q, want %q", c.list, got, c.want)
			}
		}
	}
}

// FuzzNextItem splits lists that guests hand the host (tags, log
// attributes): splitting never panics, consumes every byte, and joining the
// items with AppendList gives back any NUL-terminated input.
func FuzzNextItem(f *testing.F) {
	for _, s := range []string{"", "\x00", "a\x00b\x00", "tail", "a\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, list []byte) {
		var joined []byte
		n := 0
		for rest := list; ; {
			item, r, ok := abi.NextItem(rest)
			if !ok {
				break
			}
			if bytes.IndexByte(item, 0) >= 0 {
				t.Fatalf("item %q holds a NUL", item)
			}
			joined = abi.AppendList(joined, item)
			if n++; n > len(list) {
				t.Fatal("more items than bytes")
			}
			rest = r
		}
		if len(list) > 0 && list[len(list)-1] == 0 && !bytes.Equal(joined, list) {
			t.Fatalf("round trip %q -> %q", list, joined)
		}
	})
}
