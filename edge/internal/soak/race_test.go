//go:build race

package soak

// raceEnabled: the race detector's shadow memory follows every host
// allocation and is not returned with the heap, so RSS bounds loosen.
const raceEnabled = true
