#!/usr/bin/env bash
# The origin link benchmark: Wedge's edge client -> origin service -> upstream
# against a plain fasthttp reverse proxy -> the same upstream, in one run, on
# 127.0.0.1, over the traffic mix of origin/internal/mix (header-heavy
# requests, JSON responses of 1-100 KB).
#
# It prints, from `go test -bench` runs repeated COUNT times (default 5):
#   - BenchmarkWireMix: bytes on the link per exchange, plain HTTP/1.1 vs
#     Wedge without and with a dictionary, and wire-bytes-ratio (plain/Wedge
#     with dictionary);
#   - BenchmarkExchange (origin/wire): encode+decode CPU per exchange;
#   - BenchmarkLink: requests/s and p99 of both paths under the same
#     closed-loop load (bounded by -benchtime).
# Figures are summarised by benchstat (median and spread over the runs): on a
# shared 2-core machine quote the ratios, not the absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${COUNT:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
go test -run '^$' -bench 'BenchmarkWireMix|BenchmarkLink' -benchtime "${BENCHTIME:-3s}" -count "$count" \
	./origin/internal/e2e | tee "$out/link.txt"
go test -run '^$' -bench 'BenchmarkExchange' -count "$count" ./origin/wire | tee "$out/wire.txt"

echo
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$out/link.txt" "$out/wire.txt" 2>/dev/null ||
	echo "(benchstat unavailable: raw figures above)"
