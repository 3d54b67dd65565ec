// Command benchreport turns the raw measurements deploy/bench/report.sh
// collects into deploy/bench/report/REPORT.md and the gnuplot data and
// script for its plots. It measures nothing itself, so a report can be
// regenerated from saved raw files:
//
//	benchreport -raw deploy/bench/report/raw -out deploy/bench/report
//
// The raw directory holds tab-separated files: machine.tsv (key, value),
// scenarios.tsv (key, title, note), targets.tsv (scenario, target, what it
// does), wrk.tsv (scenario, target, round, req/s, p50, p90, p99 in us,
// requests, non-2xx, socket errors, server CPU us per request), paced.tsv
// (target, level %, round, then the loadgen key=value pairs) and hold.txt
// (the loadgen line of the idle-connection run).
//
// The capacity model's assumptions are flags, so the README's figures can be
// recomputed with other ones; every per-node figure comes from the raw files.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// model holds the capacity model's assumptions.
type model struct {
	users, conns, reqPerUser, peak, hitRatio, util, regionShare, memShare, sloMS, rttMS float64
	regions                                                                             int
}

func run(args []string) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	raw := fs.String("raw", "deploy/bench/report/raw", "the raw measurements")
	out := fs.String("out", "deploy/bench/report", "where REPORT.md goes")
	var m model
	fs.Float64Var(&m.users, "users", 10e6, "daily users")
	fs.Float64Var(&m.conns, "conns", 500_000, "concurrent client connections at peak")
	fs.Float64Var(&m.reqPerUser, "req-per-user", 300, "requests per user per day")
	fs.Float64Var(&m.peak, "peak", 3, "peak-hour rate over the daily average")
	fs.Float64Var(&m.hitRatio, "hit-ratio", 0.8, "share of requests answered by the edge cache")
	fs.Float64Var(&m.util, "util", 0.5, "share of a node's measured maximum to plan for (the 50% level is measured below)")
	fs.IntVar(&m.regions, "regions", 3, "regions, for latency to users")
	fs.Float64Var(&m.regionShare, "region-share", 0.5, "the busiest region's share of users; every region is sized like it")
	fs.Float64Var(&m.memShare, "mem-share", 0.5, "share of a node's memory idle connections may take")
	fs.Float64Var(&m.sloMS, "slo-ms", 200, "the p95 latency objective, end to end, in ms")
	fs.Float64Var(&m.rttMS, "rtt-ms", 60, "client to nearest region round trip at p95, in ms")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := load(*raw)
	if err != nil {
		return err
	}
	var md strings.Builder
	r.write(&md, m)
	if err := os.WriteFile(filepath.Join(*out, "REPORT.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("benchreport: %w", err)
	}
	return r.plots(*raw, *out)
}

// sample is one wrk run.
type sample struct {
	rps, p50, p90, p99, cpu float64
	requests, non2xx, errs  int
}

type report struct {
	machine   [][2]string
	scenarios [][3]string
	targets   [][3]string
	wrk       map[[2]string][]sample
	paced     map[[2]string][]map[string]float64 // target, level
	hold      map[string]float64
}

func load(dir string) (*report, error) {
	r := &report{wrk: map[[2]string][]sample{}, paced: map[[2]string][]map[string]float64{}}
	rows := func(name string, min int, each func([]string) error) error {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && name != "wrk.tsv" {
				return nil // a part of the run that was skipped
			}
			return fmt.Errorf("benchreport: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if sc.Text() == "" {
				continue
			}
			cols := strings.Split(sc.Text(), "\t")
			if len(cols) < min {
				return fmt.Errorf("benchreport: %s: want %d columns: %q", name, min, sc.Text())
			}
			if err := each(cols); err != nil {
				return fmt.Errorf("benchreport: %s: %w", name, err)
			}
		}
		return sc.Err()
	}
	num := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	if err := rows("machine.tsv", 2, func(c []string) error { r.machine = append(r.machine, [2]string{c[0], c[1]}); return nil }); err != nil {
		return nil, err
	}
	if err := rows("scenarios.tsv", 3, func(c []string) error { r.scenarios = append(r.scenarios, [3]string(c[:3])); return nil }); err != nil {
		return nil, err
	}
	if err := rows("targets.tsv", 3, func(c []string) error { r.targets = append(r.targets, [3]string(c[:3])); return nil }); err != nil {
		return nil, err
	}
	if err := rows("wrk.tsv", 11, func(c []string) error {
		k := [2]string{c[0], c[1]}
		r.wrk[k] = append(r.wrk[k], sample{rps: num(c[3]), p50: num(c[4]), p90: num(c[5]), p99: num(c[6]),
			requests: int(num(c[7])), non2xx: int(num(c[8])), errs: int(num(c[9])), cpu: num(c[10])})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := rows("paced.tsv", 4, func(c []string) error {
		k := [2]string{c[0], c[1]}
		r.paced[k] = append(r.paced[k], kv(strings.Join(c[3:], " ")))
		return nil
	}); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "hold.txt")); err == nil {
		r.hold = kv(string(b))
	}
	return r, nil
}

