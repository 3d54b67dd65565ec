package wire

import (
	"bytes"
	"testing"
)

func testKey() Key { return Key{ID: 7, Secret: bytes.Repeat([]byte{0x42}, 32)} }

func TestRoundTrip(t *testing.T) {
	c, err := NewCodec(Config{Keys: []Key{testKey()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &Request{Method: Bytes("GET"), Path: Bytes("/x"), Timeout: 5000}
	req.AddHeader([]byte("Accept"), []byte("a"))
	req.AddHeader([]byte("Accept"), []byte("b"))
	frame, x, err := c.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	var got Request
	x2, err := c.DecodeRequest(frame, &got)
	if err != nil {
		t.Fatal(err)
	}
	if x2 != x || !Equal(got.Header, req.Header) || string(got.Path) != "/x" || got.Timeout != 5000 {
		t.Fatalf("got %+v %+v, want %+v %+v", got, x2, req, x)
	}
	resp := &Response{Status: 200, Body: Bytes("hi"), Cache: Hints{TTL: 3, Tags: []Bytes{Bytes("a")}}}
	rf, _, err := c.AppendResponse(nil, x2, resp)
	if err != nil {
		t.Fatal(err)
	}
	var gr Response
	if _, err := c.DecodeResponse(rf, x, &gr); err != nil {
		t.Fatal(err)
	}
	if gr.Status != 200 || string(gr.Body) != "hi" || gr.Cache.TTL != 3 || len(gr.Cache.Tags) != 1 {
		t.Fatalf("got %+v", gr)
	}
}
