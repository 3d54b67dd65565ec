package pop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/talowa/wedge/origin"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/wasmtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunReload starts the command on a config file, then rewrites the file
// and asks the admin listener to reload it: the new greeting is served by
// the same process, and a broken file leaves the old config serving.
func TestRunReload(t *testing.T) {
	key := wire.Key{ID: 1, Secret: bytes.Repeat([]byte{9}, 32)}
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	srv, err := origin.NewServer(origin.ServerConfig{Codec: codec, Handler: origin.HandlerFunc(
		func(_ context.Context, _ *wire.Request, resp *wire.Response) { resp.Status = 204 })})
	if err != nil {
		t.Fatal(err)
	}
	oln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(oln)
	defer srv.Shutdown(context.Background())

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.wasm"), wasmtest.Build(t, "../../plugins/hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "edge.yaml")
	write := func(greeting string) {
		y := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: t0k}
origins:
  app: {addr: %q, key: %q}
routes:
  - {origin: app, chain: [{file: hello.wasm, config: {greeting: %s}}]}
`, oln.Addr().String(), key.Text(), greeting)
		if err := os.WriteFile(cfgFile, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Hi")
	ctx, cancel := context.WithCancel(context.Background())
	out := new(syncBuffer)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"-config", cfgFile}, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	re := regexp.MustCompile(`edge: serving" listen=(\S+) tls=off admin=(\S+)`)
	var m []string
	for deadline := time.Now().Add(60 * time.Second); m == nil; m = re.FindStringSubmatch(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no serving line:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	greet := func() string {
		resp, err := http.Get("http://" + m[1] + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	reload := func() int {
		req, _ := http.NewRequest("POST", "http://"+m[2]+"/reload", nil)
		req.Header.Set("Authorization", "Bearer t0k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := greet(); got != "Hi, world!\n" {
		t.Fatalf("before reload: %q", got)
	}
	write("Hello")
	if st := reload(); st != 200 {
		t.Fatalf("reload: %d", st)
	}
	if got := greet(); got != "Hello, world!\n" {
		t.Fatalf("after reload: %q", got)
	}
	if err := os.WriteFile(cfgFile, []byte("routes: [oops"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := reload(); st != 422 {
		t.Fatalf("reload of a broken file: %d, want 422", st)
	}
	if got := greet(); got != "Hello, world!\n" {
		t.Fatalf("after a failed reload: %q", got)
	}
}
