package listeners

import (
	"errors"
	"net"
	"testing"
)

// TestAddAfterClose: a listener added after Close is closed at once and
// refused, which is what keeps a late Serve from serving forever; one added
// before is closed by Close.
func TestAddAfterClose(t *testing.T) {
	var s Set
	before, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Add(before) {
		t.Fatal("Add refused a listener before Close")
	}
	if s.Closed() {
		t.Fatal("Closed before Close")
	}
	s.Close()
	if !s.Closed() {
		t.Fatal("not Closed after Close")
	}
	if _, err := before.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a listener added before Close: %v, want net.ErrClosed", err)
	}
	after, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Add(after) {
		t.Fatal("Add accepted a listener after Close")
	}
	if _, err := after.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a listener added after Close: %v, want net.ErrClosed", err)
	}
}
