#!/usr/bin/env bash
# The benchmark report: one run on 127.0.0.1 that regenerates
# deploy/bench/report/REPORT.md and its PNG plots. It measures, for
#   wedge     the edge through its full chain: auth (HS256 JWT) + ratelimit + cache
#   nginx     nginx 1 worker (proxy_cache, limit_req, a header check)
#   varnish   Varnish (its built-in VCL, pass, synth, vmod vsthrottle)
#   fasthttp  the bare application server: the ceiling, where one exists
# four scenarios: cache hits, misses through the origin, auth rejects and
# rate-limited answers, with wrk (requests/s, p50/p90/p99, server CPU per
# request) over ROUNDS rounds; then one node's capacity: the full chain's
# latency under a paced (open-loop) load at 50% and 90% of its measured
# maximum, and how many idle connections the edge holds at what memory.
# Servers run on core 0 and the load generators on core 1 (taskset): unpinned,
# wrk takes half of this 2-core machine (ARCHITECTURE.md, measured facts).
# The raw figures stay in deploy/bench/report/raw; the capacity model's
# assumptions are benchreport flags, passed through MODEL="-peak 4 ...".
#
#   deploy/bench/report.sh                      # DURATION=10s CONNS=50 ROUNDS=3 SIZE=1024
#   DURATION=2s ROUNDS=1 HOLD=2000 deploy/bench/report.sh   # a smoke run
#
# Every load is bounded: wrk runs DURATION, loadgen at most DURATION and a
# request count, idle connections at most HOLD (default: the open-file hard
# limit less 1000).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10s}
conns=${CONNS:-50}
rounds=${ROUNDS:-3}
size=${SIZE:-1024}
out=deploy/bench/report
raw=$out/raw
ulimit -n "$(ulimit -Hn)"
fdlimit=$(ulimit -Hn)
hold=${HOLD:-$((fdlimit - 1000))}

. deploy/bench/lib.sh
vmods=$(dirname "$(find /usr/lib -name libvmod_std.so -print -quit 2>/dev/null || echo /x/y)")
[ -e "$vmods/libvmod_vsthrottle.so" ] || need+=(vsthrottle)
install_missing "wrk nginx varnish varnish-modules gnuplot-nox curl" wrk nginx varnishd taskset python3 gnuplot curl
[ -e "$vmods/libvmod_std.so" ] || vmods=$(dirname "$(find /usr/lib -name libvmod_std.so -print -quit)")

echo "# building" >&2
build edge origin benchserve loadgen benchreport wedgectl

# The application, twice: cacheable answers (hits), and no-store answers
# that no cache may keep (misses go through to it every time).
start_app 127.0.0.1:18101
app=$app_pid
start_app 127.0.0.1:18111 -cache-control no-store
nostore=$app_pid

