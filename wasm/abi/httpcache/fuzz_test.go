package httpcache

import (
	"testing"
	"time"
)

// FuzzDecode feeds untrusted bytes to the decoders of what the cache keeps
// (the metadata comes back from the store, the state from a request-scoped
// value any plugin of the chain could have written): neither may panic,
// and whatever they accept encodes to something they decode to the same.
func FuzzDecode(f *testing.F) {
	m := Meta{InitialAge: 1500, Lifetime: 60000, NoCache: true, SWR: 5, SIE: 9, ETag: `"e"`,
		LastMod: "Fri, 27 Nov 2026 11:00:00 GMT", VaryNames: "accept", Variant: "a\x00", Gen: "g"}
	st := State{Mode: ModeForward, Fwd: "stale", ReqTime: 42, EntryKey: "k", Primary: true, PrimaryNames: "accept"}
	for _, s := range []string{string(m.Encode()), st.Encode(), "wc1\n", "wc1\nia=x\n", "wc1\nlt=-5\nf=nm\n", "f\nrt=1\n", HitState, "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m, ok := DecodeMeta([]byte(s)); ok {
			if again, ok := DecodeMeta(m.Encode()); !ok || again != m {
				t.Fatalf("%q: meta %+v encodes to %q, which decodes to %+v", s, m, m.Encode(), again)
			}
			Reuse(&m, time.Duration(len(s))*time.Second, NoDirectives())
		}
		if st, ok := DecodeState(s); ok {
			_ = st.Encode()
		}
	})
}
