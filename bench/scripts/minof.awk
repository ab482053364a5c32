# minof.awk reads `go test -bench` output and prints, for each benchmark,
# the lowest ns/op over its runs (-count N), with the number of runs. On a
# shared machine the minimum is the run least disturbed by other load.
/^Benchmark/ {
	name = $1
	for (i = 2; i <= NF; i++) if ($(i) == "ns/op") v = $(i - 1) + 0
	if (!(name in best) || v < best[name]) best[name] = v
	runs[name]++
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
END {
	for (i = 1; i <= n; i++) printf "%-55s %10.1f ns/op  (min of %d)\n", order[i], best[order[i]], runs[order[i]]
}