# Each scenario is a Host: hit, miss, auth, limit. nginx: one worker.
start_nginx error <<NGINX
	proxy_http_version 1.1;
	proxy_set_header Connection "";
	add_header X-Cache \$upstream_cache_status;
	upstream app { server 127.0.0.1:18101; keepalive 32; }
	upstream nostore { server 127.0.0.1:18111; keepalive 32; }
	# One bucket per Authorization value, the nearest thing to Wedge's
	# per-identity policy (nginx does not verify the token); 1 r/m is
	# limit_req's slowest rate.
	limit_req_zone \$http_authorization zone=rl:10m rate=1r/m;
	limit_req_status 429;
	limit_req_log_level info;
	server {
		listen 127.0.0.1:18102 default_server;
		server_name hit;
		location / { proxy_pass http://app; proxy_cache c; }
	}
	server {
		listen 127.0.0.1:18102;
		server_name miss;
		location / { proxy_pass http://nostore; }
	}
	server {
		listen 127.0.0.1:18102;
		server_name auth;
		location / {
			if (\$http_authorization = "") {
				add_header WWW-Authenticate 'Bearer realm="bench"' always;
				return 401;
			}
			proxy_pass http://app;
			proxy_cache c;
		}
	}
	server {
		listen 127.0.0.1:18102;
		server_name limit;
		location / { limit_req zone=rl; proxy_pass http://app; proxy_cache c; }
	}
NGINX

# Varnish: the built-in VCL caches hits by Cache-Control; misses are passed;
# auth is a header check answered by synth; the rate limit is vsthrottle.
cat >"$tmp/bench.vcl" <<VCL
vcl 4.1;
import vsthrottle;
backend app { .host = "127.0.0.1"; .port = "18101"; }
backend nostore { .host = "127.0.0.1"; .port = "18111"; }
sub vcl_recv {
	if (req.http.host == "miss") {
		set req.backend_hint = nostore;
		return (pass);
	}
	if (req.http.host == "auth" && !req.http.Authorization) {
		return (synth(401));
	}
	if (req.http.host == "limit") {
		if (vsthrottle.is_denied(req.http.Authorization, 1, 1h)) {
			return (synth(429));
		}
		# The built-in VCL passes requests with credentials; Wedge strips them.
		unset req.http.Authorization;
	}
}
sub vcl_synth {
	if (resp.status == 401) {
		set resp.http.WWW-Authenticate = {"Bearer realm="bench""};
	}
}
VCL
taskset -c 0 varnishd -F -j none -n "$tmp/varnish" -a 127.0.0.1:18103 -f "$tmp/bench.vcl" -p vmod_path="$vmods" \
	-s malloc,256m >"$tmp/varnish.log" 2>&1 & varnish=$!
pids+=("$varnish")

# Wedge: two origin services (one per application) and one edge whose
# routes, by Host, all run auth -> ratelimit -> cache.
start_origin 127.0.0.1:18104 127.0.0.1:18124 127.0.0.1:18101 origin.log -log-level warn
origin1=$origin_pid
start_origin 127.0.0.1:18114 127.0.0.1:18134 127.0.0.1:18111 origin2.log -log-level warn
origin2=$origin_pid
. deploy/bench/token.sh
{
	cat <<YAML
listen: 127.0.0.1:18105
limits: {max_conns: $fdlimit, idle_timeout: 10m}
origins:
  app: {addr: 127.0.0.1:18104, key: "@origin.key"}
  nostore: {addr: 127.0.0.1:18114, key: "@origin.key"}
routes:
YAML
	# A limit nobody reaches: the take is made, it never refuses.
	route hit app bulk_hit 2000000000 1s 2000000000
	route miss nostore bulk_miss 2000000000 1s 2000000000
	route auth app bulk_auth 2000000000 1s 2000000000
	# One request an hour: everything past the first is refused.
	route limit app strict 1 3600s 1
} >"$tmp/edge.yaml"
start_edge "$tmp/cc"

status() { # url host [header]: the status code
	curl -sS -o /dev/null -w '%{http_code}' -H "Host: $2" ${3:+-H "$3"} "$1" 2>/dev/null || true
}
wait_up http://127.0.0.1:18101/bench -H "Host: hit"
wait_up http://127.0.0.1:18111/bench -H "Host: miss"
wait_up http://127.0.0.1:18102/bench -H "Host: hit"
wait_up http://127.0.0.1:18103/bench -H "Host: hit"
wait_up http://127.0.0.1:18105/bench -H "Host: hit" -H "Authorization: Bearer $token"

bearer="Authorization: Bearer $token"
# scenario|target|port|status every request should get|header|what the target does
targets=(
	"hit|wedge|18105|200|$bearer|verifies the JWT (HS256, host crypto), takes a rate-limit unit, serves the cached response"
	"hit|nginx|18102|200||proxy_cache hit; no authentication, no rate limit"
	"hit|varnish|18103|200||cache hit (built-in VCL); no authentication, no rate limit"
	"hit|fasthttp|18101|200||the application itself: the ceiling for any proxy"
	"miss|wedge|18105|200|$bearer|JWT + rate limit + cache lookup, then edge -> origin service (CBOR/zstd envelope) -> application: two proxy hops"
	"miss|nginx|18102|200||proxy_pass to the application, no cache configured: one proxy hop"
	"miss|varnish|18103|200||return (pass) to the application: one proxy hop"
	"miss|fasthttp|18111|200||the application itself, answering no-store: the ceiling"
	"auth|wedge|18105|401||auth plugin (a Wasm call) finds no credentials: 401 with a Bearer challenge and a text body"
	"auth|nginx|18102|401||if (\$http_authorization = \"\") return 401 (+ WWW-Authenticate): a header presence check, nothing verified"
	"auth|varnish|18103|401||vcl_recv: no Authorization header -> synth(401): a header presence check, nothing verified"
	"limit|wedge|18105|429|$bearer|verifies the JWT, then the GCRA limit by identity refuses: 429, Retry-After, RateLimit fields, problem+json body"
	"limit|nginx|18102|429|$bearer|limit_req keyed by the raw Authorization value (1 r/m) refuses: 429; the token is not verified"
	"limit|varnish|18103|429|$bearer|vsthrottle.is_denied keyed by the raw Authorization value (1/h) -> synth(429); the token is not verified"
)
procs_of() { # target: the server processes whose CPU it spends (the applications always)
	case $1 in
	wedge) echo "$edge $origin1 $origin2 $app $nostore" ;;
	nginx) echo "$ngx $app $nostore" ;;
	varnish) echo "$varnish $app $nostore" ;;
	fasthttp) echo "$app $nostore" ;;
	esac
}
tree() { local p; for p in "$@"; do echo "$p"; tree $(ps -o pid= --ppid "$p" 2>/dev/null); done; }
ticks() { for p in $(tree "$@"); do cat "/proc/$p/stat" 2>/dev/null; done | awk '{s += $14 + $15} END {print s + 0}'; }
hz=$(getconf CLK_TCK)

