// Command benchbreak turns the runs of deploy/bench/breakdown.sh into a
// table of where a request's CPU goes: each plugin's Wasm code, wazero's
// trampolines and call machinery, host functions, edge logic, the envelope
// codec, fasthttp, the Go runtime and the kernel's receive and send paths,
// in microseconds of CPU per request.
//
//	benchbreak -map /tmp/perf-PID.map -plugins auth,ratelimit,cache -out BREAKDOWN.md RUN_DIR...
//
// Each RUN_DIR holds run.tsv (tab-separated: "scenario NAME", "requests N",
// and "proc ROLE PID CPU_US" per process the run spent CPU in, ROLE one of
// edge, origin, app) and, when perf was there, perf.txt: the output of
// `perf script -F comm,pid,ip,sym,dso` over a `perf record -g` of those
// processes during the run.
//
// # Why samples are scaled by each process's CPU time
//
// perf samples at a fixed rate per process but may lose samples under load,
// and its own overhead lands in the sampled processes. A part's share of one
// process's samples, times that process's user+system CPU time over the run
// (/proc/PID/stat), over the requests wrk counted, gives microseconds per
// request that add up to the measured CPU per request.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchbreak", flag.ContinueOnError)
	mapPath := fs.String("map", "", "wazero's perf map of the edge (/tmp/perf-PID.map), to name plugin modules")
	order := fs.String("plugins", "", "plugin names in chain order, for the table's row order")
	out := fs.String("out", "", "write the markdown table here too")
	note := fs.String("note", "", "a line under the title (how the run was made)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("benchbreak: no run directories")
	}
	plugins := map[string]string{}
	if *mapPath != "" {
		f, err := os.Open(*mapPath)
		if err != nil {
			return fmt.Errorf("benchbreak: %w", err)
		}
		plugins, err = pluginNames(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	var runs []*runResult
	for _, dir := range fs.Args() {
		r, err := readRun(dir, plugins)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	var names []string
	if *order != "" {
		names = strings.Split(*order, ",")
	}
	md := table(runs, names, *note)
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("benchbreak: %w", err)
		}
	}
	return nil
}

// A proc is one process of a run and the CPU it spent.
type proc struct {
	role  string
	pid   int
	cpuUS float64
}

// runResult is one scenario's run: its processes and, with perf, samples
// per process and part.
type runResult struct {
	scenario string
	requests float64
	procs    []proc
	sampled  bool
	samples  map[int]map[string]int // pid -> part -> samples
}

func readRun(dir string, plugins map[string]string) (*runResult, error) {
	b, err := os.ReadFile(filepath.Join(dir, "run.tsv"))
	if err != nil {
		return nil, fmt.Errorf("benchbreak: %w", err)
	}
	r := &runResult{samples: map[int]map[string]int{}}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		switch {
		case f[0] == "scenario" && len(f) == 2:
			r.scenario = f[1]
		case f[0] == "requests" && len(f) == 2:
			if r.requests, err = strconv.ParseFloat(f[1], 64); err != nil {
				return nil, fmt.Errorf("benchbreak: %s: requests: %w", dir, err)
			}
		case f[0] == "proc" && len(f) == 4:
			pid, err1 := strconv.Atoi(f[2])
			cpu, err2 := strconv.ParseFloat(f[3], 64)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("benchbreak: %s: proc line %q: %w", dir, line, err)
			}
			r.procs = append(r.procs, proc{role: f[1], pid: pid, cpuUS: cpu})
		}
	}
	if r.scenario == "" || r.requests <= 0 || len(r.procs) == 0 {
		return nil, fmt.Errorf("benchbreak: %s/run.tsv: needs a scenario, a request count above zero and processes", dir)
	}
	f, err := os.Open(filepath.Join(dir, "perf.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("benchbreak: %w", err)
	}
	defer f.Close()
	c := &classifier{roles: map[int]string{}, plugins: plugins}
	for _, p := range r.procs {
		c.roles[p.pid] = p.role
	}
	r.sampled = true
	err = parseScript(bufio.NewReaderSize(f, 1<<20), func(s sample) {
		if _, ok := c.roles[s.pid]; !ok {
			return
		}
		m := r.samples[s.pid]
		if m == nil {
			m = map[string]int{}
			r.samples[s.pid] = m
		}
		m[c.classify(s)]++
	})
	return r, err
}

