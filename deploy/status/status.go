// Package status serves the rollout controller's web status page: the
// regions and their POPs, the plugin versions they run with their health
// (each request's error and latency on the versions that produced it, see
// manifest.Health) and the canaries marked with their share and split, the
// rollouts with their wave progress, the bake time each wave of a running
// one has left and gate values, and the tail of the audit stream. GET / is
// one plain HTML page, GET /api/summary the same data as JSON
// (rollout.Summary).
//
// # Why
//
// The page is rendered on the server with html/template and needs no
// JavaScript and no build step: an operator in an incident opens it with
// anything, and every value that came from the control plane (region
// names, audit reasons: anything a POP or an operator wrote) is escaped by
// the template, never by hand. The Content-Security-Policy allows nothing
// but the page's one inline style, by its hash, so even a value that
// slipped through escaping could not run a script or load anything.
//
// Every request reads the control plane afresh (rollout.Overview): the
// page has no cache to go stale, and a control plane that cannot be read
// gives a 503 that says why rather than an old picture.
package status

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/talowa/wedge/deploy/controlplane"
	"github.com/talowa/wedge/deploy/manifest"
	"github.com/talowa/wedge/deploy/rollout"
)

//go:embed page.html.tmpl
var pageSource string

//go:embed page.css
var pageCSS string

// readTimeout bounds one read of the control plane, so a hung JetStream
// answers the operator with a 503 instead of a spinner.
const readTimeout = 5 * time.Second

// refreshSeconds is how often the page reloads itself: a wave's progress
// and its gate values change on every controller tick.
const refreshSeconds = 2

var (
	page = template.Must(template.New("page").Funcs(template.FuncMap{
		"pct":   func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "%" },
		"dur":   formatDuration,
		"when":  formatTime,
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"rows":  func(n int) int { return max(n, 1) },
		"share": func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" },
		"wave":  formatWave,
	}).Parse(pageSource))

	// csp allows the page's own inline style, by hash, and nothing else:
	// no script, no image, no frame, no form, no base.
	csp = "default-src 'none'; style-src '" + styleHash(pageCSS) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func styleHash(css string) string {
	sum := sha256.Sum256([]byte(css))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// formatTime shows a missing time (an audit entry written without one)
// as a dash rather than as year 1.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// formatWave is one wave of an active rollout with what its bake has
// left: "eu-west:100% baking, 1m12s of 2m0s bake left". Bake times are
// shown to the second: the page reloads every refreshSeconds.
func formatWave(w rollout.WaveState, bake time.Duration) string {
	s := w.Wave.String() + " " + w.State
	left := w.BakeLeft.Round(time.Second).String()
	switch w.State {
	case rollout.PhaseBaking:
		if w.BakeLeft <= 0 {
			return s + ", bake over"
		}
		return s + ", " + left + " of " + bake.String() + " bake left"
	case rollout.WaveWaiting, rollout.PhasePending, rollout.PhaseApplying:
		return s + ", bake " + bake.String() + " to come"
	}
	return s
}

// view is what the page template renders.
type view struct {
	*rollout.Summary
	CSS     template.CSS
	Refresh int
	Audit   []manifest.Audit // newest first, as one reads a log tail
	Err     string           // set on the 503 page
}

type handler struct {
	s   *controlplane.Stores
	log *slog.Logger
}

// Handler serves the status page (GET /) and its data as JSON (GET
// /api/summary) from the control plane's stores. log may be nil.
func Handler(s *controlplane.Stores, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{s: s, log: log}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")

	if r.URL.Path != "/" && r.URL.Path != "/api/summary" {
		http.Error(w, "status: no page "+strconv.Quote(r.URL.Path)+": try / or /api/summary", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "status: method "+r.Method+" not allowed: the status page is read-only", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	sum, err := rollout.Overview(ctx, h.s)
	if err != nil {
		err = fmt.Errorf("status: read the control plane: %w", err)
		h.log.Warn("status page", "path", r.URL.Path, "err", err)
	}
	if r.URL.Path == "/api/summary" {
		h.serveJSON(w, sum, err)
		return
	}
	h.serveHTML(w, sum, err)
}

func (h *handler) serveJSON(w http.ResponseWriter, sum *rollout.Summary, err error) {
	code := http.StatusOK
	var body []byte
	if err != nil {
		code = http.StatusServiceUnavailable
		body, _ = json.Marshal(map[string]string{"error": err.Error()})
	} else if body, err = json.Marshal(sum); err != nil {
		code = http.StatusInternalServerError
		body, _ = json.Marshal(map[string]string{"error": "status: encode summary: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

func (h *handler) serveHTML(w http.ResponseWriter, sum *rollout.Summary, err error) {
	v := view{CSS: template.CSS(pageCSS), Refresh: refreshSeconds}
	code := http.StatusOK
	if err != nil {
		code = http.StatusServiceUnavailable
		v.Err = err.Error()
	} else {
		v.Summary = sum
		v.Audit = slices.Clone(sum.Audit)
		slices.Reverse(v.Audit)
	}
	// Render to a buffer first so a template failure becomes a clean 500,
	// not half a page with a 200 status.
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		h.log.Error("status page: render", "err", err)
		http.Error(w, "status: render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}
