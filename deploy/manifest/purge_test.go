package manifest

import (
	"strings"
	"testing"
)

func TestParsePurge(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{`{"id":"0123abcd","tag":"product-42","time":"2026-01-02T03:04:05Z","who":"ops"}`, ""},
		{`{"id":"0123abcd","url":"https://shop.example/p?x=1","region":"eu-west"}`, ""},
		{`{"id":"0123abcd"}`, "want a tag or a URL"},
		{`{"id":"0123abcd","tag":"a","url":"https://x.example/"}`, "want a tag or a URL"},
		{`{"id":"0123abcd","url":"/relative"}`, "absolute http(s) URL"},
		{`{"id":"0123abcd","url":"ftp://x.example/"}`, "absolute http(s) URL"},
		{`{"id":"0123abcd","tag":"a","region":"EU"}`, "region"},
		{`{"id":"../x","tag":"a"}`, "purge id"},
		{`{"tag":"a"}`, "purge id"},
		{`[1]`, "purge record"},
		{`{"id":"0123abcd","tag":"` + strings.Repeat("a", MaxPurgeRecord) + `"}`, "bytes, want at most"},
	} {
		p, err := ParsePurge([]byte(c.in))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%.60s: %v, want an error with %q", c.in, err, c.err)
		case c.err == "" && p.ID != "0123abcd":
			t.Errorf("%s: %+v", c.in, p)
		}
	}
	if got := (&Purge{Region: "eu-west"}).Subject(); got != "wedge.purge.region.eu-west" {
		t.Errorf("region subject %q", got)
	}
	if got := (&Purge{}).Subject(); got != SubjectPurgeFleet {
		t.Errorf("fleet subject %q", got)
	}
	if id := NewPurgeID(); CheckName("purge id", id) != nil || id == NewPurgeID() {
		t.Errorf("purge id %q", id)
	}
}

func TestParsePurgeAck(t *testing.T) {
	const ack = `{"id":"0123abcd","pop":"eu-west-1","region":"eu-west","purged":3}`
	if got := PurgeAckSubject("0123abcd", "eu-west-1"); got != "wedge.purge.ack.0123abcd.eu-west-1" {
		t.Errorf("subject %q", got)
	}
	a, err := ParsePurgeAck(PurgeAckSubject("0123abcd", "eu-west-1"), []byte(ack))
	if err != nil || a.POP != "eu-west-1" || a.Purged != 3 {
		t.Errorf("%+v, %v", a, err)
	}
	for _, in := range []string{`{"id":"x"}`, `{"pop":"A B"}`, `nope`, `{"pop":"` + strings.Repeat("a", MaxPurgeRecord) + `"}`} {
		if _, err := ParsePurgeAck(PurgeAckSubject("x", "*"), []byte(in)); err == nil {
			t.Errorf("%.60s: accepted", in)
		}
	}
	// One POP's acknowledgement in another's name, or of another purge,
	// is refused: the subject is what NATS let the sender publish on.
	for _, subject := range []string{PurgeAckSubject("0123abcd", "eu-west-2"), PurgeAckSubject("ffff0000", "eu-west-1"), "wedge.purge.ack.0123abcd"} {
		if _, err := ParsePurgeAck(subject, []byte(ack)); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("%s: %v", subject, err)
		}
	}
}

// FuzzParsePurge: a record from the stream is refused or checked whole:
// it never panics, and what it accepts is a purge a POP can apply.
func FuzzParsePurge(f *testing.F) {
	f.Add([]byte(`{"id":"0123abcd","tag":"product-42","time":"2026-01-02T03:04:05Z","who":"ops"}`))
	f.Add([]byte(`{"id":"0123abcd","url":"https://shop.example/p?x=1","region":"eu-west"}`))
	f.Add([]byte(`{"id":"0123abcd","url":"http://[::1]:80/%zz"}`))
	f.Add([]byte(`{"id":"","tag":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePurge(b)
		if err != nil {
			return
		}
		if err := p.Check(); err != nil {
			t.Fatalf("accepted %q, which does not check: %v", b, err)
		}
		if (p.Tag == "") == (p.URL == "") {
			t.Fatalf("accepted %q: tag %q, url %q", b, p.Tag, p.URL)
		}
	})
}

// FuzzParsePurgeAck: an acknowledgement never panics the issuer, and one
// accepted names a valid POP, the one of the subject it came on.
func FuzzParsePurgeAck(f *testing.F) {
	f.Add("wedge.purge.ack.0123abcd.eu-west-1", []byte(`{"id":"0123abcd","pop":"eu-west-1","region":"eu-west","purged":3}`))
	f.Add("wedge.purge.ack.0123abcd.eu-west-2", []byte(`{"id":"0123abcd","pop":"eu-west-1"}`))
	f.Add("wedge.purge.ack..", []byte(`{"pop":"","purged":-1}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, subject string, b []byte) {
		a, err := ParsePurgeAck(subject, b)
		if err != nil {
			return
		}
		if CheckName("pop", a.POP) != nil || subject != PurgeAckSubject(a.ID, a.POP) {
			t.Fatalf("accepted %q on %q with pop %q", b, subject, a.POP)
		}
	})
}
