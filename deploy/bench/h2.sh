#!/usr/bin/env bash
# HTTP/2 against HTTP/1.1 on the same edge node, in one run on 127.0.0.1:
# cache hits (the cache plugin alone, the least a hit needs) on the node's
# TLS listener, loaded by h2load (nghttp2) for both protocols so the client
# is the same program:
#   h1        HTTP/1.1 over TLS (h2load --h1), CONNS keep-alive connections
#   h2        HTTP/2, CONNS connections, one stream at a time on each
#   h2-m10    HTTP/2, CONNS connections, 10 concurrent streams on each
# The node is pinned to core 0 and h2load to core 1. It prints requests/s
# and the node's CPU per request (utime+stime from /proc over the run, so
# the origin and h2load are not counted) for ROUNDS rounds (default 3), so
# the spread shows the noise, then the medians and the ratios to h1.
# Run it alone: flock /tmp/wedge-bench.lock deploy/bench/h2.sh
#
#   deploy/bench/h2.sh            # DURATION=10s CONNS=50 ROUNDS=3 SIZE=1024
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10s}
conns=${CONNS:-50}
rounds=${ROUNDS:-3}
size=${SIZE:-1024}

. deploy/bench/lib.sh
install_missing "nghttp2-client" h2load taskset openssl

echo "# building" >&2
build edge origin benchserve wedgectl

start_app 127.0.0.1:18001
start_origin 127.0.0.1:18004 127.0.0.1:18014 127.0.0.1:18001 origin.log
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench.test \
	-addext subjectAltName=DNS:bench.test,IP:127.0.0.1 -keyout "$tmp/edge.key" -out "$tmp/edge.crt" 2>/dev/null
cat >"$tmp/edge.yaml" <<YAML
listen: 127.0.0.1:18005
tls:
  listen: 127.0.0.1:18443
  certs: [{cert: $tmp/edge.crt, key: $tmp/edge.key}]
limits: {max_conns: 20000}
origins:
  app: {addr: 127.0.0.1:18004, key: "@origin.key"}
routes:
  - name: cache
    origin: app
    chain:
      - {file: cache.wasm}
YAML
start_edge "$tmp/cc"
wait_up https://127.0.0.1:18443/bench -k
for proto in --http1.1 --http2; do
	hdrs=$(curl -fsS -k "$proto" -D - -o /dev/null https://127.0.0.1:18443/bench | tr -d '\r')
	grep -qi '^cache-status: .*hit' <<<"$hdrs" || { echo "$proto: not a hit: $hdrs" >&2; exit 1; }
done

# cpu PID: the process's utime+stime in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "# $(date -u +%FT%TZ) $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(go version | cut -d' ' -f3), $(h2load --version | head -1)"
echo "# h2load -c$conns -D$duration on core 1; the edge on core 0; body $size bytes; $rounds rounds"
printf '%-8s %6s %12s %14s\n' target round req/s cpu-us/req
targets=("h1|--h1 -m1" "h2|-m1" "h2-m10|-m10")
results=$tmp/results
for r in $(seq "$rounds"); do
	for t in "${targets[@]}"; do
		IFS='|' read -r name flags <<<"$t"
		before=$(cpu "$edge")
		# shellcheck disable=SC2086 # flags is a list
		out=$(taskset -c 1 h2load $flags -c"$conns" -D"$(seconds "$duration")" https://127.0.0.1:18443/bench)
		after=$(cpu "$edge")
		rps=$(awk '/^finished in/ {print $4}' <<<"$out")
		done=$(awk '/^requests:/ {print $8}' <<<"$out")
		failed=$(awk '/^requests:/ {print $10 + $12}' <<<"$out")
		[ "$failed" = 0 ] || echo "$name: $failed failed or errored" >&2
		us=$(awk -v c=$((after - before)) -v hz="$hz" -v n="$done" 'BEGIN {printf "%.1f", 1e6 * c / hz / n}')
		printf '%-8s %6s %12s %14s\n' "$name" "$r" "$rps" "$us"
		echo "$name $rps $us" >>"$results"
	done
done
echo
echo "# medians over the rounds, and the ratios to h1"
median() { grep "^$1 " "$results" | awk -v f="$2" '{print $f}' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for t in "${targets[@]}"; do
	name=${t%%|*}
	awk -v n="$name" -v r="$(median "$name" 2)" -v u="$(median "$name" 3)" -v r1="$(median h1 2)" -v u1="$(median h1 3)" \
		'BEGIN {printf "%-8s %12.0f req/s (%.2fx h1) %8.1f cpu-us/req (%.2fx h1)\n", n, r, r / r1, u, u / u1}'
done
