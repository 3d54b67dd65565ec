package wasm

import (
	"context"
	"errors"
	"strconv"
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
type pool struct {
	m       *Module
	size    int
	idle    chan *instance
	missing atomic.Int32
	filling atomic.Bool
	fillers sync.WaitGroup
	closing chan struct{}
}

func newPool(m *Module, size int) *pool {
	return &pool{m: m, size: size, idle: make(chan *instance, size), closing: make(chan struct{})}
}

func (p *pool) put(i *instance) { p.idle <- i } // capacity is size: never blocks

func (p *pool) get(wait time.Duration) (*instance, error) {
	select {
	case i := <-p.idle:
		return i, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case i := <-p.idle:
		return i, nil
	case <-t.C:
		return nil, errBusy
	}
}

// discard closes a failed or bloated instance and schedules its replacement.
func (p *pool) discard(i *instance, reason string) {
	i.close()
	p.m.m.replaced.WithLabelValues(reason).Inc()
	p.m.rt.log.Warn("plugin instance replaced", "plugin", p.m.spec.Name, "version", p.m.spec.Version, "reason", reason)
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
				p.m.rt.log.Error("plugin instance replacement failed", "plugin", p.m.spec.Name,
					"version", p.m.spec.Version, "err", err, "retry_in", backoff)
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
	for {
		select {
		case i := <-p.idle:
			i.close()
		default:
			return
		}
	}
}

// call runs one phase on an instance from the pool.
func (m *Module) call(phase abi.Phase, ex host.Exchange) (abi.Action, error) {
	pm := &m.m.phase[phaseIndex(phase)]
	inst, err := m.pool.get(m.timeout)
	if err != nil {
		pm.errors[KindBusy].Inc()
		return 0, &CallError{Plugin: m.spec.Name, Version: m.spec.Version, Phase: abi.PhaseName(phase), Kind: KindBusy, Err: err}
	}
	fn := inst.onRequest
	if phase == abi.PhaseResponse {
		fn = inst.onResponse
	}
	start := nanotime()
	act, cerr := inst.invoke(fn, phase, ex, m.timeout)
	pm.duration.Observe(float64(nanotime()-start) / 1e9)
	pm.calls.Inc()
	if cerr != nil {
		pm.errors[cerr.Kind].Inc()
		m.pool.discard(inst, cerr.Kind.String())
		return 0, cerr
	}
	var gerr error
	if act != abi.ActionContinue && (act != abi.ActionAnswer || phase != abi.PhaseRequest) {
		// An orderly failure: the instance itself is fine.
		detail := inst.hc.ErrorMessage()
		if act != abi.ActionFail {
			detail = "invalid action " + strconv.Itoa(int(act)) + " " + detail
		}
		pm.errors[KindGuest].Inc()
		gerr = &CallError{Plugin: m.spec.Name, Version: m.spec.Version, Phase: abi.PhaseName(phase), Kind: KindGuest, Detail: detail}
	}
	switch {
	case inst.trackMemory() > m.rt.cfg.recycleBytes:
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
