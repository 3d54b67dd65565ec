package edge

import (
	"strconv"
	"testing"

	"github.com/talowa/wedge/origin/wire"
)

// TestBigKeysBound: the too-large keys stay bounded, and a key is
// remembered until then.
func TestBigKeysBound(t *testing.T) {
	var b bigKeys
	if b.has([]byte("k")) {
		t.Fatal("an empty set has k")
	}
	for i := range bigKeyMax + 10 {
		b.add([]byte("k" + strconv.Itoa(i)))
		if len(b.m) > bigKeyMax {
			t.Fatalf("%d keys after %d adds, bound %d", len(b.m), i+1, bigKeyMax)
		}
	}
	if !b.has([]byte("k" + strconv.Itoa(bigKeyMax+9))) {
		t.Error("the last key added is forgotten")
	}
}

// TestTakeCond: the validator mark leaves an ask's values, the others stay
// in order.
func TestTakeCond(t *testing.T) {
	var r wire.Request
	r.AddValue([]byte("a"), []byte("1"))
	r.AddValue([]byte(tierCondValue), []byte("cache"))
	r.AddValue([]byte("b"), []byte("2"))
	if !takeCond(&r) || len(r.Values) != 2 || string(r.Values[0].Name) != "a" || string(r.Values[1].Name) != "b" {
		t.Fatalf("took the mark: values %q", r.Values)
	}
	if takeCond(&r) {
		t.Error("took a mark that is not there")
	}
}
