package host

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talowa/wedge/wasm/abi"
)

func BenchmarkKeyringVerify(b *testing.B) {
	msg := []byte("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTczNjAwMDAwMH0")
	for _, tc := range []struct {
		name string
		alg  abi.Alg
		hit  bool
	}{
		{"HS256", abi.AlgHS256, false},
		{"ES256/hit", abi.AlgES256, true},
		{"ES256/miss", abi.AlgES256, false},
		{"RS256/hit", abi.AlgRS256, true},
		{"RS256/miss", abi.AlgRS256, false},
		{"EdDSA/hit", abi.AlgEdDSA, true},
		{"EdDSA/miss", abi.AlgEdDSA, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ring := NewKeyring(NewVerifyCache(1 << 16))
			kf := keyForms(tc.alg)[0]
			h := ring.Register(tc.alg, kf.format, kf.data)
			sig := sign(b, tc.alg, msg)
			scratch := make([]byte, 0, 512)
			want := int32(1)
			// A miss verifies a new message every time (the signature then
			// fails, at the full cost of a check); a hit repeats one.
			m := append(make([]byte, 0, len(msg)+20), msg...)
			if !tc.hit && tc.alg != abi.AlgHS256 {
				want = 0
			}
			var r int32
			r, scratch = ring.Verify(h, msg, sig, scratch) // warm up
			if r != 1 {
				b.Fatalf("Verify = %d", r)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				in := msg
				if !tc.hit && tc.alg != abi.AlgHS256 {
					in = strconv.AppendInt(m[:len(msg)], int64(i), 10)
				}
				if r, scratch = ring.Verify(h, in, sig, scratch); r != want {
					b.Fatalf("Verify = %d, want %d", r, want)
				}
			}
		})
	}
}

func BenchmarkGCRATake(b *testing.B) {
	const limit, burst = 1 << 30, 1 << 30 // never denies
	b.Run("serial", func(b *testing.B) {
		g := NewGCRA(1 << 16)
		k := []byte("tenant:42:/api")
		b.ReportAllocs()
		for b.Loop() {
			g.Take(k, limit, time.Second, burst, 1)
		}
	})
	b.Run("parallel/distinct keys", func(b *testing.B) {
		g := NewGCRA(1 << 16)
		var id atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			k := []byte("tenant:" + strconv.FormatInt(id.Add(1), 10))
			for pb.Next() {
				g.Take(k, limit, time.Second, burst, 1)
			}
		})
	})
	b.Run("parallel/one key", func(b *testing.B) {
		g := NewGCRA(1 << 16)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			k := []byte("shared")
			for pb.Next() {
				g.Take(k, limit, time.Second, burst, 1)
			}
		})
	})
	b.Run("new keys", func(b *testing.B) {
		g := NewGCRA(1 << 12) // bounded: inserts run makeRoom
		k := make([]byte, 0, 32)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			g.Take(strconv.AppendInt(k[:0], int64(i), 36), limit, time.Second, burst, 1)
		}
	})
}

func BenchmarkMemCacheGet(b *testing.B) {
	m := NewMemCache(64 << 20)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte("/static/asset/" + strconv.Itoa(i) + ".css")
		m.Set(keys[i], testEntry(time.Hour, 0, "body", "static"))
	}
	m.c.CleanUp()
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, ok := m.Get(keys[i%len(keys)]); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		k := []byte("/absent")
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := m.Get(k); ok {
				b.Fatal("hit")
			}
		}
	})
	b.Run("hit/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				m.Get(keys[i%len(keys)])
			}
		})
	})
}

func BenchmarkCallHeaderGet(b *testing.B) {
	f := newFixture(b, abi.PhaseRequest)
	f.ex.Req.Header.Fields = append(f.ex.Req.Header.Fields,
		HeaderField{"Accept", "*/*"}, HeaderField{"User-Agent", "bench"}, HeaderField{"Authorization", "Bearer x.y.z"})
	name, buf := []byte("authorization"), make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if f.call.HeaderGet(abi.MsgRequest, name, buf) != 12 {
			b.Fatal("wrong length")
		}
	}
}
