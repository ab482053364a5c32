# minof.awk reads `go test -bench` output and prints, for each benchmark,
# the lowest ns/op and the lowest cpu-ns/op (if reported) over its runs,
# with the number of runs. On a machine shared with other work the
# minimum is the run least disturbed by it.
/^Benchmark/ {
	name = $1
	v = -1; c = -1
	for (i = 2; i <= NF; i++) {
		if ($(i) == "ns/op") v = $(i - 1) + 0
		if ($(i) == "cpu-ns/op") c = $(i - 1) + 0
	}
	if (v < 0) next
	if (!(name in best) || v < best[name]) best[name] = v
	if (c >= 0 && (!(name in cpu) || c < cpu[name])) cpu[name] = c
	runs[name]++
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
END {
	for (i = 1; i <= n; i++) {
		k = order[i]
		if (k in cpu) printf "%-50s %9.1f ns/op %9.1f cpu-ns/op  (min of %d)\n", k, best[k], cpu[k], runs[k]
		else printf "%-50s %9.1f ns/op  (min of %d)\n", k, best[k], runs[k]
	}
}
