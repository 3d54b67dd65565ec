package host

import "testing"

// TestRevalidateOwnsCopiedStrings: the request a revalidation keeps
// outlives the exchange, so strings of it held in the exchange's storage
// (CopyString, which Reset reuses) are copied, the scalar fields as well
// as the header fields.
func TestRevalidateOwnsCopiedStrings(t *testing.T) {
	var x MemExchange
	x.Req = Request{Method: x.CopyString([]byte("GET")), Host: x.CopyString([]byte("example.com")),
		Path: x.CopyString([]byte("/a")), RawQuery: x.CopyString([]byte("q=1")), Proto: x.CopyString([]byte("HTTP/1.1")),
		ClientAddr: x.CopyString([]byte("127.0.0.1:1")), ID: x.CopyString([]byte("id-1")), Scheme: "http"}
	x.Req.Header.Add(x.CopyString([]byte("Accept")), x.CopyString([]byte("text/plain")))
	want := x.Req
	want.Header.Fields = append([]HeaderField(nil), x.Req.Header.Fields...)
	if !x.Revalidate([]byte("k"), func() {}) {
		t.Fatal("revalidate refused")
	}
	rv := x.TakeRevalidation()
	defer rv.Done()
	x.Reset()
	for range 8 {
		x.CopyString([]byte("XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"))
	}
	got := rv.Req
	if got.Method != "GET" || got.Host != "example.com" || got.Path != "/a" || got.RawQuery != "q=1" ||
		got.Proto != "HTTP/1.1" || got.ClientAddr != "127.0.0.1:1" || got.ID != "id-1" {
		t.Fatalf("revalidation request changed with the exchange: %+v", got)
	}
	if v, _ := got.Header.Get("Accept"); v != "text/plain" {
		t.Fatalf("revalidation header changed with the exchange: %q", v)
	}
}
