# Sourced by the benchmark scripts, from the repository root: the setup they
# share, so that a change to how a server is started reaches every benchmark.
# It makes tmp (removed on exit, with every process in pids killed), and
# offers functions that start the servers on core 0, each adding its process
# to pids. A script may set rt (a command prefix, e.g. chrt) before starting
# servers, and define bench_cleanup to remove more on exit.
tmp=$(mktemp -d)
pids=()
rt=()
need=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
	if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
}
trap cleanup EXIT

# install_missing PACKAGES COMMAND...: installs the Debian PACKAGES when a
# COMMAND is not on PATH, or when the caller has put names in need already
# (what is missing that no command shows).
install_missing() {
	local pkgs=$1 c
	shift
	for c in "$@"; do command -v "$c" >/dev/null || need+=("$c"); done
	if ((${#need[@]})); then
		echo "installing $pkgs (missing: ${need[*]})" >&2
		# shellcheck disable=SC2086 # a list of packages
		apt-get update -qq && apt-get install -y -qq $pkgs >/dev/null
	fi
}

# build COMMAND...: builds each command into $tmp (edge and origin from their
# own trees, the others from deploy/cmd), then the plugins of the benchmarked
# chain into $tmp/NAME.wasm. Build wedgectl among them: it builds the plugins.
build() {
	local c src
	for c in "$@"; do
		case $c in edge | origin) src=./$c/cmd/$c ;; *) src=./deploy/cmd/$c ;; esac
		go build -o "$tmp/$c" "$src"
	done
	for p in auth ratelimit cache; do "$tmp/wedgectl" plugin build "plugins/$p" -o "$tmp/$p.wasm" >/dev/null; done
}

# start_app ADDR [benchserve flags]: the application, a bare fasthttp server.
start_app() {
	"${rt[@]}" taskset -c 0 "$tmp/benchserve" -listen "$1" -size "$size" "${@:2}" &
	app_pid=$!
	pids+=("$app_pid")
}

# start_nginx [LOG LEVEL]: nginx, one worker, with the shared head of its http
# block (no access log, temporary paths and the cache zone c in $tmp) and the
# rest of the block from stdin.
start_nginx() {
	mkdir -p "$tmp/nginx"
	{
		cat <<NGINX
user root;
worker_processes 1;
daemon off;
pid $tmp/nginx/pid;
error_log $tmp/nginx/error.log${1:+ $1};
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	proxy_cache_path $tmp/nginx/cache keys_zone=c:10m;
NGINX
		cat
		echo "}"
	} >"$tmp/nginx.conf"
	"${rt[@]}" taskset -c 0 nginx -c "$tmp/nginx.conf" &
	ngx=$!
	pids+=("$ngx")
}

# start_origin ADDR METRICS UPSTREAM LOG [origin flags]: an origin service in
# front of the application at UPSTREAM, keyed by $tmp/origin.key (made on the
# first call), logging to $tmp/LOG.
start_origin() {
	[ -s "$tmp/origin.key" ] || "$tmp/wedgectl" origin keygen >"$tmp/origin.key"
	WEDGE_ORIGIN_KEY=$(cat "$tmp/origin.key") "${rt[@]}" taskset -c 0 "$tmp/origin" -listen "$1" "${@:5}" \
		-metrics "$2" -upstream "http://$3" -health-path "" >"$tmp/$4" 2>&1 &
	origin_pid=$!
	pids+=("$origin_pid")
}

# chain POLICY LIMIT PERIOD [BURST]: the benchmarked chain as YAML list items:
# auth (HS256, the key of token.sh), a rate limit by the identity auth sets,
# and the cache.
chain() {
	cat <<YAML
      - {file: auth.wasm, config: {realm: bench, jwks: {keys: [{kty: oct, alg: HS256, k: "$secret"}]}}}
      - {file: ratelimit.wasm, config: {policies: [{name: $1, key: "value:identity-sub", limit: $2, period: $3${4:+, burst: $4}}]}}
      - {file: cache.wasm}
YAML
}

# route NAME ORIGIN POLICY LIMIT PERIOD [BURST]: a route of the edge's YAML
# for Host NAME, running the chain above to ORIGIN.
route() {
	cat <<YAML
  - name: $1
    host: $1
    origin: $2
    chain:
YAML
	chain "$3" "$4" "$5" "${6:-}"
}

# start_edge COMPILATION_CACHE: the edge with $tmp/edge.yaml, logging to
# $tmp/edge.log; EDGE_ENV (assignments) goes into its environment.
start_edge() {
	# shellcheck disable=SC2086 # EDGE_ENV is a list of assignments
	env ${EDGE_ENV:-} "${rt[@]}" taskset -c 0 "$tmp/edge" -config "$tmp/edge.yaml" -compilation-cache "$1" \
		>"$tmp/edge.log" 2>&1 &
	edge=$!
	pids+=("$edge")
}

# wait_up URL [curl arguments]: waits up to a minute for URL to answer 2xx.
wait_up() {
	for _ in $(seq 600); do
		curl -fsS -o /dev/null "${@:2}" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "not up: $1" >&2
	tail -20 "$tmp"/*.log >&2 || true
	exit 1
}

# seconds DURATION: a wrk or loadgen duration (500ms, 10s, 1m) in seconds.
seconds() {
	awk -v d="$1" 'BEGIN {n = d + 0; if (d ~ /ms$/) n /= 1000; else if (d ~ /m$/) n *= 60; print n}'
}

# requests RATE SECONDS: loadgen's request bound for a paced run: one more
# than RATE sustained for SECONDS, so that the duration ends it.
requests() {
	awk -v r="$1" -v s="$2" 'BEGIN {printf "%.0f", r * s + 1}'
}
