//go:build unix

package wasm

import (
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// mmapAllocator backs each instance's linear memory with its own anonymous
// mapping of its memory limit: the memory's declared maximum, at most limit
// bytes. limit is the module's own, which may be below the runtime's (the
// one wazero enforces, for all modules); memory.grow past it fails alike.
//
// # Why
//
// wazero's default grows linear memory by copying it into a bigger Go slice:
// a Go guest growing to 48 MiB copied ~300 MiB on the way, and the freed
// buffers stayed in the Go heap (counted against GOGC) until scavenged. A
// reserved mapping grows in place, costs physical memory only for pages the
// guest touches, and goes back to the kernel the moment the instance closes.
//
// Unmapping is safe because an instance is only closed when no call runs on
// it (the pool holds it, or Runtime.Close found no module in use).
func mmapAllocator(limit uint64) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
		max = min(max, limit)
		b, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
		if err != nil {
			return &sliceMemory{max: max}
		}
		return &mmapMemory{b: b}
	})
}

type mmapMemory struct{ b []byte }

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.b)) {
		return nil
	}
	return m.b[:size:size]
}

func (m *mmapMemory) Free() {
	if m.b != nil {
		_ = unix.Munmap(m.b)
		m.b = nil
	}
}
