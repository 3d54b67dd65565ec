#!/usr/bin/env bash
# The edge benchmark: cache hits served, in one run on 127.0.0.1, by
#   wedge-full   Wedge through auth (HS256 JWT) + ratelimit + cache
#   wedge-cache  Wedge through the cache plugin alone (the least a hit needs)
#   fasthttp     a bare fasthttp server with the same body (the ceiling)
#   nginx        nginx with proxy_cache
#   varnish      Varnish
# each measured alone with wrk, the server pinned to core 0 and wrk to core 1
# (ARCHITECTURE.md: unpinned, wrk takes half the machine). It prints
# requests/s, p50 and p99 per target and the ratios against nginx, for
# ROUNDS rounds (default 3) so the spread shows the noise.
#
#   deploy/bench/edge-hit.sh            # DURATION=10s CONNS=50 ROUNDS=3 SIZE=1024
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10s}
conns=${CONNS:-50}
rounds=${ROUNDS:-3}
size=${SIZE:-1024}

. deploy/bench/lib.sh
install_missing "wrk nginx varnish" wrk nginx varnishd taskset python3

echo "# building" >&2
build edge origin benchserve wedgectl

# The application: a bare fasthttp server, which is also the ceiling.
start_app 127.0.0.1:18001

# nginx with proxy_cache.
start_nginx <<NGINX
	upstream app { server 127.0.0.1:18001; keepalive 32; }
	server {
		listen 127.0.0.1:18002;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache c;
			add_header X-Cache \$upstream_cache_status;
		}
	}
NGINX

# Varnish with its built-in VCL, which caches by Cache-Control.
taskset -c 0 varnishd -F -j none -n "$tmp/varnish" -a 127.0.0.1:18003 -b 127.0.0.1:18001 -s malloc,256m \
	>"$tmp/varnish.log" 2>&1 & pids+=($!)

# Wedge: an origin service in front of the application, and one edge whose
# routes, by Host, run the full chain or the cache alone.
start_origin 127.0.0.1:18004 127.0.0.1:18014 127.0.0.1:18001 origin.log
. deploy/bench/token.sh
cat >"$tmp/edge.yaml" <<YAML
listen: 127.0.0.1:18005
limits: {max_conns: 20000}
origins:
  app: {addr: 127.0.0.1:18004, key: "@origin.key"}
routes:
$(route full app per_user 2000000000 1s)
  - name: cache
    host: cache
    origin: app
    chain:
      - {file: cache.wasm}
YAML
start_edge "$tmp/cc"

wait_up http://127.0.0.1:18001/bench
wait_up http://127.0.0.1:18002/bench
wait_up http://127.0.0.1:18003/bench
wait_up http://127.0.0.1:18005/bench -H "Host: full" -H "Authorization: Bearer $token"
wait_up http://127.0.0.1:18005/bench -H "Host: cache"

# Each target: name, URL, and the headers its requests carry. The first
# request fills the cache; the check below proves the rest are hits.
targets=(
	"wedge-full|http://127.0.0.1:18005/bench|Host: full|Authorization: Bearer $token"
	"wedge-cache|http://127.0.0.1:18005/bench|Host: cache|"
	"fasthttp|http://127.0.0.1:18001/bench||"
	"nginx|http://127.0.0.1:18002/bench||"
	"varnish|http://127.0.0.1:18003/bench||"
)
for t in "${targets[@]}"; do
	IFS='|' read -r name url h1 h2 <<<"$t"
	curl -fsS -o /dev/null ${h1:+-H "$h1"} ${h2:+-H "$h2"} "$url"
	hdrs=$(curl -fsS -D - -o /dev/null ${h1:+-H "$h1"} ${h2:+-H "$h2"} "$url" | tr -d '\r')
	case $name in
	wedge-*) grep -qi '^cache-status: .*hit' <<<"$hdrs" || { echo "$name: not a hit: $hdrs" >&2; exit 1; } ;;
	nginx) grep -qi '^x-cache: hit' <<<"$hdrs" || { echo "$name: not a hit: $hdrs" >&2; exit 1; } ;;
	varnish) grep -qi '^age: ' <<<"$hdrs" || { echo "$name: not a hit: $hdrs" >&2; exit 1; } ;;
	esac
done

echo "# $(date -u +%FT%TZ) $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(go version | cut -d' ' -f3)"
echo "# wrk -t1 -c$conns -d$duration --latency on core 1; servers on core 0; body $size bytes; $rounds rounds"
printf '%-12s %6s %12s %10s %10s\n' target round req/s p50 p99
results=$tmp/results
for r in $(seq "$rounds"); do
	for t in "${targets[@]}"; do
		IFS='|' read -r name url h1 h2 <<<"$t"
		out=$(taskset -c 1 wrk -t1 -c"$conns" -d"$duration" --latency ${h1:+-H "$h1"} ${h2:+-H "$h2"} "$url")
		rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
		p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
		p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
		errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
		[ -z "$errs" ] || echo "$name: $errs" >&2
		printf '%-12s %6s %12s %10s %10s\n' "$name" "$r" "$rps" "$p50" "$p99"
		echo "$name $rps" >>"$results"
	done
done
echo
echo "# median req/s over the rounds, and the ratio to nginx"
median() { grep "^$1 " "$results" | awk '{print $2}' | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
nginx=$(median nginx)
for t in "${targets[@]}"; do
	name=${t%%|*}
	m=$(median "$name")
	awk -v n="$name" -v m="$m" -v x="$nginx" 'BEGIN {printf "%-12s %12.0f %8.2fx nginx\n", n, m, m / x}'
done
awk -v f="$(median wedge-full)" -v c="$(median wedge-cache)" 'BEGIN {printf "chain cost: the full chain serves %.1f%% fewer hits than the cache alone\n", 100 * (1 - f / c)}'
