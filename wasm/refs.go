package wasm

import "context"

// Ref takes a reference on m for a holder that runs calls on it, such as an
// edge config generation (which its requests hold in turn) or the next
// generation that shares the version; false once m is closing, when the
// holder must load the version again. Release returns it.
func (m *Module) Ref() bool {
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

// Release returns a reference taken by Ref.
func (m *Module) Release() {
	if m.refs.Add(-1) == 0 {
		// The last reference may be a request's; closing all the instances
		// of a version takes milliseconds, which it should not wait for.
		go m.shutdown()
	}
}

// Close gives up the loader's reference: the module closes once no holder
// has a reference left. Further calls of Close do nothing.
func (m *Module) Close() {
	m.closeOnce.Do(m.Release)
}

// shutdown closes the instances and the compiled code. It runs once, when
// the reference count reaches zero.
func (m *Module) shutdown() {
	m.pool.close()
	_ = m.compiled.Close(context.Background())
	m.env.Metrics.Close()
	m.series.delete()
	m.rt.metrics.calls.remove(m)
	m.rt.forget(m)
	m.rt.log.Info("plugin closed", "plugin", m.id())
	close(m.done)
}
