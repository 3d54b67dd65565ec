package origin

import (
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/talowa/wedge/origin/wire"
)

// TestHTTPInterim: a net/http application's informational responses reach
// the envelope as net/http would have sent them, with the header as it
// stood; 100 Continue does not.
func TestHTTPInterim(t *testing.T) {
	h := HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Link", "</a.css>; rel=preload")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusContinue)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	}))
	o := startOrigin(t, h, nil)
	resp := exchange(t, o.addr, o.codec, getReq("/"))
	var got []string
	for _, in := range resp.Interim {
		s := strconv.Itoa(int(in.Status))
		for _, f := range in.Header {
			s += " | " + string(f.Name) + ": " + string(f.Value)
		}
		got = append(got, s)
	}
	if want := []string{"103 | Link: </a.css>; rel=preload"}; resp.Status != 200 || !slices.Equal(got, want) {
		t.Errorf("got %d, interim %q, want 200, %q", resp.Status, got, want)
	}
	if _, ok := wire.Get(resp.Header, "Link"); ok {
		t.Error("the final response kept a field deleted after the 103")
	}
}
