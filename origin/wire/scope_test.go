package wire

import "testing"

// TestOriginDown: a failure says the origin cannot serve when its scope
// says so, and, from a sender without scopes, when it is a 503; anything
// that is not a failure the origin made never does.
func TestOriginDown(t *testing.T) {
	cases := []struct {
		resp Response
		want bool
	}{
		{Response{Status: 503, Error: Bytes("no healthy upstream"), Scope: ScopeOrigin}, true},
		{Response{Status: 502, Error: Bytes("upstream refused the connection"), Scope: ScopeOrigin}, true},
		{Response{Status: 504, Error: Bytes("upstream timeout"), Scope: ScopeRequest}, false},
		{Response{Status: 503, Error: Bytes("one request's trouble"), Scope: ScopeRequest}, false},
		// Senders that predate Scope.
		{Response{Status: 503, Error: Bytes("no healthy upstream")}, true},
		{Response{Status: 502, Error: Bytes("upstream closed the connection")}, false},
		{Response{Status: 504, Error: Bytes("upstream timeout")}, false},
		// Unknown scopes are read as absent.
		{Response{Status: 503, Error: Bytes("x"), Scope: 9}, true},
		{Response{Status: 504, Error: Bytes("x"), Scope: 9}, false},
		// The application's own answers.
		{Response{Status: 503}, false},
		{Response{Status: 503, Scope: ScopeOrigin}, false},
	}
	for i, tc := range cases {
		if got := tc.resp.OriginDown(); got != tc.want {
			t.Errorf("case %d (%d %q scope %d): %v, want %v", i, tc.resp.Status, tc.resp.Error, tc.resp.Scope, got, tc.want)
		}
	}
	// Scope survives the wire and Reset clears it.
	b, err := Marshal(&cases[0].resp)
	if err != nil {
		t.Fatal(err)
	}
	var got Response
	if err := Unmarshal(b, &got); err != nil || got.Scope != ScopeOrigin || !got.OriginDown() {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	got.Reset()
	if got.Scope != 0 {
		t.Fatalf("Reset kept scope %d", got.Scope)
	}
}
