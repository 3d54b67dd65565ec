#!/usr/bin/env bash
# Where a request's CPU goes, in one command: runs wrk against a full-chain
# cache hit (auth HS256 JWT + ratelimit take + cache hit) and then a miss
# (the same chain, then edge -> origin service -> application), samples the
# servers with perf meanwhile, and prints a markdown table of the parts
# (each plugin's Wasm code, wazero's trampolines and call machinery, host
# functions, edge logic, the envelope codec, fasthttp, the Go runtime, kernel
# receive and send) in microseconds of CPU per request, written to OUT too.
# Without perf (or with PERF= set empty) it says so and prints CPU per
# request by process only.
#
#   deploy/bench/breakdown.sh                     # DURATION=5s CONNS=50 SIZE=1024
#   DURATION=2s OUT=/tmp/b.md deploy/bench/breakdown.sh
#
# The edge is built with -tags perfmap, so wazero writes /tmp/perf-PID.map
# naming each compiled Wasm function ("[index/last]module.function") and
# perf can name plugin code; it compiles the plugins itself (no compilation
# cache: a module loaded from one gets no perf map entries). Servers run on
# core 0 and wrk on core 1, as in report.sh. Each part is its share of a
# process's perf samples times the process's user+system CPU over the run
# (/proc/PID/stat), over the requests wrk counted (deploy/cmd/benchbreak).
# Every load is bounded by DURATION and stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-5s}
conns=${CONNS:-50}
size=${SIZE:-1024}
out=${OUT:-deploy/bench/report/BREAKDOWN.md}
freq=${FREQ:-1999}

. deploy/bench/lib.sh
install_missing "wrk curl" wrk taskset python3 curl
edge=
bench_cleanup() { [ -z "$edge" ] || rm -f "/tmp/perf-$edge.map"; }

perf=${PERF-$(command -v perf || true)}
if [ -n "$perf" ] && ! "$perf" record -q -e cpu-clock -o "$tmp/probe.data" -- true >/dev/null 2>&1; then
	echo "# perf is installed but cannot record here (perf_event_paranoid, or no permission)" >&2
	perf=
fi
[ -n "$perf" ] || echo "# perf not available: printing CPU per request by process only" >&2

echo "# building" >&2
go build -tags perfmap -o "$tmp/edge" ./edge/cmd/edge
build origin benchserve benchbreak wedgectl

# The application twice (cacheable answers for hits, no-store for misses),
# an origin service in front of each, and one edge whose routes both run
# auth -> ratelimit -> cache, with a rate limit nobody reaches.
start_app 127.0.0.1:18201
start_app 127.0.0.1:18211 -cache-control no-store
nostore=$app_pid
start_origin 127.0.0.1:18204 127.0.0.1:18224 127.0.0.1:18201 origin.log -log-level warn
start_origin 127.0.0.1:18214 127.0.0.1:18234 127.0.0.1:18211 origin2.log -log-level warn
origin2=$origin_pid
. deploy/bench/token.sh
cat >"$tmp/edge.yaml" <<YAML
listen: 127.0.0.1:18205
origins:
  app: {addr: 127.0.0.1:18204, key: "@origin.key"}
  nostore: {addr: 127.0.0.1:18214, key: "@origin.key"}
routes:
$(route hit app bulk 2000000000 1s 2000000000)
$(route miss nostore bulk 2000000000 1s 2000000000)
YAML
start_edge ""

bearer="Authorization: Bearer $token"
headers() { # host: the response headers of one request
	curl -sS -D - -o /dev/null -H "Host: $1" -H "$bearer" http://127.0.0.1:18205/bench 2>/dev/null | tr -d '\r'
}
for _ in $(seq 1200); do # the plugins compile in the edge: up to two minutes
	case $(headers hit | head -1) in *" 200"*) break ;; esac
	kill -0 "$edge" 2>/dev/null || { tail -20 "$tmp/edge.log" >&2; exit 1; }
	sleep 0.1
done
# A hit must be a hit and a miss must reach the application.
headers hit | grep -qi '^cache-status: .*hit' || { echo "the hit route does not hit:" >&2; headers hit >&2; exit 1; }
headers miss | grep -qi '^cache-status: .*hit' && { echo "the miss route hits:" >&2; headers miss >&2; exit 1; }
headers miss | grep -q '^HTTP/1.1 200' || { echo "the miss route fails:" >&2; headers miss >&2; tail -5 "$tmp"/*.log >&2; exit 1; }

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
runs=()
for sc in hit miss; do
	case $sc in
	hit) procs="edge:$edge" ;;
	miss) procs="edge:$edge origin:$origin2 app:$nostore" ;;
	esac
	dir=$tmp/$sc
	mkdir -p "$dir"
	declare -A before=()
	for rp in $procs; do before[$rp]=$(ticks "${rp#*:}"); done
	rec=
	if [ -n "$perf" ]; then
		list=$(for rp in $procs; do printf '%s,' "${rp#*:}"; done)
		"$perf" record -q -e cpu-clock -F "$freq" -g -p "${list%,}" -o "$dir/perf.data" 2>"$dir/perf.log" & rec=$!
		for _ in $(seq 100); do [ -s "$dir/perf.data" ] && break; sleep 0.05; done
	fi
	o=$(taskset -c 1 wrk -t1 -c"$conns" -d"$duration" -H "Host: $sc" -H "$bearer" http://127.0.0.1:18205/bench)
	declare -A after=()
	for rp in $procs; do after[$rp]=$(ticks "${rp#*:}"); done
	if [ -n "$rec" ]; then
		kill -INT "$rec"
		wait "$rec" || true
		"$perf" script -i "$dir/perf.data" -F comm,pid,ip,sym,dso >"$dir/perf.txt" 2>>"$dir/perf.log"
	fi
	n=$(awk '/requests in/ {print $1}' <<<"$o")
	non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$o")
	[ "${non2xx:-0}" = 0 ] || echo "$sc: $non2xx answers were not 2xx" >&2
	{
		printf 'scenario\t%s\nrequests\t%s\n' "$sc" "$n"
		for rp in $procs; do
			printf 'proc\t%s\t%s\t%s\n' "${rp%%:*}" "${rp#*:}" \
				"$(awk -v a="${before[$rp]}" -v b="${after[$rp]}" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) * 1e6 / hz}')"
		done
	} >"$dir/run.tsv"
	echo "# $sc: $(awk '/^Requests\/sec/ {print $2}' <<<"$o") req/s, $n requests" >&2
	runs+=("$dir")
done

note="$(date -u +%FT%TZ), $(nproc) cores, $(go version | cut -d' ' -f3); wrk -t1 -c$conns -d$duration on core 1, servers on core 0, body $size bytes."
if [ -n "$perf" ]; then
	note+=" perf record -e cpu-clock -F $freq -g on the edge (hit), and the edge, origin service and application (miss); sampling adds its own overhead to the figures."
fi
"$tmp/benchbreak" -map "/tmp/perf-$edge.map" -plugins auth,ratelimit,cache -out "$out" -note "$note" "${runs[@]}"
echo "# wrote $out" >&2