// kv parses loadgen's key=value line.
func kv(s string) map[string]float64 {
	m := map[string]float64{}
	for f := range strings.FieldsSeq(s) {
		k, v, ok := strings.Cut(f, "=")
		if ok {
			m[k], _ = strconv.ParseFloat(v, 64)
		}
	}
	return m
}

// stat is a median and the spread over the rounds.
type stat struct{ med, lo, hi float64 }

func over[T any](xs []T, f func(T) float64) stat {
	if len(xs) == 0 {
		return stat{math.NaN(), math.NaN(), math.NaN()}
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return stat{med, v[0], v[len(v)-1]}
}

func (r *report) machineValue(key string) string {
	for _, kv := range r.machine {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

func (r *report) targetsOf(scenario string) [][3]string {
	var out [][3]string
	for _, t := range r.targets {
		if t[0] == scenario && len(r.wrk[[2]string{t[0], t[1]}]) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func ms(us float64) string {
	switch {
	case math.IsNaN(us):
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0f us", us)
	default:
		return fmt.Sprintf("%.2f ms", us/1000)
	}
}

func spread(s stat, unit func(float64) string) string {
	if s.lo == s.hi {
		return unit(s.med)
	}
	return fmt.Sprintf("%s (%s-%s)", unit(s.med), unit(s.lo), unit(s.hi))
}

func count(v float64) string { return fmt.Sprintf("%.0f", v) }

func (r *report) write(w io.Writer, m model) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# Wedge edge benchmark report\n\n")
	p("Generated by `deploy/bench/report.sh` on %s. Every figure below comes from that one run; ", r.machineValue("date"))
	p("on a shared 2-core machine the absolute numbers drift between runs, so read the ratios against nginx measured in the same run. ")
	p("Each cell is the median over the rounds, with the spread (min-max) in brackets as the noise.\n\n")

	p("## Machine\n\n| | |\n| --- | --- |\n")
	for _, kv := range r.machine {
		if kv[0] != "date" {
			p("| %s | %s |\n", kv[0], kv[1])
		}
	}

	for _, sc := range r.scenarios {
		key := sc[0]
		ts := r.targetsOf(key)
		if len(ts) == 0 {
			continue
		}
		p("\n## %s\n\n%s\n\n", sc[1], sc[2])
		p("| target | what it does | req/s | vs nginx | p50 | p90 | p99 | server CPU / req | non-2xx | socket errors |\n")
		p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		nginx := over(r.wrk[[2]string{key, "nginx"}], func(s sample) float64 { return s.rps })
		for _, t := range ts {
			ss := r.wrk[[2]string{key, t[1]}]
			rps := over(ss, func(s sample) float64 { return s.rps })
			ratio := "-"
			if !math.IsNaN(nginx.med) && nginx.med > 0 {
				ratio = fmt.Sprintf("%.2fx", rps.med/nginx.med)
			}
			var non2xx, errs, reqs int
			for _, s := range ss {
				non2xx, errs, reqs = non2xx+s.non2xx, errs+s.errs, reqs+s.requests
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %d of %d | %d |\n", t[1], t[2], spread(rps, count), ratio,
				spread(over(ss, func(s sample) float64 { return s.p50 }), ms),
				spread(over(ss, func(s sample) float64 { return s.p90 }), ms),
				spread(over(ss, func(s sample) float64 { return s.p99 }), ms),
				spread(over(ss, func(s sample) float64 { return s.cpu }), func(v float64) string { return fmt.Sprintf("%.1f us", v) }),
				non2xx, reqs, errs)
		}
		p("\n![%s latency](latency-%s.png)\n", sc[1], key)
	}
	r.verdict(w)
	r.capacity(w, m)
}

// verdict says whether the bar is met: the full chain's cache hits
// at least as fast as nginx's and Varnish's, with p99 no worse.
func (r *report) verdict(w io.Writer) {
	get := func(t string) (stat, stat) {
		ss := r.wrk[[2]string{"hit", t}]
		return over(ss, func(s sample) float64 { return s.rps }), over(ss, func(s sample) float64 { return s.p99 })
	}
	wr, wp := get("wedge")
	if math.IsNaN(wr.med) {
		return
	}
	fmt.Fprintf(w, "\n## Verdict: cache hits through the full chain\n\n")
	for _, peer := range []string{"nginx", "varnish"} {
		pr, pp := get(peer)
		if math.IsNaN(pr.med) {
			continue
		}
		rpsOK, p99OK := wr.med >= pr.med, wp.med <= pp.med
		verdict := "meets the bar"
		if !rpsOK || !p99OK {
			verdict = "falls short"
		}
		fmt.Fprintf(w, "- against %s: %s. Requests/s %.0f vs %.0f (%+.1f%%), p99 %s vs %s (%+.1f%%).", peer, verdict,
			wr.med, pr.med, 100*(wr.med/pr.med-1), ms(wp.med), ms(pp.med), 100*(wp.med/pp.med-1))
		// Where the spreads overlap, this run cannot tell the two apart.
		if wr.lo <= pr.hi && pr.lo <= wr.hi {
			fmt.Fprintf(w, " The req/s spreads overlap: the difference is within this run's noise.")
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nThe full chain does more per hit than either peer: an HS256 JWT verified by the host, a GCRA rate-limit take, and an RFC 9111 cache lookup, each behind a Wasm plugin call; nginx and Varnish serve the hit without authentication or rate limiting. Compare the server CPU per request above for where the time goes.\n")
}

func (r *report) capacity(w io.Writer, m model) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\n## Capacity of one node\n\n")
	if h := r.hold; h != nil {
		p("**Idle connections.** The edge (full chain) held **%.0f** idle keep-alive connections (%.0f asked, %.0f failed to open, opened in %.0f ms), each having answered one request; ",
			h["held"], h["hold"], h["hold_failed"], h["open_ms"])
		p("its resident memory went from %.1f MiB to %.1f MiB: **%.1f KiB per connection**. ", h["rss_base_kib"]/1024, h["rss_held_kib"]/1024, h["kib_per_conn"])
		p("Meanwhile a paced load of %.0f req/s got %.0f req/s at p99 %s; %.0f of %.0f sampled held connections did not answer afterwards. ",
			h["target_rate"], h["achieved"], ms(h["p99_us"]), h["held_dead"], h["held_sampled"])
		p("The count is bounded by this machine's open-file limit (%s, hard), not by the edge: past it, memory is the bound.\n\n", r.machineValue("open-file limit"))
	}
	levels := []string{"50", "90"}
	var any bool
	for _, t := range []string{"wedge", "nginx"} {
		for _, l := range levels {
			any = any || len(r.paced[[2]string{t, l}]) > 0
		}
	}
	if any {
		p("**Under paced load.** `deploy/cmd/loadgen` sends cache hits on a fixed schedule (open loop: latency counts from when a request was due, so queueing shows, and failed requests count with their time to failure) at 50%% and 90%% of the full chain's measured maximum (its median cache-hit req/s above); nginx gets the same rates for reference.\n\n")
		p("| target | level | target req/s | achieved req/s | p50 | p90 | p99 | p99.9 | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, t := range []string{"wedge", "nginx"} {
			for _, l := range levels {
				rs := r.paced[[2]string{t, l}]
				if len(rs) == 0 {
					continue
				}
				f := func(k string) stat { return over(rs, func(x map[string]float64) float64 { return x[k] }) }
				errs := 0.0
				for _, x := range rs {
					errs += x["errors"] + x["wrong_status"]
				}
				// An open-loop generator falls behind only when the server does.
				behind := ""
				if f("achieved").med < 0.97*f("target_rate").med {
					behind = " **(behind schedule: saturated)**"
				}
				p("| %s | %s%% | %s | %s%s | %s | %s | %s | %s | %.0f |\n", t, l, count(f("target_rate").med), spread(f("achieved"), count), behind,
					spread(f("p50_us"), ms), spread(f("p90_us"), ms), spread(f("p99_us"), ms), spread(f("p999_us"), ms), errs)
			}
		}
		p("\n![paced latency](paced.png)\n")
	}
	r.model(w, m)
}

// model computes nodes and regions from the per-node measurements.
func (r *report) model(w io.Writer, m model) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	rpsOf := func(sc string) float64 {
		return over(r.wrk[[2]string{sc, "wedge"}], func(s sample) float64 { return s.rps }).med
	}
	hit, miss := rpsOf("hit"), rpsOf("miss")
	p("\n## Capacity model\n\n")
	if math.IsNaN(hit) || math.IsNaN(miss) || r.hold == nil {
		p("Not computed: this run lacks the cache-hit, miss or idle-connection measurements it needs.\n")
		return
	}
	memKiB, _ := strconv.ParseFloat(strings.Fields(r.machineValue("memory") + " 0")[0], 64)
	memKiB *= 1024 * 1024 // the machine line is in GiB
	perConn := max(r.hold["kib_per_conn"], 1)
	heldConns := r.hold["held"]
	memConns := memKiB * m.memShare / perConn
	// The latency check uses the measured level nearest the planned share.
	level := "50"
	if m.util > 0.7 {
		level = "90"
	}
	p99 := over(r.paced[[2]string{"wedge", level}], func(x map[string]float64) float64 { return x["p99_us"] }).med

	avg := m.users * m.reqPerUser / 86400
	peak := avg * m.peak
	// A miss costs the edge more than a hit; blend by the hit ratio.
	blended := 1 / (m.hitRatio/hit + (1-m.hitRatio)/miss)
	nodeRPS := blended * m.util
	regionRPS := peak * m.regionShare
	regionConns := m.conns * m.regionShare
	byRPS := math.Ceil(regionRPS / nodeRPS)
	byConnsMeasured := math.Ceil(regionConns / heldConns)
	byConnsMem := math.Ceil(regionConns / memConns)
	perRegion := max(byRPS, byConnsMeasured) + 1
	perRegionMem := max(byRPS, byConnsMem) + 1

	p("Computed by `deploy/cmd/benchreport` from this run's per-node figures (re-run it with other `-flags` to change an assumption). A node is this machine: %s cores, %s.\n\n", r.machineValue("cores"), r.machineValue("memory"))
	p("| assumption | value | flag |\n| --- | --- | --- |\n")
	p("| daily users | %.0f | `-users` |\n| requests per user per day | %.0f | `-req-per-user` |\n| peak hour over daily average | %.1fx | `-peak` |\n", m.users, m.reqPerUser, m.peak)
	p("| concurrent connections at peak | %.0f | `-conns` |\n| cache hit ratio | %.0f%% | `-hit-ratio` |\n| share of a node's max planned for | %.0f%% | `-util` |\n", m.conns, 100*m.hitRatio, 100*m.util)
	p("| regions (for latency to users) | %d | `-regions` |\n| busiest region's share of users (every region sized like it, so one region's users can fail over) | %.0f%% | `-region-share` |\n", m.regions, 100*m.regionShare)
	p("| memory idle connections may take | %.0f%% | `-mem-share` |\n| p95 client to region round trip | %.0f ms | `-rtt-ms` |\n| p95 objective, end to end | %.0f ms | `-slo-ms` |\n\n", 100*m.memShare, m.rttMS, m.sloMS)
	p("| figure | value | from |\n| --- | --- | --- |\n")
	p("| average load | %.0f req/s | users x requests / 86,400 |\n| peak load | %.0f req/s | x peak |\n", avg, peak)
	p("| node max, cache hits (full chain) | %.0f req/s | measured, median |\n| node max, misses (full chain) | %.0f req/s | measured, median |\n", hit, miss)
	p("| node max, blended | %.0f req/s | 1 / (h/hit + (1-h)/miss) |\n| node planned | %.0f req/s | x util |\n", blended, nodeRPS)
	p("| p99 at %s%% of max, one node | %s | measured (loadgen) |\n", level, ms(p99))
	p("| idle connections per node, as measured | %.0f | bounded by the open-file limit %s |\n", heldConns, r.machineValue("open-file limit"))
	p("| idle connections per node, by memory | %.0f | memory x mem-share / %.1f KiB |\n", memConns, perConn)
	p("| busiest region: peak load / connections | %.0f req/s / %.0f | x region-share |\n", regionRPS, regionConns)
	p("| nodes per region for requests | %.0f | region load / node planned |\n", byRPS)
	p("| nodes per region for connections | %.0f (measured limit) / %.0f (open-file limit raised) | region connections / per node |\n\n", byConnsMeasured, byConnsMem)
	bound := "requests"
	if byConnsMeasured > byRPS {
		bound = "connections"
	}
	p("**Result: %d regions x %.0f nodes = %.0f nodes** with this machine's open-file limit (%s are the bound), ", m.regions, perRegion, float64(m.regions)*perRegion, bound)
	p("or **%d x %.0f = %.0f nodes** with the limit raised so memory bounds connections. Each region gets one node more than it needs (N+1) so a node can fail or be upgraded at peak.\n\n", m.regions, perRegionMem, float64(m.regions)*perRegionMem)
	budget := m.sloMS - m.rttMS
	verdict := "fits"
	if math.IsNaN(p99) || p99/1000 > budget {
		verdict = "does NOT fit"
	}
	p("**Latency.** With a %.0f ms p95 round trip to the nearest region, the edge has %.0f ms of the %.0f ms objective; one node's p99 at %s%% of its maximum (the planned share) is %s, which %s that budget (p95 is at most p99). A miss adds the origin's round trip from the region, which this single-machine run does not measure: keep origins within %.0f ms of every region, or cache more.\n",
		m.rttMS, budget, m.sloMS, level, ms(p99), verdict, budget/2)
}

// plots writes the gnuplot data and script; report.sh runs gnuplot.
func (r *report) plots(raw, out string) error {
	var gp strings.Builder
	fmt.Fprintf(&gp, "set terminal pngcairo size 900,480 font 'sans,10'\nset style data histogram\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\nset ylabel 'latency (ms)'\nset grid ytics\nset key top left\nset logscale y\n")
	for _, sc := range r.scenarios {
		ts := r.targetsOf(sc[0])
		if len(ts) == 0 {
			continue
		}
		var dat strings.Builder
		fmt.Fprintf(&dat, "target p50 p90 p99\n")
		for _, t := range ts {
			ss := r.wrk[[2]string{sc[0], t[1]}]
			f := func(g func(sample) float64) float64 { return over(ss, g).med / 1000 }
			fmt.Fprintf(&dat, "%s %.4f %.4f %.4f\n", t[1], f(func(s sample) float64 { return s.p50 }), f(func(s sample) float64 { return s.p90 }), f(func(s sample) float64 { return s.p99 }))
		}
		name := "latency-" + sc[0]
		if err := os.WriteFile(filepath.Join(raw, name+".dat"), []byte(dat.String()), 0o644); err != nil {
			return fmt.Errorf("benchreport: %w", err)
		}
		fmt.Fprintf(&gp, "set output '%s'\nset title '%s: wrk latency percentiles (median of rounds)'\n", filepath.Join(out, name+".png"), strings.ReplaceAll(sc[1], "'", ""))
		fmt.Fprintf(&gp, "plot '%s' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)\n", filepath.Join(raw, name+".dat"))
	}
	var dat strings.Builder
	fmt.Fprintf(&dat, "run p50 p90 p99 p99.9\n")
	rows := 0
	for _, t := range []string{"wedge", "nginx"} {
		for _, l := range []string{"50", "90"} {
			rs := r.paced[[2]string{t, l}]
			if len(rs) == 0 {
				continue
			}
			f := func(k string) float64 { return over(rs, func(x map[string]float64) float64 { return x[k] }).med / 1000 }
			fmt.Fprintf(&dat, "%s@%s%% %.4f %.4f %.4f %.4f\n", t, l, f("p50_us"), f("p90_us"), f("p99_us"), f("p999_us"))
			rows++
		}
	}
	if rows > 0 {
		if err := os.WriteFile(filepath.Join(raw, "paced.dat"), []byte(dat.String()), 0o644); err != nil {
			return fmt.Errorf("benchreport: %w", err)
		}
		fmt.Fprintf(&gp, "set output '%s'\nset title 'Paced cache hits (open loop) at 50%% and 90%% of the full chain max'\n", filepath.Join(out, "paced.png"))
		fmt.Fprintf(&gp, "plot '%s' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4), '' using 5 title columnheader(5)\n", filepath.Join(raw, "paced.dat"))
	}
	if err := os.WriteFile(filepath.Join(raw, "plots.gp"), []byte(gp.String()), 0o644); err != nil {
		return fmt.Errorf("benchreport: %w", err)
	}
	return nil
}