# Warm every path and prove each target answers as its scenario says: hits
# are hits, misses reach the application, rejects reject.
for t in "${targets[@]}"; do
	IFS='|' read -r sc name port want h _ <<<"$t"
	url=http://127.0.0.1:$port/bench
	status "$url" "$sc" "$h" >/dev/null
	got=$(status "$url" "$sc" "$h")
	[ "$got" = "$want" ] || { echo "$sc/$name: status $got, want $want" >&2; tail -5 "$tmp"/*.log >&2; exit 1; }
	hdrs=$(curl -sS -D - -o /dev/null -H "Host: $sc" ${h:+-H "$h"} "$url" | tr -d '\r')
	case $sc/$name in
	hit/wedge) grep -qi '^cache-status: .*hit' <<<"$hdrs" ;;
	hit/nginx) grep -qi '^x-cache: hit' <<<"$hdrs" ;;
	hit/varnish) grep -qi '^x-varnish: [0-9]* [0-9]' <<<"$hdrs" ;;
	miss/wedge) ! grep -qi '^cache-status: .*hit' <<<"$hdrs" ;;
	miss/varnish) ! grep -qi '^x-varnish: [0-9]* [0-9]' <<<"$hdrs" ;;
	*) true ;;
	esac || { echo "$sc/$name does not do what its scenario says:" >&2; echo "$hdrs" >&2; exit 1; }
done

rm -rf "$raw"
mkdir -p "$raw"
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
{
	printf 'date\t%s\n' "$(date -u +%FT%TZ)"
	printf 'cores\t%s\n' "$(nproc)"
	printf 'CPU\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	printf 'memory\t%s\n' "$mem"
	printf 'kernel\t%s\n' "$(uname -sr)"
	printf 'Go\t%s\n' "$(go version | cut -d' ' -f3-)"
	printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/.*version: //')"
	printf 'Varnish\t%s\n' "$(varnishd -V 2>&1 | head -1 | sed 's/^varnishd (//; s/ revision.*//')"
	printf 'wrk\t%s\n' "$( (wrk -v 2>&1 || true) | head -1 | awk '{print $2}')"
	printf 'open-file limit\t%s\n' "$fdlimit"
	printf 'load average at start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)"
	printf 'pinning\tservers (applications, origin services, edge, nginx, Varnish) on core 0, wrk and loadgen on core 1, with taskset; GOMAXPROCS follows the affinity (1)\n'
	printf 'load\twrk -t1 -c%s -d%s --latency per target; %s rounds, targets interleaved within each round; body %s bytes; keep-alive\n' "$conns" "$duration" "$rounds" "$size"
	printf 'server CPU / req\tuser+system time of the target'"'"'s processes and the applications during the run (/proc/PID/stat), over requests served\n'
} >"$raw/machine.tsv"
{
	printf 'hit\tCache hits\tThe application answers `Cache-Control: public, max-age=3600`; after one fill request every request is a hit. Wedge does strictly more per hit than the peers (table: what it does).\n'
	printf 'miss\tMisses through the origin\tThe application answers `Cache-Control: no-store` (a second application process), so no cache keeps anything and every request reaches it. Wedge takes two proxy hops (edge, origin service) where nginx and Varnish take one, and still runs its full chain, cache lookup included.\n'
	printf 'auth\tAuth rejects\tRequests without credentials. Not equivalent work: Wedge runs its auth plugin and answers an RFC 6750 challenge; nginx and Varnish only test that a header is present. Bare fasthttp has no equivalent and is left out.\n'
	printf 'limit\tRate-limited answers\tRequests with a valid token past the limit (Wedge: 1 per hour per identity; nginx: 1 per minute per Authorization value, its slowest rate, so a handful of requests per run pass; Varnish: 1 per hour). Not equivalent work: only Wedge verifies the token before counting. Bare fasthttp is left out.\n'
} >"$raw/scenarios.tsv"
for t in "${targets[@]}"; do
	IFS='|' read -r sc name _ _ _ what <<<"$t"
	printf '%s\t%s\t%s\n' "$sc" "$name" "$what"
