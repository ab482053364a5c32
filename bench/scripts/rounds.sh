#!/bin/sh
# rounds.sh runs the benchmarks matching PATTERN of the Go package in DIR
# in ROUNDS rounds (default 5), every benchmark once per round with
# -cpu 1,2, so that all of them share the quiet and the busy moments of a
# shared machine, and prints the minimum of each.
#
# Usage, from the repository root:
#   bench/scripts/rounds.sh bench/store Throughput 5
#   bench/scripts/rounds.sh libs/store TinyLFUReadPath 5
set -eu
dir=$1
pattern=$2
rounds=${3:-5}
awkfile=$(cd "$(dirname "$0")" && pwd)/minof.awk
bin=$(mktemp)
out=$(mktemp)
trap 'rm -f "$bin" "$out"' EXIT
(cd "$dir" && GOWORK=off go test -c -o "$bin" .)
i=0
while [ "$i" -lt "$rounds" ]; do
	"$bin" -test.run '^$' -test.bench "$pattern" -test.benchmem \
		-test.cpu 1,2 -test.benchtime 300ms >>"$out"
	i=$((i + 1))
done
awk -f "$awkfile" "$out"
