package auth

import "testing"

// TestSubjectMatches: the NATS wildcards as CheckPOPCreds reads a
// credential's permissions: "*" is one token, ">" one or more.
func TestSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b.c", "a.b.c", true},
		{"a.b.c", "a.b", false},
		{"a.b", "a.b.c", false},
		{"a.*.c", "a.x.c", true},
		{"a.*.c", "a.x.y.c", false},
		{"a.>", "a.x.y", true},
		{"a.>", "a", false},
		{">", "a", true},
		{"a.b.*", "a.b", false},
	} {
		if got := subjectMatches(c.pattern, c.subject); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}
