//go:build !unix

package edge

import "time"

// processCPU: no getrusage here, so the node sheds for requests in flight
// only.
func processCPU() (time.Duration, bool) { return 0, false }
