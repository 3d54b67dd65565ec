package console_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/internal/console"
)

var at = time.Date(2026, 12, 6, 3, 4, 5, 678e6, time.Local)

// logAt logs one record at a fixed time through h.
func logAt(t *testing.T, h slog.Handler, level slog.Level, msg string, args ...any) {
	t.Helper()
	r := slog.NewRecord(at, level, msg, 0)
	r.Add(args...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestLine(t *testing.T) {
	var b bytes.Buffer
	h := console.New(&b, slog.LevelDebug).WithAttrs([]slog.Attr{slog.String("plugin", "hello@3")})
	logAt(t, h, slog.LevelInfo, "greeted", "who", "world", "n", 2, "note", "two words", "empty", "")
	logAt(t, console.New(&b, nil), slog.LevelError, "edge: reload failed", "err", errors.New("bad"))
	want := `03:04:05.678 INFO  hello@3 greeted who=world n=2 note="two words" empty=""
03:04:05.678 ERROR edge: reload failed err=bad
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// A record's own plugin attribute leads too (the edge's "plugin failed"),
// and a multi-line value follows the line, indented, newlines kept.
func TestStack(t *testing.T) {
	var b bytes.Buffer
	stack := "panic: misbehave: deliberate panic\n\ngoroutine 1 [running]:\nmain.misbehave(...)\n\t/src/main.go:37\n"
	logAt(t, console.New(&b, nil), slog.LevelWarn, "plugin failed", "plugin", "misbehave@1", "phase", "request",
		"kind", "trap", "stack", stack, "route", "app")
	want := `03:04:05.678 WARN  misbehave@1 plugin failed phase=request kind=trap route=app
    stack:
        panic: misbehave: deliberate panic

        goroutine 1 [running]:
        main.misbehave(...)
        	/src/main.go:37
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// A plugin's message or value cannot forge a line of its own: newlines in
// the message and carriage returns and escapes in a stack are quoted, and
// a plugin attribute of its own is an ordinary one, not the runtime's.
func TestForgery(t *testing.T) {
	var b bytes.Buffer
	h := console.New(&b, nil).WithAttrs([]slog.Attr{slog.String("plugin", "evil@1")})
	logAt(t, h, slog.LevelInfo, "hi\n03:04:05.678 ERROR auth@1 forged", "k", "a\rb", "plugin", "auth@2", "stack", "x\n\x1b[2Jy\rz")
	want := `03:04:05.678 INFO  evil@1 "hi\n03:04:05.678 ERROR auth@1 forged" k="a\rb" plugin=auth@2
    stack:
        x
        "\x1b[2Jy\rz"
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestGroups(t *testing.T) {
	var b bytes.Buffer
	h := console.New(&b, nil).WithAttrs([]slog.Attr{slog.String("a", "1")}).WithGroup("g").
		WithAttrs([]slog.Attr{slog.String("plugin", "not-the-plugin")})
	logAt(t, h, slog.LevelInfo, "m", slog.Group("sub", "x", 1), slog.Group("", "inline", 2), slog.Group("none"), slog.Attr{})
	want := "03:04:05.678 INFO  m a=1 g.plugin=not-the-plugin g.sub.x=1 g.inline=2\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// WithAttrs on one handler never changes another's attributes.
func TestWithAttrsIndependent(t *testing.T) {
	var b bytes.Buffer
	base := console.New(&b, nil).WithAttrs([]slog.Attr{slog.String("a", "1")})
	one := base.WithAttrs([]slog.Attr{slog.String("b", "1")})
	two := base.WithAttrs([]slog.Attr{slog.String("b", "2")})
	logAt(t, one, slog.LevelInfo, "one")
	logAt(t, two, slog.LevelInfo, "two")
	logAt(t, base, slog.LevelInfo, "base")
	want := "03:04:05.678 INFO  one a=1 b=1\n03:04:05.678 INFO  two a=1 b=2\n03:04:05.678 INFO  base a=1\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestLevel(t *testing.T) {
	var b bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	lg := slog.New(console.New(&b, lv))
	lg.Info("hidden")
	lg.Warn("shown")
	lv.Set(slog.LevelDebug)
	lg.Debug("shown too")
	if got := b.String(); strings.Contains(got, "hidden") || !strings.Contains(got, " WARN  shown\n") || !strings.Contains(got, " DEBUG shown too\n") {
		t.Errorf("got %q", got)
	}
}

// Records written from many goroutines, through handlers derived from one
// another, arrive whole: one line each, never interleaved.
func TestConcurrent(t *testing.T) {
	var b bytes.Buffer
	base := console.New(&b, nil)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		lg := slog.New(base.WithAttrs([]slog.Attr{slog.String("plugin", fmt.Sprintf("p%d@1", w))}))
		wg.Go(func() {
			for i := range each {
				lg.Info("record", "i", i, "stack", "line one\nline two")
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != workers*each*4 {
		t.Fatalf("%d lines, want %d", len(lines), workers*each*4)
	}
	for i := 0; i < len(lines); i += 4 {
		if !strings.Contains(lines[i], "@1 record i=") || lines[i+1] != "    stack:" || lines[i+2] != "        line one" || lines[i+3] != "        line two" {
			t.Fatalf("record at line %d torn: %q", i, lines[i:i+4])
		}
	}
}
