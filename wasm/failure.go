package wasm

import (
	"errors"
	"log/slog"
	"strings"
)

// FailureAttrs describes a failed call for a log record, after the record's
// plugin and phase attributes: kind (trap, timeout, exit, memory, guest,
// busy; "error" for an error that is no [CallError]); err, the error's
// first line; and, when there is one, stack: what the guest wrote before it
// trapped, exited or ran out of time (a Go guest's panic message and
// goroutine stack), then the engine's wasm stack trace (all a guest that
// prints nothing leaves), newlines kept. A console handler prints stack
// below the record's line; a text or JSON log keeps the record one line.
func FailureAttrs(err error) []slog.Attr {
	var ce *CallError
	if !errors.As(err, &ce) {
		return []slog.Attr{slog.String("kind", "error"), slog.Any("err", err)}
	}
	msg, output := err.Error(), ce.output()
	if output != "" {
		// Error ends with the output; a wrapping error (ErrConfigure) puts
		// the CallError's text last too.
		msg = strings.TrimSuffix(msg, ": "+output)
	}
	msg, trace, _ := strings.Cut(msg, "\n") // wazero's error: a line, then "wasm stack trace:..."
	stack := strings.TrimSpace(output + "\n\n" + trace)
	attrs := []slog.Attr{slog.String("kind", ce.Kind.String()), slog.String("err", msg)}
	if stack != "" {
		attrs = append(attrs, slog.String("stack", stack))
	}
	return attrs
}

// output is the guest's output when Detail holds it: for an engine-level
// failure (invoke's), not an orderly one, whose Detail is the guest's own
// message, or a busy pool's, which has none.
func (e *CallError) output() string {
	if e.Kind == KindGuest || e.Kind == KindBusy {
		return ""
	}
	return e.Detail
}
