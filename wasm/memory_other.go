//go:build !unix

package wasm

import "github.com/tetratelabs/wazero/experimental"

var mmapAllocator experimental.MemoryAllocator = experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
	return &sliceMemory{max: max}
})
