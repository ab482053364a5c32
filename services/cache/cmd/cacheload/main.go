// Command cacheload drives a bounded load of Get, Set, BatchGet or BatchSet
// calls at a running cache service on loopback, and prints one JSON report:
// calls a second, latency percentiles and errors by status code.
//
//	make build && deploy/run-local.sh &
//	go run ./services/cache/cmd/cacheload -op get -concurrency 16 -duration 10s
//
// It refuses a target that is not on a loopback address. Before a get or
// batchget run it stores every key of the key space once, so that reads hit.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchboard/libs/grpcload"
	"switchboard/libs/server"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// params are the command's flags.
type params struct {
	target         string
	op             string
	cache          string
	keys           int
	valueBytes     int
	batch          int
	credentialFile string
	load           grpcload.Options
}

func main() {
	var p params
	flag.StringVar(&p.target, "target", "127.0.0.1:7300", "cache gRPC address (loopback only)")
	flag.StringVar(&p.op, "op", "get", "get, set, batchget or batchset")
	flag.StringVar(&p.cache, "cache", "messages", "cache to call")
	flag.IntVar(&p.keys, "keys", 1000, "keys in the key space (1-1000000)")
	flag.IntVar(&p.valueBytes, "value", 100, "bytes of each value (0-1048576)")
	flag.IntVar(&p.batch, "batch", 100, "keys or entries of a batch call (1-1000)")
	flag.StringVar(&p.credentialFile, "credential-file", "", "file holding CACHE_SERVICE_CREDENTIAL, if the service asks for one")
	p.load.Flags(flag.CommandLine)
	flag.Parse()
	grpcload.Main("cacheload", p.check, func(ctx context.Context) (any, error) { return run(ctx, p) })
}

func (p *params) check() error {
	if err := grpcload.CheckLoopback(p.target); err != nil {
		return err
	}
	switch {
	case p.op != "get" && p.op != "set" && p.op != "batchget" && p.op != "batchset":
		return fmt.Errorf("-op %q is not get, set, batchget or batchset", p.op)
	case p.keys < 1 || p.keys > 1_000_000:
		return fmt.Errorf("-keys %d is not in [1, 1000000]", p.keys)
	case p.valueBytes < 0 || p.valueBytes > 1<<20:
		return fmt.Errorf("-value %d is not in [0, 1048576]", p.valueBytes)
	case p.batch < 1 || p.batch > 1000:
		return fmt.Errorf("-batch %d is not in [1, 1000]", p.batch)
	}
	p.load.Name = "cache " + p.op
	p.load.Target = p.target
	return p.load.Check()
}

// run dials the target, fills the key space for reads, and runs the load.
func run(ctx context.Context, p params) (*grpcload.Report, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if p.credentialFile != "" {
		b, err := os.ReadFile(p.credentialFile)
		if err != nil {
			return nil, fmt.Errorf("credential: %w", err)
		}
		opts = append(opts, server.WithCredential(strings.TrimSpace(string(b)), false))
	}
	conn, err := grpc.NewClient(p.target, opts...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := cachev1.NewCacheServiceClient(conn)
	value := make([]byte, p.valueBytes)
	if p.op == "get" || p.op == "batchget" {
		if err := fill(ctx, c, p, value); err != nil {
			return nil, fmt.Errorf("fill the key space: %w", err)
		}
	}
	return grpcload.Run(ctx, p.load, newOp(c, p, value))
}

func key(i int) string { return fmt.Sprintf("load:%07d", i) }

// fill stores every key of the key space once, a batch at a time.
func fill(ctx context.Context, c cachev1.CacheServiceClient, p params, value []byte) error {
	for from := 0; from < p.keys; from += p.batch {
		entries := make([]*cachev1.Entry, 0, p.batch)
		for i := from; i < min(from+p.batch, p.keys); i++ {
			entries = append(entries, &cachev1.Entry{Key: key(i), Value: value})
		}
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.BatchSet(callCtx, &cachev1.BatchSetRequest{Cache: p.cache, Entries: entries})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// newOp returns the call of p.op; worker w walks the key space from its
// own offset, so that workers spread over it.
func newOp(c cachev1.CacheServiceClient, p params, value []byte) grpcload.Op {
	at := func(w int, seq int64, j int) string {
		return key(int((int64(w)*7919 + seq*int64(p.batch) + int64(j)) % int64(p.keys)))
	}
	switch p.op {
	case "set":
		return func(ctx context.Context, w int, seq int64) error {
			_, err := c.Set(ctx, &cachev1.SetRequest{Cache: p.cache, Key: at(w, seq, 0), Value: value})
			return err
		}
	case "batchget":
		return func(ctx context.Context, w int, seq int64) error {
			keys := make([]string, p.batch)
			for j := range keys {
				keys[j] = at(w, seq, j)
			}
			_, err := c.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: p.cache, Keys: keys})
			return err
		}
	case "batchset":
		return func(ctx context.Context, w int, seq int64) error {
			entries := make([]*cachev1.Entry, p.batch)
			for j := range entries {
				entries[j] = &cachev1.Entry{Key: at(w, seq, j), Value: value}
			}
			_, err := c.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: p.cache, Entries: entries})
			return err
		}
	}
	return func(ctx context.Context, w int, seq int64) error {
		_, err := c.Get(ctx, &cachev1.GetRequest{Cache: p.cache, Key: at(w, seq, 0)})
		return err
	}
}
