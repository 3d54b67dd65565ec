package edge

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/talowa/wedge/wasm/abi/httpcache"
)

// AdminHandler serves the admin API:
//
//	GET  /health          liveness: 200 while the process serves
//	GET  /ready           readiness: 200 unless an origin's circuit breaker
//	                      is open (the origin cannot serve: see
//	                      originclient), the node is shedding load (and
//	                      overload.ready_hold after), or it is shutting
//	                      down, else 503 with the reasons
//	GET  /metrics         Prometheus
//	POST /purge?tag=T     purge cached responses tagged T (token required)
//	POST /purge?url=U     purge the cached responses for URL U, every
//	                      variant (token required)
//	POST /purge?key=K     purge one raw cache key (token required)
//	POST /reload          reload the config file (token required)
//	GET  /debug/pprof/    Go profiles (token required)
//
// reload is what POST /reload runs; nil answers 501.
func (n *Node) AdminHandler(reload func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if problems := n.notReady(); len(problems) > 0 {
			http.Error(w, "not ready: "+strings.Join(problems, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /purge", n.authorized(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Has("tag"):
			fmt.Fprintf(w, "purged %d\n", n.cache.PurgeTag([]byte(q.Get("tag"))))
		case q.Has("url"):
			key, err := urlKey(q.Get("url"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "purged %d\n", n.cache.Purge(key))
		case q.Has("key"):
			fmt.Fprintf(w, "purged %d\n", n.cache.Purge([]byte(q.Get("key"))))
		default:
			http.Error(w, "want ?tag=T, ?url=U or ?key=K", http.StatusBadRequest)
		}
	}))
	// Profiles show memory contents, so they need the token too.
	mux.HandleFunc("GET /debug/pprof/", n.authorized(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", n.authorized(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/trace", n.authorized(pprof.Trace))
	mux.HandleFunc("GET /debug/pprof/cmdline", n.authorized(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/symbol", n.authorized(pprof.Symbol))
	mux.HandleFunc("POST /reload", n.authorized(func(w http.ResponseWriter, _ *http.Request) {
		if reload == nil {
			http.Error(w, "this node has no config file to reload", http.StatusNotImplemented)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "reload failed, still serving the previous config: "+err.Error(), http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprintln(w, "reloaded")
	}))
	return mux
}

// authorized requires the admin token as a bearer token. Without a token
// configured, the calls that change state are refused outright rather than
// left open.
func (n *Node) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := n.gen.Load().cfg.Admin.Token
		// The scheme in any case, then one or more spaces (RFC 9110
		// §11.1, RFC 6750 §2.1).
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		got = strings.TrimLeft(got, " ")
		if token == "" || !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wedge-admin"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (n *Node) notReady() []string {
	var problems []string
	g := n.gen.Load()
	for name, o := range g.origins {
		if st := o.client.State(); st == "open" {
			problems = append(problems, "origin "+name+": circuit open ("+o.client.TripReason()+")")
		}
	}
	// Every plugin is loaded once New or Reload returns, so what remains
	// is draining: a node shutting down stops taking traffic.
	if g.retired.Load() {
		problems = append(problems, "shutting down")
	}
	if why, ok := n.load.shedding(); ok { // overload.go
		problems = append(problems, why)
	}
	return problems
}

// urlKey is the cache plugin's primary key for an absolute URL
// (httpcache.AppendKey, the format the plugin and the host build keys
// with). Purging it makes every Vary variant of the URL unreachable too.
// The path and query are taken as written, as a request's are keyed:
// url.Parse's escaping of what it would not send raw (/a|b made /a%7Cb)
// kept such a URL from ever matching what was stored.
func urlKey(raw string) ([]byte, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	scheme = strings.ToLower(scheme)
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	host, target := rest[:end], rest[end:]
	path, query, _ := strings.Cut(target, "?")
	if !ok || (scheme != "http" && scheme != "https") || host == "" || strings.ContainsAny(host, "@ ") {
		return nil, fmt.Errorf("url %q: want an absolute http(s) URL", raw)
	}
	if path == "" {
		path = "/" // RFC 9110 §4.2.3: http://x and http://x/ are one
	}
	return httpcache.AppendKey(nil, scheme, host, path, query), nil
}
