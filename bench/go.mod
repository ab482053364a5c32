module switchboard/bench

go 1.26.0

require (
	github.com/dgraph-io/ristretto/v2 v2.4.2
	github.com/maypok86/otter/v2 v2.4.0
	go.uber.org/goleak v1.3.0
	switchboard/libs v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dustin/go-humanize v1.0.1 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace (
	switchboard/libs => ../libs
	switchboard/proto => ../proto
)
