package wasm

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

var errBusy = errors.New("no free instance within the call deadline")

// pool holds a module's idle instances. An instance leaves the pool only for
// the duration of one guest call, so a pool of a few instances per core
// carries full load. A failed instance is closed and replaced in the
// background by a single refill goroutine.
//
// # Why slots rather than a channel
//
// Every call takes an instance and puts it back. With a buffered channel the
// two cores of a loaded node spent over a third of their time contending for
// the channel's lock. Idle instances instead sit in a fixed array of atomic
// slots, each on its own cache line, claimed with a compare-and-swap (see
// take for the order, which keeps instances on their core). Only when every
// slot is empty does get wait: then put hands its instance straight to
// a waiter (fairly, in channel order, so callers that find a free slot first
// cannot starve the waiting ones), and wake covers the moment between a
// waiter's last look at the slots and its wait.
type pool struct {
	m       *Module
	slots   []slot
	waiters atomic.Int32
	handoff chan *instance // unbuffered: put to a blocked waiter
	wake    chan struct{}  // one token per slot at most: no waiter misses a put
	missing atomic.Int32
	filling atomic.Bool
	fillers sync.WaitGroup
	closing chan struct{}
}

func newPool(m *Module, size int) *pool {
	return &pool{m: m, slots: make([]slot, size),
		handoff: make(chan *instance), wake: make(chan struct{}, size), closing: make(chan struct{})}
}

// slot holds one idle instance, alone on its cache line so that cores
// claiming different slots do not contend.
type slot struct {
	atomic.Pointer[instance]
	_ [56]byte
}

// put returns an instance to a free slot: the one it came from when it is
// still free, else the lowest. There is always one, since the pool never
// holds more instances than slots.
func (p *pool) put(i *instance) {
	if p.waiters.Load() > 0 {
		select {
		case p.handoff <- i:
			return
		default:
		}
	}
	// Load before each CAS: a CAS on an occupied slot fails, but only after
	// taking its cache line away from the core that uses it.
	if s := &p.slots[i.slot]; s.Load() != nil || !s.CompareAndSwap(nil, i) {
		for k := range p.slots {
			if s := &p.slots[k]; s.Load() == nil {
				// Set before the CAS publishes i: once in a slot it may be
				// taken, and its new holder's put reads slot.
				i.slot = k
				if s.CompareAndSwap(nil, i) {
					break
				}
			}
		}
	}
	if p.waiters.Load() > 0 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// take claims the idle instance in the lowest slot, or returns nil. Lowest
// first, with put returning instances home, keeps a busy goroutine on the
// instance it used last, whose memory is still in its core's cache: against
// a random slot this halved the cost of a call when two cores call at once.
func (p *pool) take() *instance {
	for k := range p.slots {
		s := &p.slots[k]
		if i := s.Load(); i != nil && s.CompareAndSwap(i, nil) {
			return i
		}
	}
	return nil
}

// wait waits up to wait for an instance, when take found none.
func (p *pool) wait(wait time.Duration) (*instance, error) {
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		// Look again after announcing the wait: a put that came before it
		// did not signal.
		if i := p.take(); i != nil {
			return i, nil
		}
		select {
		case i := <-p.handoff:
			return i, nil
		case <-p.wake:
		case <-t.C:
			return nil, errBusy
		}
	}
}

// discard closes a failed or bloated instance and schedules its replacement.
func (p *pool) discard(i *instance, reason string) {
	i.close()
	p.m.series.replaced.WithLabelValues(reason).Inc()
	p.m.rt.log.Warn("plugin instance replaced", "plugin", p.m.id(), "reason", reason)
	p.missing.Add(1)
	p.refill()
}

func (p *pool) refill() {
	if !p.filling.CompareAndSwap(false, true) {
		return
	}
	p.fillers.Add(1)
	go func() {
		defer p.fillers.Done()
		backoff := 10 * time.Millisecond
		for p.missing.Load() > 0 {
			select {
			case <-p.closing:
				p.filling.Store(false)
				return
			default:
			}
			inst, err := p.m.newInstance(context.Background())
			if err != nil {
				attrs := append([]slog.Attr{slog.String("plugin", p.m.id()), slog.String("phase", "configure")}, FailureAttrs(err)...)
				p.m.rt.log.LogAttrs(context.Background(), slog.LevelError, "plugin instance replacement failed",
					append(attrs, slog.Duration("retry_in", backoff))...)
				select {
				case <-p.closing:
					p.filling.Store(false)
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			p.missing.Add(-1)
			p.put(inst)
		}
		p.filling.Store(false)
		// A discard between the loop's last check and the Store above found
		// filling set and left the work to us.
		if p.missing.Load() > 0 {
			p.refill()
		}
	}()
}

// close stops refilling and closes every instance. The module calls it once
// no call can be in flight, so every live instance is idle.
func (p *pool) close() {
	close(p.closing)
	p.fillers.Wait()
	for i := p.take(); i != nil; i = p.take() {
		i.close()
	}
}

// call runs one phase on an instance from the pool.
func (m *Module) call(phase abi.Phase, ex host.Exchange) (abi.Action, error) {
	ph := phaseIndex(phase)
	errs := &m.series.errors[ph]
	// One clock reading serves the duration metric and the deadline, unless
	// the call had to wait for an instance: the deadline is the guest's.
	start := nanotime()
	begin := start
	inst := m.pool.take()
	if inst == nil {
		var err error
		if inst, err = m.pool.wait(m.timeout); err != nil {
			errs[KindBusy].Inc()
			return 0, &CallError{Plugin: m.spec.Name, Version: m.spec.Version, Phase: abi.PhaseName(phase), Kind: KindBusy, Err: err}
		}
		begin = nanotime()
	}
	fn := inst.onRequest
	if phase == abi.PhaseResponse {
		fn = inst.onResponse
	}
	act, cerr := inst.invoke(fn, phase, ex, m.timeout, begin)
	inst.calls[ph].observe(nanotime() - start)
	if cerr != nil {
		errs[cerr.Kind].Inc()
		m.pool.discard(inst, cerr.Kind.String())
		return 0, cerr
	}
	var gerr error
	answered := act == abi.ActionAnswer && phase == abi.PhaseRequest
	if act != abi.ActionContinue && !answered || answered && ex.Status() == 0 {
		// An orderly failure: the instance itself is fine.
		detail := inst.hc.ErrorMessage()
		switch {
		case answered:
			detail = "answered without setting a status"
		case act != abi.ActionFail:
			detail = abi.BadAction(phase, act)
		}
		errs[KindGuest].Inc()
		gerr = &CallError{Plugin: m.spec.Name, Version: m.spec.Version, Phase: abi.PhaseName(phase), Kind: KindGuest, Detail: detail}
	}
	switch {
	case inst.trackMemory() > m.recycleBytes:
		m.pool.discard(inst, "recycle")
	default:
		m.pool.put(inst)
	}
	return act, gerr
}

func phaseIndex(p abi.Phase) int {
	if p == abi.PhaseResponse {
		return 1
	}
	return 0
}
