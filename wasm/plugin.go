package wasm

import (
	"context"
	"sync/atomic"
)

// Plugin is a named slot holding the current version of a plugin. Swap
// replaces the version while requests run: a request holds the version it
// acquired until Release, so its request and response phases run on the same
// version; the old version closes when its last request releases it.
type Plugin struct {
	cur atomic.Pointer[Module]
}

// NewPlugin returns a slot serving m. The slot takes over the loader's
// reference: close m through the slot (Swap or Close), not directly.
func NewPlugin(m *Module) *Plugin {
	p := &Plugin{}
	p.cur.Store(m)
	return p
}

// Acquire returns the current version with a reference held; the caller
// must Release it. It never returns a closed module: after Close it returns
// nil.
func (p *Plugin) Acquire() *Module {
	for {
		m := p.cur.Load()
		if m.tryRef() {
			if p.cur.Load() == m {
				return m
			}
			// Swapped meanwhile: a request that starts after Swap runs on
			// the new version.
			m.Release()
			continue
		}
		if p.cur.Load() == m {
			return nil // closed and not replaced: the slot is closed
		}
	}
}

// Current returns the current version without taking a reference, for
// status reports.
func (p *Plugin) Current() *Module { return p.cur.Load() }

// Swap makes m the current version and retires the previous one, which
// closes once its in-flight requests have released it.
func (p *Plugin) Swap(m *Module) (old *Module) {
	old = p.cur.Swap(m)
	if old != m {
		old.Close()
	}
	return old
}

// Close retires the current version.
func (p *Plugin) Close() { p.cur.Load().Close() }

func (m *Module) tryRef() bool {
	for {
		n := m.refs.Load()
		if n <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Ref takes a reference for a holder that is not a request going through
// a Plugin slot, such as an edge config generation that shares a version
// with the next one; false once the module is closing. Release returns it.
func (m *Module) Ref() bool { return m.tryRef() }

// Release returns a reference taken by Plugin.Acquire or Ref.
func (m *Module) Release() { m.release() }

func (m *Module) release() {
	if m.refs.Add(-1) == 0 {
		// The last reference may be a request's; closing all the instances
		// of a version takes milliseconds, which it should not wait for.
		go m.shutdown()
	}
}

// Close gives up the loader's reference: the module closes once no request
// holds it. Further calls of Close do nothing.
func (m *Module) Close() {
	m.closeOnce.Do(m.release)
}

// shutdown closes the instances and the compiled code. It runs once, when
// the reference count reaches zero.
func (m *Module) shutdown() {
	m.pool.close()
	_ = m.compiled.Close(context.Background())
	m.env.Metrics.Close()
	m.m.delete()
	m.rt.metrics.calls.remove(m)
	m.rt.forget(m)
	m.rt.log.Info("plugin closed", "plugin", m.spec.Name, "version", m.spec.Version)
	close(m.done)
}
