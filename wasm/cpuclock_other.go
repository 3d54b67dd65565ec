//go:build !linux

package wasm

const haveThreadClock = false

func threadCPU() (int64, bool) { return 0, false }
