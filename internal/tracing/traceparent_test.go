package tracing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParse(t *testing.T) {
	p, err := Parse(valid)
	if err != nil {
		t.Fatal(err)
	}
	if p.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || p.SpanID.String() != "00f067aa0ba902b7" || !p.Sampled() {
		t.Fatalf("parsed %+v", p)
	}
	if got := string(p.Append(nil)); got != valid {
		t.Errorf("Append: %q, want %q", got, valid)
	}
	// A later version is read by version 00's rules over its first 55
	// characters; what follows a '-' is its own and ignored.
	for _, v := range []string{
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", // unknown flags: sampled is bit 0
	} {
		q, err := Parse([]byte(v))
		if err != nil || q.TraceID != p.TraceID || q.SpanID != p.SpanID || !q.Sampled() {
			t.Errorf("%q: %+v, %v", v, q, err)
		}
	}
	for _, c := range []struct {
		v   string
		err error
	}{
		{"", ErrLength},
		{valid[:54], ErrLength},
		{valid + "-", ErrLength}, // version 00 is exactly 55
		{"ff" + valid[2:], ErrVersion},
		{"0g" + valid[2:], ErrVersion},
		{"0A" + valid[2:], ErrVersion},
		{"01" + valid[2:] + "x", ErrFormat}, // a later version goes on after a '-' only
		{strings.ToUpper(valid), ErrFormat},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ErrFormat},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", ErrFormat},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ErrFormat},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", ErrFormat},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01", ErrFormat},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", ErrFormat},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ErrZeroID},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ErrZeroID},
	} {
		if _, err := Parse(c.v); !errors.Is(err, c.err) {
			t.Errorf("%q: %v, want %v", c.v, err, c.err)
		}
	}
}

func TestFind(t *testing.T) {
	find := func(fs ...[2]string) error {
		_, err := Find(len(fs), func(i int) string { return fs[i][0] }, func(i int) string { return fs[i][1] })
		return err
	}
	if err := find([2]string{"Accept", "*/*"}, [2]string{"TraceParent", valid}); err != nil {
		t.Errorf("one, in any case: %v", err)
	}
	if err := find([2]string{"Accept", "*/*"}); !errors.Is(err, ErrAbsent) {
		t.Errorf("none: %v, want ErrAbsent", err)
	}
	if err := find([2]string{"traceparent", valid}, [2]string{"traceparent", valid}); !errors.Is(err, ErrFormat) {
		t.Errorf("two: %v, want ErrFormat", err)
	}
}

func TestJoin(t *testing.T) {
	from, _ := Parse(valid)
	unsampled := from
	unsampled.Flags = 0
	all, err := New(Config{OTLP: "http://127.0.0.1:1", Sample: 1, Service: "t"})
	if err != nil {
		t.Fatal(err)
	}
	none, err := New(Config{OTLP: "http://127.0.0.1:1", Sample: 0, Service: "t"})
	if err != nil {
		t.Fatal(err)
	}
	trusting, err := New(Config{OTLP: "http://127.0.0.1:1", Sample: 0, Service: "t", TrustSampled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { all.Shutdown(t.Context()); none.Shutdown(t.Context()); trusting.Shutdown(t.Context()) }) //nolint:errcheck
	for _, c := range []struct {
		name    string
		t       *Tracer
		from    Parent
		err     error
		sampled bool
	}{
		// A sender's sampled flag is no order unless trusted: any client
		// could set it on every request.
		{"sampled parent, ratio 0", none, from, nil, false},
		{"sampled parent, ratio 1", all, from, nil, true},
		{"sampled parent, trusted, ratio 0", trusting, from, nil, true},
		{"unsampled parent, trusted", trusting, unsampled, nil, false},
		{"unsampled parent, ratio 1", all, unsampled, nil, false},
		{"new trace, ratio 1", all, Parent{}, ErrAbsent, true},
		{"new trace, ratio 0", none, Parent{}, ErrAbsent, false},
		{"sampled parent, tracing off", nil, from, nil, false},
		{"malformed, ratio 1", all, Parent{}, ErrFormat, true},
	} {
		h := c.t.Join(c.from, c.err)
		if h.Span.Sampled() != c.sampled {
			t.Errorf("%s: sampled %v, want %v", c.name, h.Span.Sampled(), c.sampled)
		}
		if c.err == nil && (h.Span.TraceID != from.TraceID || !h.Joined) {
			t.Errorf("%s: trace %s, want the parent's", c.name, h.Span.TraceID)
		}
		if c.err != nil && (h.Span.TraceID == from.TraceID || h.Joined || !h.Span.TraceID.IsValid()) {
			t.Errorf("%s: trace %s joined %v, want a new one", c.name, h.Span.TraceID, h.Joined)
		}
		if !h.Span.SpanID.IsValid() || h.Span.SpanID == from.SpanID {
			t.Errorf("%s: span id %s, want a new one", c.name, h.Span.SpanID)
		}
		// The SDK's sampler takes the same decision: the span records.
		if sp := c.t.Start(&h, "x", trace.SpanKindServer, time.Now()); (sp != nil) != c.sampled || sp != nil && !sp.IsRecording() {
			t.Errorf("%s: Start gave %v", c.name, sp)
		} else if sp != nil && sp.SpanContext().SpanID() != h.Span.SpanID {
			t.Errorf("%s: span %s, want the id sent on, %s", c.name, sp.SpanContext().SpanID(), h.Span.SpanID)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	for _, c := range []Config{
		{OTLP: "127.0.0.1:4318", Sample: 1, Service: "s"},
		{OTLP: "grpc://127.0.0.1:4317", Sample: 1, Service: "s"},
		{OTLP: "http://", Sample: 1, Service: "s"},
		{OTLP: "http://127.0.0.1:4318?x=1", Sample: 1, Service: "s"},
		{OTLP: "http://127.0.0.1:4318", Sample: 1.5, Service: "s"},
		{OTLP: "http://127.0.0.1:4318", Sample: -0.1, Service: "s"},
		{OTLP: "http://127.0.0.1:4318", Sample: 1},
	} {
		if err := c.Check(); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	if err := (Config{OTLP: "https://collector.example:4318/otlp/v1/traces", Sample: 0.05, Service: "s"}).Check(); err != nil {
		t.Error(err)
	}
}

// TestAllocs: what every request runs, traced or not, allocates nothing:
// reading the field, deciding (sampled or not), writing the new one.
func TestAllocs(t *testing.T) {
	tr, err := New(Config{OTLP: "http://127.0.0.1:1", Sample: 0.5, Service: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(t.Context()) //nolint:errcheck
	in := []byte(valid)
	var buf [64]byte
	allocs := testing.AllocsPerRun(1000, func() {
		p, err := Parse(in)
		h := tr.Join(p, err)
		_ = h.Span.Append(buf[:0])
		h = tr.Join(Parent{}, ErrAbsent)
		_ = h.Span.Append(buf[:0])
	})
	if allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}

func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		valid, "", "ff" + valid[2:], "01" + valid[2:] + "-x", strings.ToUpper(valid),
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", valid[:54],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, err := Parse(v)
		if err != nil {
			return
		}
		// What is accepted is valid, and written back it is the same
		// version 00 field.
		if !p.TraceID.IsValid() || !p.SpanID.IsValid() {
			t.Fatalf("%q: accepted zero ids", v)
		}
		out := string(p.Append(nil))
		if out[3:] != v[3:55] {
			t.Fatalf("%q: written back as %q", v, out)
		}
		if q, err := Parse(out); err != nil || q != p {
			t.Fatalf("%q: round trip %q: %+v %v", v, out, q, err)
		}
	})
}
