package wire

import (
	"math/rand/v2"
	"testing"
)

// exchangeCase is one request and its response: a small header-heavy pair,
// or a POST of a JSON body answered with a JSON body of the same size.
type exchangeCase struct {
	name string
	req  *Request
	resp *Response
}

func exchangeCases() []exchangeCase {
	rng := rand.New(rand.NewPCG(7, 7))
	out := []exchangeCase{{"small", browserRequest(rng), browserResponse(rng)}}
	for _, n := range []struct {
		name string
		size int
	}{{"json10k", 10 << 10}, {"json100k", 100 << 10}} {
		req := browserRequest(rng)
		req.Method = Bytes("POST")
		req.AddHeader([]byte("content-type"), []byte("application/json"))
		req.Body = jsonBody(n.size)
		resp := browserResponse(rng)
		resp.Body = jsonBody(n.size + 1)
		out = append(out, exchangeCase{n.name, req, resp})
	}
	return out
}

// exchanger runs whole exchanges between an edge and an origin Codec,
// reusing every buffer and envelope the way the real callers do.
type exchanger struct {
	edge, origin      *Codec
	reqBuf, respBuf   []byte
	gotReq            Request
	gotResp           Response
	reqSize, respCBOR int
}

func newExchanger(tb testing.TB, dict bool) *exchanger {
	var cfg, ocfg Config
	if dict {
		d := testDict(tb)
		cfg = Config{Dicts: [][]byte{d}, Dict: testDictID}
		ocfg = Config{Dicts: [][]byte{d}}
	}
	return &exchanger{edge: newCodec(tb, cfg), origin: newCodec(tb, ocfg)}
}

func (e *exchanger) run(tb testing.TB, tc exchangeCase) {
	var x Exchange
	var err error
	e.reqBuf, x, err = e.edge.AppendRequest(e.reqBuf[:0], tc.req)
	if err != nil {
		tb.Fatal(err)
	}
	ox, err := e.origin.DecodeRequest(e.reqBuf, &e.gotReq)
	if err != nil {
		tb.Fatal(err)
	}
	e.respBuf, e.respCBOR, err = e.origin.AppendResponse(e.respBuf[:0], ox, tc.resp)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.edge.DecodeResponse(e.respBuf, x, &e.gotResp); err != nil {
		tb.Fatal(err)
	}
	e.reqSize = x.Size
}

// BenchmarkExchange is one request and its response through both sides:
// edge seals, origin opens, origin seals, edge opens. req-B/frame and
// resp-B/frame are what goes over the wire; SetBytes counts the CBOR.
func BenchmarkExchange(b *testing.B) {
	for _, tc := range exchangeCases() {
		for _, dict := range []bool{false, true} {
			name := tc.name + "/nodict"
			if dict {
				name = tc.name + "/dict"
			}
			b.Run(name, func(b *testing.B) { loopExchange(b, newExchanger(b, dict), tc) })
		}
	}
}

// BenchmarkExchangeParallel is the small exchange from every P at once: the
// pooled encoders, decoders and MACs under contention.
func BenchmarkExchangeParallel(b *testing.B) {
	tc := exchangeCases()[0]
	for _, dict := range []bool{false, true} {
		name := "small/nodict"
		if dict {
			name = "small/dict"
		}
		b.Run(name, func(b *testing.B) {
			base := newExchanger(b, dict)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				e := &exchanger{edge: base.edge, origin: base.origin}
				for pb.Next() {
					e.run(b, tc)
				}
			})
		})
	}
}

// BenchmarkExchangeMinCompress is BenchmarkExchange with the sides
// configured as the edge and origin binaries are (DefaultMinCompress): the
// small exchange goes uncompressed, the larger ones as before.
func BenchmarkExchangeMinCompress(b *testing.B) {
	for _, tc := range exchangeCases() {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{MinCompress: DefaultMinCompress}
			loopExchange(b, &exchanger{edge: newCodec(b, cfg), origin: newCodec(b, cfg)}, tc)
		})
	}
}

// loopExchange runs tc's exchange through e as one benchmark, reporting the
// frames' sizes.
func loopExchange(b *testing.B, e *exchanger, tc exchangeCase) {
	e.run(b, tc)
	b.SetBytes(int64(e.reqSize + e.respCBOR))
	b.ReportAllocs()
	for b.Loop() {
		e.run(b, tc)
	}
	b.ReportMetric(float64(len(e.reqBuf)), "req-B/frame")
	b.ReportMetric(float64(len(e.respBuf)), "resp-B/frame")
}
