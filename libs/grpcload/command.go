package grpcload

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

// Flags registers -concurrency, -requests and -duration on fs, with the
// defaults every load command shares, filling o.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.IntVar(&o.Concurrency, "concurrency", 16, "calls in flight at once")
	fs.Int64Var(&o.Requests, "requests", 1_000_000, "stop after this many calls")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "stop after this long")
}

// Main is the body of a load command named name: check the parsed flags
// (exit 2 when they are wrong), run with a context cancelled on interrupt
// (exit 1 when the run fails), and print the report as indented JSON.
func Main(name string, check func() error, run func(ctx context.Context) (any, error)) {
	if err := check(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
}
