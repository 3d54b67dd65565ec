// Package console is a slog.Handler for a person watching a terminal
// (`wedgectl up`): one short line per record, the plugin first,
//
//	15:04:05.000 WARN  misbehave@1 plugin failed route=app phase=request kind=trap err="..."
//	    stack:
//	        panic: misbehave: deliberate panic
//	        ...
//
// The wasm runtime gives each plugin's log records the attribute
// plugin=NAME@VERSION, and the edge's plugin failures carry it too; this
// handler prints its value before the message instead of among the
// attributes. Only the first plugin attribute, the runtime's, leads: one a
// plugin logs itself is printed as an ordinary attribute. An attribute
// whose value spans lines (a Go guest's panic stack, wasm.FailureAttrs's
// "stack") follows the line, indented, rather than being escaped into it.
// Production logs stay structured: this is for humans only.
package console

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// New returns a handler that writes records at level and above to w, one
// write per record; nil level means slog.LevelInfo. It and the handlers
// derived from it (WithAttrs, WithGroup) are safe for concurrent use and
// share one lock, so records never interleave on w.
func New(w io.Writer, level slog.Leveler) slog.Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &handler{mu: new(sync.Mutex), w: w, level: level}
}

type handler struct {
	mu     *sync.Mutex
	w      io.Writer
	level  slog.Leveler
	group  string // the open groups as a key prefix: "g1.g2."
	fields        // from WithAttrs
}

// fields are a record's attributes, flattened: plugin apart, the rest as
// key and text in order.
type fields struct {
	plugin string
	attrs  []field
}

type field struct{ key, val string }

// add flattens a into f under prefix, following slog's rules: empty
// attributes and empty groups are dropped, a group without a key is
// inlined.
func (f *fields) add(prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			f.add(prefix, g)
		}
		return
	}
	if prefix == "" && a.Key == "plugin" && f.plugin == "" { // the runtime's, first; a later one is the plugin's own
		f.plugin = a.Value.String()
		return
	}
	f.attrs = append(f.attrs, field{prefix + a.Key, a.Value.String()})
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = slices.Clip(h.attrs) // appends copy: h's list stays its own
	for _, a := range as {
		c.add(h.group, a)
	}
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group += name + "."
	return &c
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	f := fields{plugin: h.plugin, attrs: slices.Clip(h.attrs)}
	r.Attrs(func(a slog.Attr) bool {
		f.add(h.group, a)
		return true
	})
	b := make([]byte, 0, 256)
	if !r.Time.IsZero() {
		b = r.Time.AppendFormat(b, "15:04:05.000")
		b = append(b, ' ')
	}
	lv := r.Level.String()
	b = append(b, lv...)
	for range 5 - len(lv) { // DEBUG and ERROR are five letters; align the rest
		b = append(b, ' ')
	}
	b = append(b, ' ')
	if f.plugin != "" {
		b = appendText(b, f.plugin)
		b = append(b, ' ')
	}
	b = appendLine(b, r.Message)
	var long []field
	for _, a := range f.attrs {
		if strings.Contains(a.val, "\n") {
			long = append(long, a)
			continue
		}
		b = append(b, ' ')
		b = appendText(b, a.key)
		b = append(b, '=')
		b = appendText(b, a.val)
	}
	b = append(b, '\n')
	for _, a := range long {
		b = append(b, "    "...)
		b = appendText(b, a.key)
		b = append(b, ":\n"...)
		for line := range strings.Lines(strings.TrimRight(a.val, "\n")) {
			if line = strings.TrimSuffix(line, "\n"); line != "" {
				b = append(b, "        "...)
				b = appendLine(b, line)
			}
			b = append(b, '\n')
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

// appendText appends s as is when it reads as one word, else quoted: a
// value with a space, a quote, an '=' or a control character (a newline a
// plugin put in its message) cannot pass for another attribute or line.
func appendText(b []byte, s string) []byte {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r == ' ' || r == '"' || r == '=' || !unicode.IsPrint(r)
	}) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// appendLine appends a message or one line of a multi-line value as is,
// spaces and tabs included, unless it holds other control characters (a
// newline a plugin put in its message, a carriage return that would
// overwrite the line on a terminal, an escape sequence): then quoted.
func appendLine(b []byte, s string) []byte {
	if strings.ContainsFunc(s, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}
