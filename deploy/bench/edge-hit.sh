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

need=()
for c in wrk nginx varnishd taskset python3; do command -v "$c" >/dev/null || need+=("$c"); done
if ((${#need[@]})); then
	echo "installing wrk nginx varnish (missing: ${need[*]})" >&2
	apt-get update -qq && apt-get install -y -qq wrk nginx varnish >/dev/null
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "# building" >&2
go build -o "$tmp/edge" ./edge/cmd/edge
go build -o "$tmp/origin" ./origin/cmd/origin
go build -o "$tmp/benchserve" ./deploy/cmd/benchserve
go build -o "$tmp/wedgectl" ./deploy/cmd/wedgectl
for p in auth ratelimit cache; do "$tmp/wedgectl" plugin build "plugins/$p" -o "$tmp/$p.wasm" >/dev/null; done

# The application: a bare fasthttp server, which is also the ceiling.
taskset -c 0 "$tmp/benchserve" -listen 127.0.0.1:18001 -size "$size" & pids+=($!)

# nginx with proxy_cache.
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $tmp/nginx/pid;
error_log $tmp/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	proxy_cache_path $tmp/nginx/cache keys_zone=c:10m;
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
}
NGINX
taskset -c 0 nginx -c "$tmp/nginx.conf" & pids+=($!)

# Varnish with its built-in VCL, which caches by Cache-Control.
taskset -c 0 varnishd -F -j none -n "$tmp/varnish" -a 127.0.0.1:18003 -b 127.0.0.1:18001 -s malloc,256m \
	>"$tmp/varnish.log" 2>&1 & pids+=($!)

# Wedge: an origin service in front of the application, and one edge whose
# routes, by Host, run the full chain or the cache alone.
"$tmp/wedgectl" origin keygen >"$tmp/origin.key"
WEDGE_ORIGIN_KEY=$(cat "$tmp/origin.key") taskset -c 0 "$tmp/origin" -listen 127.0.0.1:18004 \
	-metrics 127.0.0.1:18014 -upstream http://127.0.0.1:18001 -health-path "" >"$tmp/origin.log" 2>&1 & pids+=($!)
. deploy/bench/token.sh
cat >"$tmp/edge.yaml" <<YAML
listen: 127.0.0.1:18005
limits: {max_conns: 20000}
origins:
  app: {addr: 127.0.0.1:18004, key: "@origin.key"}
routes:
  - name: full
    host: full
    origin: app
    chain:
      - {file: auth.wasm, config: {jwks: {keys: [{kty: oct, alg: HS256, k: "$secret"}]}}}
      - {file: ratelimit.wasm, config: {policies: [{name: per_user, key: "value:identity-sub", limit: 2000000000, period: 1s}]}}
      - {file: cache.wasm}
  - name: cache
    host: cache
    origin: app
    chain:
      - {file: cache.wasm}
YAML
taskset -c 0 "$tmp/edge" -config "$tmp/edge.yaml" -compilation-cache "$tmp/cc" >"$tmp/edge.log" 2>&1 & pids+=($!)

wait_up() { # url [header]
	for _ in $(seq 600); do
		if curl -fsS -o /dev/null ${2:+-H "$2"} ${3:+-H "$3"} "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "not up: $1" >&2
	tail -20 "$tmp"/*.log >&2 || true
	exit 1
}
wait_up http://127.0.0.1:18001/bench
wait_up http://127.0.0.1:18002/bench
wait_up http://127.0.0.1:18003/bench
wait_up http://127.0.0.1:18005/bench "Host: full" "Authorization: Bearer $token"
wait_up http://127.0.0.1:18005/bench "Host: cache"

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
