package edgetest_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/talowa/wedge/edge/edgetest"
	"github.com/talowa/wedge/origin/origintest"
)

// TestStart serves a plugin's answer and an origin's through a started
// node, and its metrics on the admin server.
func TestStart(t *testing.T) {
	n := edgetest.Start(t, fmt.Sprintf(`
admin: {token: s3cret}
origins:
  app: {addr: %q, key: %q}
routes:
  - name: hello
    path: /
    origin: app
    chain:
      - {file: %q, config: {greeting: Hi}}
`, origintest.Start(t, origintest.OK).Addr, origintest.Key.Text(), edgetest.ModuleFile(t, "../../plugins/hello")))

	client := &http.Client{Timeout: time.Minute} // a hang guard
	get := func(url string, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if st, body := get("http://" + n.Addr + "/hello?name=Ada"); st != 200 || body != "Hi, Ada!\n" {
		t.Fatalf("plugin answer: %d %q", st, body)
	}
	if st, _ := get("http://" + n.Addr + "/other"); st != 200 {
		t.Fatalf("origin answer: %d", st)
	}
	if st, body := get(n.Admin.URL+"/metrics", "Authorization", "Bearer s3cret"); st != 200 || !strings.Contains(body, "wedge_plugin_hello_greetings_total") {
		t.Fatalf("admin metrics: %d, no hello greetings in\n%s", st, body)
	}
}
