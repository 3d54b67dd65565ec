package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ticker wakes the dispatcher every tick from start on. It is a periodic
// timerfd read through Go's netpoller, which wakes when the fd becomes
// readable, to the kernel timer's precision. time.Sleep cannot pace below a
// millisecond: when the process has nothing else to run, the runtime waits
// for its next timer in epoll_wait, whose timeout is in whole milliseconds,
// rounded up; a 100 us sleep took ~1.05 ms, so the dispatcher released each
// millisecond's requests in one burst, and most of a paced run's median
// and much of its "late" count were the generator's.
type ticker struct {
	f   *os.File
	buf [8]byte // the expirations since the last read
}

func newTicker(start time.Time, tick time.Duration) (*ticker, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	// A zero first expiry would disarm the timer.
	spec := unix.ItimerSpec{Interval: unix.NsecToTimespec(int64(tick)),
		Value: unix.NsecToTimespec(max(int64(time.Until(start)), 1))}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	// Non-blocking, so os.NewFile registers it with the netpoller.
	return &ticker{f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

// wait returns once a tick is due, with how many fell due since the last
// wait (more than one when the process was late to read).
func (t *ticker) wait() (uint64, error) {
	if _, err := io.ReadFull(t.f, t.buf[:]); err != nil {
		return 0, fmt.Errorf("timerfd: %w", err)
	}
	return binary.NativeEndian.Uint64(t.buf[:]), nil
}

func (t *ticker) stop() { t.f.Close() }
