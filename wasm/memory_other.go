//go:build !unix

package wasm

import "github.com/tetratelabs/wazero/experimental"

func mmapAllocator(limit uint64) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
		return &sliceMemory{max: min(max, limit)}
	})
}
