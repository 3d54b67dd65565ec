//go:build race

package originclient

const raceEnabled = true
