package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportFromRawFiles renders a report from a small raw run and checks
// the figures the script's readers rely on: medians, spreads, ratios
// against nginx, the verdict, and a capacity model computed from them.
func TestReportFromRawFiles(t *testing.T) {
	raw, out := t.TempDir(), t.TempDir()
	files := map[string]string{
		"machine.tsv":   "date\t2026-01-01T00:00:00Z\ncores\t2\nmemory\t4.0 GiB\nopen-file limit\t20000\n",
		"scenarios.tsv": "hit\tCache hits\tnote\nmiss\tMisses\tnote\n",
		"targets.tsv":   "hit\twedge\tfull chain\nhit\tnginx\tproxy_cache\nmiss\twedge\tfull chain\nmiss\tnginx\tproxy_pass\n",
		// scenario target round rps p50 p90 p99 requests non2xx errors cpu
		"wrk.tsv": "hit\twedge\t1\t30000\t100\t200\t400\t300000\t0\t0\t30\n" +
			"hit\tnginx\t1\t20000\t150\t250\t500\t200000\t0\t0\t40\n" +
			"hit\twedge\t2\t34000\t110\t210\t420\t340000\t0\t0\t29\n" +
			"hit\tnginx\t2\t20000\t150\t250\t500\t200000\t0\t0\t40\n" +
			"hit\twedge\t3\t32000\t120\t220\t440\t320000\t0\t0\t31\n" +
			"hit\tnginx\t3\t20000\t150\t250\t500\t200000\t0\t0\t40\n" +
			"miss\twedge\t1\t10000\t300\t400\t900\t100000\t0\t0\t90\n" +
			"miss\tnginx\t1\t12500\t200\t300\t800\t125000\t0\t0\t70\n",
		"paced.tsv": "wedge\t50\t1\ttarget_rate=16000 achieved=15990 p50_us=90 p90_us=150 p99_us=2000 p999_us=5000 errors=0 wrong_status=0\n" +
			"wedge\t90\t1\ttarget_rate=28800 achieved=20000 p50_us=90000 p90_us=150000 p99_us=300000 p999_us=500000 errors=0 wrong_status=0\n",
		"hold.txt": "hold=19000 held=19000 hold_failed=0 open_ms=900 rss_base_kib=102400 rss_held_kib=204800 kib_per_conn=5.39 target_rate=16000 achieved=16000 p99_us=3000 held_sampled=190 held_dead=0\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(raw, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := run([]string{"-raw", raw, "-out", out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| wedge | full chain | 32000 (30000-34000) | 1.60x | 110 us (100 us-120 us) |", // median, spread, ratio
		"against nginx: meets the bar",
		"| wedge | 90% | 28800 | 20000 **(behind schedule: saturated)** |",
		"held **19000** idle keep-alive connections",
		"| node max, blended | 22222 req/s |", // 1 / (0.8/32000 + 0.2/10000)
		"| p99 at 50% of max, one node | 2.00 ms |",
		"connections are the bound",
		"which fits that budget",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("REPORT.md lacks %q\n%s", want, md)
		}
	}
	gp, err := os.ReadFile(filepath.Join(raw, "plots.gp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, png := range []string{"latency-hit.png", "latency-miss.png", "paced.png"} {
		if !strings.Contains(string(gp), png) {
			t.Errorf("plots.gp does not draw %s", png)
		}
	}
}

func TestMissingRunIsAnError(t *testing.T) {
	if err := run([]string{"-raw", t.TempDir(), "-out", t.TempDir()}); err == nil {
		t.Fatal("a raw directory without wrk.tsv gave a report")
	}
}