// perRequest returns microseconds of CPU per request by part: each
// process's CPU split by its samples' shares. A process perf caught no
// sample of counts as other.
func (r *runResult) perRequest() map[string]float64 {
	us := map[string]float64{}
	for _, p := range r.procs {
		total := 0
		for _, n := range r.samples[p.pid] {
			total += n
		}
		if total == 0 {
			us[partOther] += p.cpuUS / r.requests
			continue
		}
		for part, n := range r.samples[p.pid] {
			us[part] += p.cpuUS * float64(n) / float64(total) / r.requests
		}
	}
	return us
}

// table renders the breakdown as markdown: parts by scenario when perf
// sampled the runs, and CPU per request by process in every case.
func table(runs []*runResult, order []string, note string) string {
	var b strings.Builder
	b.WriteString("# Where a request's CPU goes\n\n")
	if note != "" {
		b.WriteString(note + "\n\n")
	}
	head := func(first string) {
		b.WriteString("| " + first + " |")
		for _, r := range runs {
			fmt.Fprintf(&b, " us per %s |", r.scenario)
		}
		b.WriteString("\n| --- |")
		for range runs {
			b.WriteString(" ---: |")
		}
		b.WriteString("\n")
	}
	row := func(name string, vals []float64) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, v := range vals {
			fmt.Fprintf(&b, " %.1f |", v)
		}
		b.WriteString("\n")
	}

	var sampled []*runResult
	for _, r := range runs {
		if r.sampled {
			sampled = append(sampled, r)
		}
	}
	if len(sampled) == len(runs) {
		per := make([]map[string]float64, len(runs))
		for i, r := range runs {
			per[i] = r.perRequest()
		}
		head("part")
		plugins := pluginOrder(per, order)
		sums := make([]float64, len(runs))
		for _, name := range plugins {
			vals := make([]float64, len(runs))
			gc := make([]float64, len(runs))
			for i := range runs {
				gc[i] = per[i][guestGCPart(name)]
				vals[i] = per[i][pluginPart(name)] + gc[i]
				sums[i] += vals[i]
			}
			row("plugin "+name+" (Wasm code)", vals)
			row("&nbsp;&nbsp;of which guest allocation and GC", gc)
		}
		if len(plugins) > 1 {
			row("**all plugin Wasm code**", sums)
		}
		for _, part := range fixedParts {
			vals := make([]float64, len(runs))
			any := false
			for i := range runs {
				vals[i] = per[i][part]
				any = any || vals[i] >= 0.05
			}
			if any {
				row(part, vals)
			}
		}
		totals := make([]float64, len(runs))
		for i, r := range runs {
			for _, p := range r.procs {
				totals[i] += p.cpuUS / r.requests
			}
		}
		row("**total CPU per request**", totals)
		b.WriteString("\n")
	} else {
		b.WriteString("perf was not available, so only CPU per request by process is shown.\n\n")
	}

	head("process")
	var roles []string
	for _, r := range runs {
		for _, p := range r.procs {
			if !slices.Contains(roles, p.role) {
				roles = append(roles, p.role)
			}
		}
	}
	for _, role := range roles {
		fmt.Fprintf(&b, "| %s |", role)
		for _, r := range runs {
			v, measured := 0.0, false
			for _, p := range r.procs {
				if p.role == role {
					v += p.cpuUS / r.requests
					measured = true
				}
			}
			if !measured {
				b.WriteString(" - |") // the run did not measure this process
				continue
			}
			fmt.Fprintf(&b, " %.1f |", v)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| requests measured |")
	for _, r := range runs {
		fmt.Fprintf(&b, " %.0f |", r.requests)
	}
	b.WriteString("\n")
	return b.String()
}

// pluginOrder lists the plugins with samples: those named in order first,
// then the rest by name.
func pluginOrder(per []map[string]float64, order []string) []string {
	seen := map[string]bool{}
	for _, m := range per {
		for part := range m {
			if name, ok := strings.CutPrefix(part, pluginPrefix); ok {
				seen[name] = true
			}
			if name, ok := strings.CutPrefix(part, guestGCPrefix); ok {
				seen[name] = true
			}
		}
	}
	var names []string
	for _, n := range order {
		if seen[n] {
			names = append(names, n)
			delete(seen, n)
		}
	}
	var rest []string
	for n := range seen {
		rest = append(rest, n)
	}
	slices.Sort(rest)
	return append(names, rest...)
}
