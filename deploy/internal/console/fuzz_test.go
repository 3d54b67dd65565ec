package console_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/talowa/wedge/deploy/internal/console"
)

// FuzzHandle: whatever a plugin puts in its version, message, keys and
// values, a record is one line starting with the time, and what follows it
// is indented, so no record can pass for another on a terminal.
func FuzzHandle(f *testing.F) {
	f.Add("hello@3", "hi", "k", "v")
	f.Add("evil@1", "x\n03:04:05.678 ERROR auth@1 forged", "k=v x", "a\rb")
	f.Add("p@1", "msg", "stack", "panic: boom\n\ngoroutine 1 [running]:\n\x1b[2J\n")
	f.Add("", "", "", "\n")
	f.Fuzz(func(t *testing.T, plugin, msg, key, val string) {
		var b bytes.Buffer
		h := console.New(&b, nil).WithAttrs([]slog.Attr{slog.String("plugin", plugin)})
		logAt(t, h, slog.LevelInfo, msg, key, val)
		out := b.String()
		if !strings.HasPrefix(out, "03:04:05.678 INFO  ") || !strings.HasSuffix(out, "\n") {
			t.Fatalf("record %q", out)
		}
		if strings.ContainsAny(out, "\r\x1b") {
			t.Fatalf("control character in %q", out)
		}
		for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n")[1:] {
			if line != "" && !strings.HasPrefix(line, "    ") {
				t.Fatalf("line %d not indented: %q in %q", i+1, line, out)
			}
		}
	})
}
