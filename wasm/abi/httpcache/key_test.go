package httpcache

import "testing"

// TestKeyEquivalentForms: URIs that RFC 3986 §6.2.2 and RFC 9110 §4.2.3
// make one resource share a key, so a purge of one form reaches what a
// request in another stored; different resources do not.
func TestKeyEquivalentForms(t *testing.T) {
	for _, c := range []struct{ a, b [4]string }{
		{[4]string{"http", "Shop.Example", "/p", ""}, [4]string{"HTTP", "shop.example:80", "/p", ""}},
		{[4]string{"https", "shop.example", "/p", ""}, [4]string{"https", "shop.example.:443", "/p", ""}},
		{[4]string{"https", "shop.example", "/p", ""}, [4]string{"https", "shop.example.", "/p", ""}},
		{[4]string{"https", "[::1]", "/p", ""}, [4]string{"https", "[::1]:443", "/p", ""}},
		{[4]string{"https", "shop.example", "/pc%C3%A9", "q=%2f"}, [4]string{"https", "shop.example", "/pc%c3%a9", "q=%2F"}},
		{[4]string{"https", "shop.example", "/u/café", "q=a b"}, [4]string{"https", "shop.example", "/u/caf%c3%a9", "q=a%20b"}},
		{[4]string{"https", "shop.example", "/x~y", "k=v-1"}, [4]string{"https", "shop.example", "/x%7ey", "k=v%2D1"}},
	} {
		if ka, kb := Key(c.a[0], c.a[1], c.a[2], c.a[3]), Key(c.b[0], c.b[1], c.b[2], c.b[3]); ka != kb {
			t.Errorf("%q and %q: keys %q and %q, want one", c.a, c.b, ka, kb)
		}
	}
	for _, c := range []struct{ a, b [4]string }{
		{[4]string{"http", "shop.example", "/p", ""}, [4]string{"http", "shop.example:443", "/p", ""}},
		{[4]string{"http", "shop.example", "/p", ""}, [4]string{"https", "shop.example", "/p", ""}},
		{[4]string{"https", "shop.example", "/p", ""}, [4]string{"https", "shop.example:8443", "/p", ""}},
		{[4]string{"https", "shop.example", "/a%2Fb", ""}, [4]string{"https", "shop.example", "/a/b", ""}},
		{[4]string{"https", "shop.example", "/caf", ""}, [4]string{"https", "shop.example", "/CAF", ""}},
		{[4]string{"https", "shop.example", "/a%3Fb", ""}, [4]string{"https", "shop.example", "/a?b", ""}},
		{[4]string{"https", "shop.example", "/a%", ""}, [4]string{"https", "shop.example", "/a%25", ""}},
		// Hosts are lowered as the router lowers them, ASCII only: Unicode
		// folds the Kelvin sign (U+212A) to "k", and invalid UTF-8 bytes all
		// to U+FFFD, so another route's host would key as this one's.
		{[4]string{"https", "kite.test", "/p", ""}, [4]string{"https", "\u212Aite.test", "/p", ""}},
		{[4]string{"https", "\xffkite.test", "/p", ""}, [4]string{"https", "\xfekite.test", "/p", ""}},
		{[4]string{"https", "a\xe2", "/p", ""}, [4]string{"https", "a%E2", "/p", ""}},
	} {
		if ka, kb := Key(c.a[0], c.a[1], c.a[2], c.a[3]), Key(c.b[0], c.b[1], c.b[2], c.b[3]); ka == kb {
			t.Errorf("%q and %q: one key %q, want two", c.a, c.b, ka)
		}
	}
	if got, want := Key("https", "Example.com.:443", "/a%2fb", "y=2&x=1"), "wc1\x00https://example.com/a%2Fb?y=2&x=1"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := Key("https", "\u212Aite.Test", "/", ""), "wc1\x00https://%E2%84%AAite.test/"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
}

// TestSameOriginKeyASCIIHost: a Location on another host is not the
// request's origin however Unicode folds it; the Kelvin sign is not "k".
func TestSameOriginKeyASCIIHost(t *testing.T) {
	if k, ok := SameOriginKey("https", "\u212Aite.test", "/a", "", "https://kite.test/b"); ok {
		t.Errorf("Location on kite.test from \u212Aite.test: same origin, key %q", k)
	}
	if k, ok := SameOriginKey("https", "Kite.test", "/a", "", "https://kite.TEST/b"); !ok || k != "wc1\x00https://kite.test/b" {
		t.Errorf("Location on kite.TEST from Kite.test: %q, %t; want its key", k, ok)
	}
}
