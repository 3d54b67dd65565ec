package rendezvous

import (
	"fmt"
	"testing"
)

// keys is the fixed key set every test measures: no randomness, so the
// bounds below are checked once and hold on every run.
var keys = func() []string {
	k := make([]string, 30000)
	for i := range k {
		k[i] = fmt.Sprintf("GET example.com/assets/%d.js", i)
	}
	return k
}()

// owners maps each key to the name of its owner in s.
func owners(s *Set) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = s.Name(s.OwnerString(k))
	}
	return out
}

func TestEmpty(t *testing.T) {
	if got := New().OwnerString("k"); got != -1 {
		t.Fatalf("owner in an empty set: %d, want -1", got)
	}
}

// TestOwnerAgrees checks what the POPs of a region rely on: the owner
// depends on the members, not on the order they were listed in, and the
// []byte and string forms agree.
func TestOwnerAgrees(t *testing.T) {
	a, b := New("eu-west-1", "eu-west-2", "eu-west-3"), New("eu-west-3", "eu-west-1", "eu-west-2")
	for _, k := range keys[:2000] {
		if na, nb := a.Name(a.OwnerString(k)), b.Name(b.OwnerString(k)); na != nb {
			t.Fatalf("%q: owner %s in one order, %s in another", k, na, nb)
		}
		if a.Owner([]byte(k)) != a.OwnerString(k) {
			t.Fatalf("%q: Owner and OwnerString disagree", k)
		}
	}
}

// TestBalance: each of N members owns about 1/N of the keys.
func TestBalance(t *testing.T) {
	for n := 1; n <= 8; n++ {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("pop-%d", i+1)
		}
		count := map[string]int{}
		for _, o := range owners(New(names...)) {
			count[o]++
		}
		for _, name := range names {
			share := float64(count[name]) / float64(len(keys))
			if want := 1 / float64(n); share < want*0.9 || share > want*1.1 {
				t.Errorf("%d members: %s owns %.3f of the keys, want %.3f +/- 10%%", n, name, share, want)
			}
		}
	}
}

// TestLeave: a member that leaves gives away exactly its own keys, and
// they spread over the others.
func TestLeave(t *testing.T) {
	before := owners(New("a", "b", "c", "d"))
	after := owners(New("a", "b", "d"))
	got := map[string]int{}
	for i := range keys {
		switch {
		case before[i] == "c":
			got[after[i]]++
		case after[i] != before[i]:
			t.Fatalf("%q moved from %s to %s, though %s stayed", keys[i], before[i], after[i], before[i])
		}
	}
	total := got["a"] + got["b"] + got["d"]
	for _, n := range []string{"a", "b", "d"} {
		if share := float64(got[n]) / float64(total); share < 0.3 || share > 0.37 {
			t.Errorf("%s took %.3f of c's keys, want about 1/3", n, share)
		}
	}
}

// TestJoin: a member that joins takes about 1/(N+1) of the keys, and only
// keys move to it.
func TestJoin(t *testing.T) {
	before := owners(New("a", "b", "c"))
	after := owners(New("a", "b", "c", "d"))
	moved := 0
	for i := range keys {
		if after[i] == before[i] {
			continue
		}
		if after[i] != "d" {
			t.Fatalf("%q moved from %s to %s, not to the new member", keys[i], before[i], after[i])
		}
		moved++
	}
	if share := float64(moved) / float64(len(keys)); share < 0.23 || share > 0.27 {
		t.Errorf("the fourth member took %.3f of the keys, want about 1/4", share)
	}
}

func TestOwnerAllocs(t *testing.T) {
	s := New("eu-west-1", "eu-west-2", "eu-west-3")
	key := []byte("GET example.com/assets/app.js")
	if n := testing.AllocsPerRun(1000, func() { s.Owner(key); s.OwnerString("k") }); n != 0 {
		t.Fatalf("Owner allocates %v times per call", n)
	}
}

func BenchmarkOwner(b *testing.B) {
	s := New("eu-west-1", "eu-west-2", "eu-west-3")
	key := []byte("GET example.com/assets/app.js")
	b.ReportAllocs()
	for b.Loop() {
		s.Owner(key)
	}
}
