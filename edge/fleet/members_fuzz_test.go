package fleet

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/deploy/manifest"
)

// FuzzSeePeer feeds the membership view status reports as the bucket may
// hold them, whoever wrote them: whatever the bytes, the view lists the
// agent once, sorted, and only POPs of its region under their own keys.
func FuzzSeePeer(f *testing.F) {
	good, _ := json.Marshal(manifest.Status{POP: "b", Region: "eu", Peer: "127.0.0.1:8081"})
	other, _ := json.Marshal(manifest.Status{POP: "c", Region: "us"})
	f.Add("pop.eu.b", true, good)
	f.Add("pop.us.c", true, other)
	f.Add("pop.us.b", true, good)
	f.Add("pop.eu.a", true, []byte(`{"pop":"a","region":"eu"}`))
	f.Add("pop.eu.b", false, []byte(nil))
	f.Add("pop.eu.x", true, []byte(`{"pop":"x","region":"eu","peer":7}`))
	f.Add("pop.eu.", true, []byte(`{"pop":"","region":"eu"}`))
	f.Add("pop.eu.b", true, []byte("{not json"))
	f.Fuzz(func(t *testing.T, key string, put bool, value []byte) {
		a := &Agent{o: Options{Region: "eu", POP: "a"}, members: members{ttl: time.Second, others: map[string]Peer{}}}
		now := time.Now()
		a.seePeer(key, put, value, now)
		view := a.peers(now)
		if !slices.IsSortedFunc(view, func(x, y Peer) int { return strings.Compare(x.POP, y.POP) }) {
			t.Fatalf("view not sorted: %+v", view)
		}
		selfs := 0
		for _, p := range view {
			if p.Self {
				selfs++
				continue
			}
			if p.POP == "a" || p.Region != "eu" || manifest.StatusKey(p.Region, p.POP) != key {
				t.Fatalf("report %q under %q made %+v a member", value, key, p)
			}
		}
		if selfs != 1 {
			t.Fatalf("view %+v lists the agent %d times", view, selfs)
		}
	})
}