done >"$raw/targets.tsv"

us() { # a wrk duration (12.3us, 1.2ms, 1.0s, 1.0m) in microseconds
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		m = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : 0
		printf "%.1f", n * m }'
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version | cut -d' ' -f3); wrk -t1 -c$conns -d$duration on core 1, servers on core 0; $rounds rounds" >&2
printf '%-6s %-9s %5s %10s %10s %10s %10s %9s %9s\n' scen target round req/s p50 p90 p99 cpu/req non2xx >&2
for r in $(seq "$rounds"); do
	for t in "${targets[@]}"; do
		IFS='|' read -r sc name port want h _ <<<"$t"
		procs=$(procs_of "$name")
		before=$(ticks $procs)
		o=$(taskset -c 1 wrk -t1 -c"$conns" -d"$duration" --latency -H "Host: $sc" ${h:+-H "$h"} "http://127.0.0.1:$port/bench")
		after=$(ticks $procs)
		rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$o")
		n=$(awk '/requests in/ {print $1}' <<<"$o")
		p50=$(us "$(awk '$1 == "50%" {print $2}' <<<"$o")")
		p90=$(us "$(awk '$1 == "90%" {print $2}' <<<"$o")")
		p99=$(us "$(awk '$1 == "99%" {print $2}' <<<"$o")")
		non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$o")
		errs=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$o")
		cpu=$(awk -v a="$before" -v b="$after" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", n ? (b - a) * 1e6 / hz / n : 0}')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$name" "$r" "$rps" "$p50" "$p90" "$p99" "$n" "${non2xx:-0}" "${errs:-0}" "$cpu" >>"$raw/wrk.tsv"
		printf '%-6s %-9s %5s %10s %10s %10s %10s %9s %9s\n' "$sc" "$name" "$r" "$rps" "$p50" "$p90" "$p99" "$cpu" "${non2xx:-0}" >&2
		# A target whose answers are not what the scenario measures is a failed run.
		if [ "$want" = 200 ] && [ "${non2xx:-0}" -gt 0 ]; then echo "$sc/$name: $non2xx answers were not 2xx" >&2; fi
	done
done

# Capacity: paced load at 50% and 90% of the full chain's measured maximum
# (its median cache-hit req/s), for Wedge and, at the same rates, nginx.
max=$(awk -F'\t' '$1 == "hit" && $2 == "wedge" {print $4}' "$raw/wrk.tsv" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
secs=$(seconds "$duration")
echo "# paced load at 50% and 90% of $max req/s, $duration each" >&2
for r in $(seq "$rounds"); do
	for level in 50 90; do
		rate=$(awk -v m="$max" -v l="$level" 'BEGIN {printf "%.0f", m * l / 100}')
		for t in wedge nginx; do
			port=18105 h=$bearer
			[ $t = nginx ] && port=18102 h=
			line=$(taskset -c 1 "$tmp/loadgen" -url "http://127.0.0.1:$port/bench" -H "Host: hit" ${h:+-H "$h"} \
				-rate "$rate" -d "$duration" -n "$(requests "$rate" "$secs")")
			printf '%s\t%s\t%s\t%s\n' "$t" "$level" "$r" "$line" >>"$raw/paced.tsv"
			echo "$t ${level}% round $r: $line" >&2
		done
	done
done

# Idle connections held by the edge (the full-chain route), and the chain's
# latency meanwhile at 50% of its maximum.
echo "# holding $hold idle connections on the edge (open-file limit $fdlimit)" >&2
rate=$(awk -v m="$max" 'BEGIN {printf "%.0f", m / 2}')
taskset -c 1 "$tmp/loadgen" -url http://127.0.0.1:18105/bench -H "Host: hit" -H "$bearer" -hold "$hold" -pid "$edge" \
	-rate "$rate" -d "$duration" -c 64 -n "$(requests "$rate" "$secs")" | tee "$raw/hold.txt" >&2

# shellcheck disable=SC2086 # MODEL is a list of flags
"$tmp/benchreport" -raw "$raw" -out "$out" ${MODEL:-}
rm -f "$out"/*.png
gnuplot "$raw/plots.gp"
echo "# wrote $out/REPORT.md and $(cd "$out" && ls ./*.png | tr '\n' ' ')" >&2
