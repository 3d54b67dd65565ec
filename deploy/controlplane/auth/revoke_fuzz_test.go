package auth

import (
	"testing"

	"github.com/nats-io/nkeys"
)

// FuzzParseRevocations: revoked.json, which may be copied between members
// by hand, never panics Load, and every revocation it takes has a user's
// key and a time.
func FuzzParseRevocations(f *testing.F) {
	user, err := nkeys.CreateUser()
	if err != nil {
		f.Fatal(err)
	}
	key, err := user.PublicKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`[{"key":"` + key + `","name":"pop/eu-west-1","at":"2026-12-06T10:00:00Z"}]`))
	f.Add([]byte(`[{"key":"` + key + `"}]`))
	f.Add([]byte(`[{"key":"UNOPE","at":"2026-12-06T10:00:00Z"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"key":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := parseRevocations(b)
		if err != nil {
			return
		}
		for _, r := range rs {
			if !nkeys.IsValidPublicUserKey(r.Key) || r.At.Unix() <= 0 {
				t.Fatalf("took %+v from %q", r, b)
			}
		}
	})
}
