//go:build !linux

package main

import "time"

// ticker paces with time.Sleep where there is no timerfd; it sleeps at
// least a millisecond whenever the process idles (see ticker_linux.go).
type ticker struct{ tick time.Duration }

func newTicker(start time.Time, tick time.Duration) (*ticker, error) {
	time.Sleep(time.Until(start))
	return &ticker{tick: tick}, nil
}

func (t *ticker) wait() (uint64, error) { time.Sleep(t.tick); return 1, nil }

func (t *ticker) stop() {}
