#!/usr/bin/env bash
# The latency tail under paced (open-loop) load, alone and quickly: the bare
# application (fasthttp, the generator's own floor), nginx with proxy_cache
# and Wedge's full chain (auth HS256 + ratelimit + cache), all serving cache
# hits, servers on core 0 and loadgen on core 1 as in report.sh's capacity
# section. Each RATES entry is requests/s; each target runs at each rate for
# DURATION, ROUNDS times, interleaved. EDGE_ENV is put in the edge's
# environment (e.g. EDGE_ENV="GODEBUG=gctrace=1" prints the edge's GC cycles
# per run, to set them beside its tail). RT=1 runs the servers and loadgen
# at SCHED_FIFO priority 1 (root), so that compile jobs sharing the cores
# do not preempt them: on a busy machine the tails are otherwise theirs.
#
#   deploy/bench/paced.sh                                  # RATES="30000 54000" DURATION=5s ROUNDS=1
#   EDGE_ENV="GODEBUG=gctrace=1" RATES=30000 deploy/bench/paced.sh
#
# Ports 18141-18145: it may run beside report.sh, but share the machine's
# cores with no other benchmark (flock /tmp/wedge-bench.lock).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-5s}
rounds=${ROUNDS:-1}
rates=${RATES:-30000 54000}
targets=${TARGETS:-fasthttp nginx wedge}
size=${SIZE:-1024}
. deploy/bench/lib.sh
[ -z "${RT:-}" ] || rt=(chrt -f 1)
secs=$(seconds "$duration")

for c in nginx taskset python3 curl; do command -v "$c" >/dev/null || { echo "paced.sh: needs $c" >&2; exit 1; }; done
build edge benchserve loadgen wedgectl origin

start_app 127.0.0.1:18141
start_nginx error <<NGINX
	upstream app { server 127.0.0.1:18141; keepalive 32; }
	server {
		listen 127.0.0.1:18142;
		location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_cache c; }
	}
NGINX

# An origin service for the one fill; every later request is a hit.
start_origin 127.0.0.1:18144 127.0.0.1:18143 127.0.0.1:18141 origin.log -log-level warn
. deploy/bench/token.sh
cat >"$tmp/edge.yaml" <<YAML
listen: 127.0.0.1:18145
origins:
  app: {addr: 127.0.0.1:18144, key: "@origin.key"}
routes:
$(route hit app bulk 2000000000 1s 2000000000)
YAML
start_edge "$tmp/cc"

bearer="Authorization: Bearer $token"
wait_up http://127.0.0.1:18141/bench -H "Host: hit"
wait_up http://127.0.0.1:18142/bench -H "Host: hit"
wait_up http://127.0.0.1:18145/bench -H "Host: hit" -H "$bearer"
curl -fsS -D - -o /dev/null -H "Host: hit" -H "$bearer" http://127.0.0.1:18145/bench | grep -qi '^cache-status: .*hit' ||
	{ echo "wedge: not a hit" >&2; exit 1; }

echo "# $(date -u +%FT%TZ) loadgen on core 1, servers on core 0, $duration per run, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
	for rate in $rates; do
		for t in $targets; do
			port=18141 h=
			case $t in nginx) port=18142 ;; wedge) port=18145 h=$bearer ;; esac
			logged=$(wc -l <"$tmp/edge.log")
			line=$("${rt[@]}" taskset -c 1 "$tmp/loadgen" -url "http://127.0.0.1:$port/bench" -H "Host: hit" ${h:+-H "$h"} \
				-rate "$rate" -d "$duration" -n "$(requests "$rate" "$secs")")
			extra=
			if [ "$t" = wedge ] && grep -q '^gc ' "$tmp/edge.log"; then
				# gctrace: "gc N @t s P%: a+b+c ms clock, ..., x->y->z MB, ..."
				extra=$(tail -n +"$((logged + 1))" "$tmp/edge.log" | awk '/^gc / {n++; split($5, c, "+"); w += c[1] + c[2] + c[3]; if (c[2] > m) m = c[2]; h = $11}
					END {printf " edge_gcs=%d gc_wall_ms=%.1f gc_mark_max_ms=%.2f heap_mb=%s", n, w, m, h}')
			fi
			printf '%-8s rate=%-6s round=%s %s%s\n' "$t" "$rate" "$r" "$line" "$extra"
		done
	done
done
