//go:build race

package host

// raceEnabled: the race detector makes some paths allocate.
const raceEnabled = true
