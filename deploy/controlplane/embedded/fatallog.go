package embedded

import (
	"fmt"
	"sync"
)

// fatalLog is the server's logger while it starts: it keeps the first
// fatal error (a listener the server could not open), which the server
// only logs, so that Start can return it at once instead of waiting out
// its deadline for a listener that will never open. Everything else is
// dropped, as the servers' logs always were.
type fatalLog struct {
	mu  sync.Mutex
	err error
}

func (l *fatalLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	err := &logError{msg: fmt.Sprintf(format, v...)}
	for _, a := range v {
		if cause, ok := a.(error); ok {
			err.cause = cause // errors.Is sees, e.g., syscall.EADDRINUSE
		}
	}
	l.err = err
}

// failed is the fatal error logged so far, or nil.
func (l *fatalLog) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}

// logError is a fatal error as the server logged it, wrapping the error
// among its arguments.
type logError struct {
	msg   string
	cause error
}

func (e *logError) Error() string { return e.msg }
func (e *logError) Unwrap() error { return e.cause }
