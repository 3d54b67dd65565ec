#!/usr/bin/env bash
# Holds N idle keep-alive connections (default 50,000) on an edge process
# while 8 other connections load it, and reports the edge's resident memory
# with and without them, requests/s and p99 meanwhile, and whether the held
# connections still answer. All on 127.0.0.1 (the clients bind 127.0.0.2-5
# as source addresses: one address has only ~28k ephemeral ports). Raising
# the open-file limit past the hard limit needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
WEDGE_IDLE_CONNS=${N:-50000} go test -count=1 -run '^TestHoldIdleConnections$' -v -timeout 10m ./edge |
	grep -E 'conns_test|^(ok|FAIL|---)'
