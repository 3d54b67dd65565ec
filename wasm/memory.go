package wasm

// sliceMemory is a linear memory in the Go heap, grown by copying: the
// fallback when a mapping cannot be made.
type sliceMemory struct {
	b   []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size > uint64(cap(m.b)) {
		nb := make([]byte, size, min(max(size, 2*uint64(cap(m.b))), m.max))
		copy(nb, m.b)
		m.b = nb
	}
	m.b = m.b[:size]
	return m.b
}

func (m *sliceMemory) Free() { m.b = nil }
