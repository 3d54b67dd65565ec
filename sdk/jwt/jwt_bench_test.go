package jwt_test

import (
	"testing"

	"github.com/talowa/wedge/sdk/jwt"
)

const benchToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEyMzQ1IiwiZXhwIjoxOTAwMDAwMDAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjoiYXBpIn0.c2lnbmF0dXJlLXBsYWNlaG9sZGVyLWJ5dGVzLTMyLWJ5dGVzLWxvbmc"

func BenchmarkParse(b *testing.B) {
	var tok jwt.Token
	raw := []byte(benchToken)
	b.ReportAllocs()
	for b.Loop() {
		if err := tok.Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClaims(b *testing.B) {
	tok, err := jwt.Parse([]byte(benchToken))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := tok.Claims()
		if err != nil || c.Expiry == 0 {
			b.Fatal(err)
		}
	}
}
