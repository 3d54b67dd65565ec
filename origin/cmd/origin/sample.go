package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/talowa/wedge/origin/wire"
)

// maxSampleFiles bounds what -samples writes: enough envelopes to train a
// dictionary, not enough to fill a disk.
const maxSampleFiles = 5000

// sampler writes every Nth exchange's envelopes for dictionary training.
// Encoding happens on the request path, since the envelopes are reused once
// the handler returns; the files are written by one goroutine, and samples
// are dropped rather than queued when it falls behind.
type sampler struct {
	dir   string
	every uint64
	log   *slog.Logger
	seen  atomic.Uint64
	files atomic.Int64 // written or about to be
	queue chan sample
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

type sample struct {
	n         uint64
	req, resp []byte
}

func newSampler(dir string, every uint64, log *slog.Logger) (*sampler, error) {
	if every == 0 {
		return nil, errors.New("-sample-every must be at least 1")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &sampler{dir: dir, every: every, log: log, queue: make(chan sample, 64), stop: make(chan struct{})}
	s.wg.Add(1)
	go s.write()
	return s, nil
}

// observe takes an answered exchange (origin.ProxyConfig.Observe).
func (s *sampler) observe(req *wire.Request, resp *wire.Response) {
	n := s.seen.Add(1)
	if n%s.every != 0 || s.files.Load() >= maxSampleFiles {
		return
	}
	if s.files.Add(2) > maxSampleFiles {
		s.files.Add(-2)
		return
	}
	rb, err1 := wire.Marshal(redactRequest(req))
	pb, err2 := wire.Marshal(redactResponse(resp))
	if err := errors.Join(err1, err2); err != nil {
		s.files.Add(-2)
		s.log.Warn("origin: cannot encode a sample", "err", err)
		return
	}
	select {
	case s.queue <- sample{n: n, req: rb, resp: pb}:
	default:
		s.files.Add(-2)
	}
}

func (s *sampler) write() {
	defer s.wg.Done()
	for {
		select {
		case smp := <-s.queue:
			s.save(smp)
		case <-s.stop:
			for {
				select {
				case smp := <-s.queue:
					s.save(smp)
				default:
					return
				}
			}
		}
	}
}

func (s *sampler) save(smp sample) {
	base := filepath.Join(s.dir, strconv.FormatUint(smp.n, 10))
	for _, f := range []struct {
		name string
		b    []byte
	}{{base + ".req.cbor", smp.req}, {base + ".resp.cbor", smp.resp}} {
		if err := os.WriteFile(f.name, f.b, 0o600); err != nil {
			s.log.Warn("origin: cannot write a sample", "err", err)
		}
	}
}

// close writes what is queued and stops the writer. Exchanges still running
// may offer samples after it; they are dropped.
func (s *sampler) close() {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
	})
}

var redacted = []byte("redacted")

// secretField reports whether a field's value may be a credential: the
// dictionary trained on samples goes to every edge, so none may be in it.
// By the words such fields are named with (X-Api-Key, X-Auth-Token,
// Set-Cookie, ...): one redacted too many costs the dictionary a value.
func secretField(name []byte) bool {
	n := strings.ToLower(string(name))
	for _, w := range []string{"auth", "cookie", "token", "key", "secret", "session", "password", "signature", "csrf"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redactQuery is q with every value replaced: a query may carry a token.
func redactQuery(q []byte) []byte {
	if len(q) == 0 {
		return q
	}
	var out []byte
	for i, pair := range bytes.Split(q, []byte{'&'}) {
		if i > 0 {
			out = append(out, '&')
		}
		name, _, ok := bytes.Cut(pair, []byte{'='})
		out = append(out, name...)
		if ok {
			out = append(out, "=redacted"...)
		}
	}
	return out
}

func redactFields(fs []wire.Field) []wire.Field {
	out := make([]wire.Field, len(fs))
	for i, f := range fs {
		out[i] = wire.Field{Name: f.Name, Value: f.Value}
		if secretField(f.Name) {
			out[i].Value = redacted
		}
	}
	return out
}

// redactRequest returns a copy of req, sharing its buffers, with
// credentials and the forwarded values (identities) replaced.
func redactRequest(req *wire.Request) *wire.Request {
	c := *req
	c.Header = redactFields(req.Header)
	c.Query = redactQuery(req.Query)
	c.Values = make([]wire.Field, len(req.Values))
	for i, v := range req.Values {
		c.Values[i] = wire.Field{Name: v.Name, Value: redacted}
	}
	return &c
}

func redactResponse(resp *wire.Response) *wire.Response {
	c := *resp
	c.Header = redactFields(resp.Header)
	return &c
}
