package edge_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/klauspost/compress/zstd"
)

// BenchmarkTunnelEcho measures the round trip of a 256-byte text message
// to a WebSocket echo application and back, over a connection straight to
// the application and through an edge node and an origin service (two
// more hops, each copying the bytes; the edge reading frame headers). All
// run in this process on loopback, so allocations are those of every
// part, the client and the application included. It reports the mean
// (ns/op), the median and the 99th percentile.
func BenchmarkTunnelEcho(b *testing.B) {
	n, a := startWS(b, "", "")
	msg := bytes.Repeat([]byte("m"), 256)
	for _, target := range []struct{ name, url string }{
		{"direct", "ws://" + a.addr + "/ws"},
		{"edge", "ws://" + n.Addr + "/ws"},
	} {
		b.Run(target.name, func(b *testing.B) {
			c, _, err := dialURL(target.url)
			if err != nil {
				b.Fatal(err)
			}
			defer c.CloseNow()
			ctx := context.Background()
			var rtt []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
				rtt = append(rtt, time.Since(start))
			}
			slices.Sort(rtt)
			b.ReportMetric(float64(rtt[len(rtt)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(rtt[len(rtt)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// wsMessages are messages as a socket.io chat sends them: events with a
// small JSON payload, and a ping.
var wsMessages = [][]byte{
	[]byte(`42["chat message",{"room":"general","user":"alice","text":"hello there, how is everyone doing today?","ts":1733450000123}]`),
	[]byte(`42["typing",{"room":"general","user":"bob"}]`),
	[]byte(`2`),
	[]byte(`42["presence",{"users":[{"id":"u1","name":"alice","status":"online"},{"id":"u2","name":"bob","status":"away"},{"id":"u3","name":"carol","status":"online"}]}]`),
	[]byte(`{"type":"update","payload":{"id":123456,"price":101.25,"qty":3,"side":"buy","symbol":"ACME","venue":"X"}}`),
}

// BenchmarkTunnelCompress is what compressing each message on the edge's
// hop would cost and save, with the origin link's zstd (SpeedFastest, no
// dictionary): the CPU of compressing and decompressing one message
// (ns/op) and the share of bytes saved (saved-%). It is why tunnels carry
// bytes as they come (README.md, "WebSocket").
func BenchmarkTunnelCompress(b *testing.B) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	var raw, packed int
	var z, out []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := wsMessages[i%len(wsMessages)]
		z = enc.EncodeAll(m, z[:0])
		if out, err = dec.DecodeAll(z, out[:0]); err != nil {
			b.Fatal(err)
		}
		raw += len(m)
		packed += len(z)
	}
	b.ReportMetric(100*float64(raw-packed)/float64(raw), "saved-%")
}
