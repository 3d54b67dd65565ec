//go:build !race

package connwatch

import (
	"io"
	"testing"
)

// TestAllocs: the check on every reused connection allocates nothing.
func TestAllocs(t *testing.T) {
	c, s := pair(t)
	req, ans, buf := []byte("req"), []byte("ans"), make([]byte, 3)
	n := testing.AllocsPerRun(100, func() {
		c.Write(req)
		io.ReadFull(s, buf)
		s.Write(ans)
		io.ReadFull(c, buf)
	})
	if n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}
