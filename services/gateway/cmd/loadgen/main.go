// Command loadgen measures a gateway deployment on loopback: it starts a
// fake auth service and a redis-server of its own, runs gateway replicas
// (as processes of the built binary, or in this process), connects clients
// spread over the replicas, each in its user room and one conversation
// room, publishes through the HTTP publish API at a fixed rate, and prints
// one JSON report: connection rate, deliveries per second, fan-out latency
// percentiles, losses, server CPU per delivery and memory per connection.
// The step mode publishes at rising rates, one step after another over the
// same clients, until the fan-out p99 passes a bound or deliveries are
// lost, and reports the highest rate that held with every step's figures.
//
// It only ever talks to 127.0.0.1, and every phase is bounded in count and
// time.
//
//	go build -o bin/switchboard-gateway ./services/gateway
//	go run ./services/gateway/cmd/loadgen -gateway-bin bin/switchboard-gateway \
//	    -conns 2000 -rooms 200 -rate 1000 -duration 20s
//	go run ./services/gateway/cmd/loadgen -gateway-bin bin/switchboard-gateway \
//	    -mode step -conns 1000 -rooms 100 -step-start 500 -step 500 \
//	    -step-duration 5s -p99-bound 50ms
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

// params are the command's flags.
type params struct {
	mode       string
	gatewayBin string
	replicas   int
	conns      int
	rooms      int
	rate       int
	duration   time.Duration
	payload    int
	connectPar int
	cpuProfile string
	memProfile string
	debug      bool
	step       stepParams
}

func main() {
	var p params
	flag.StringVar(&p.mode, "mode", "fanout", "idle (connect and measure memory), fanout (then publish), storm (connect as fast as possible), recovery (clients on replica 0, killed while publishing; they reconnect to the others and recover), step (publish at rising rates until a step does not hold)")
	flag.StringVar(&p.gatewayBin, "gateway-bin", "", "gateway binary to run as processes; empty: replicas in this process")
	flag.IntVar(&p.replicas, "replicas", 2, "gateway replicas (1-4)")
	flag.IntVar(&p.conns, "conns", 2000, "client connections (1-19000)")
	flag.IntVar(&p.rooms, "rooms", 200, "conversation rooms the connections are spread over")
	flag.IntVar(&p.rate, "rate", 1000, "publishes per second (1-20000)")
	flag.DurationVar(&p.duration, "duration", 20*time.Second, "publishing time (at most 2m)")
	flag.IntVar(&p.payload, "payload", 100, "bytes of each message (40-60000)")
	flag.IntVar(&p.connectPar, "connect-parallel", 32, "connections opened at once (storm: 256)")
	flag.StringVar(&p.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (useful with in-process replicas)")
	flag.StringVar(&p.memProfile, "memprofile", "", "write a heap profile of this process once connected")
	flag.IntVar(&p.step.start, "step-start", 500, "step mode: publishes per second of the first step")
	flag.IntVar(&p.step.step, "step", 500, "step mode: rate added at each step")
	flag.DurationVar(&p.step.duration, "step-duration", 5*time.Second, "step mode: length of each step (at most 30s)")
	flag.DurationVar(&p.step.p99Bound, "p99-bound", 50*time.Millisecond, "step mode: a step whose fan-out p99 exceeds this did not hold")
	flag.IntVar(&p.step.maxRate, "step-max", 20000, "step mode: the last rate tried (at most 50 steps)")
	flag.BoolVar(&p.debug, "debug", false, "gateway processes serve pprof on a loopback port printed to stderr")
	flag.Parse()
	if err := p.check(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.budget())
	defer cancel()
	if p.cpuProfile != "" {
		f, err := os.Create(p.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	rep, err := run(ctx, p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
}

func (p *params) check() error {
	switch {
	case p.mode != "idle" && p.mode != "fanout" && p.mode != "storm" && p.mode != "recovery" && p.mode != "step":
		return errors.New("-mode must be idle, fanout, storm, recovery or step")
	case p.mode == "recovery" && p.replicas < 2:
		return errors.New("-mode recovery needs -replicas 2 or more")
	case p.replicas < 1 || p.replicas > 4:
		return errors.New("-replicas must be 1 to 4")
	case p.conns < 1 || p.conns > 19000:
		return errors.New("-conns must be 1 to 19000")
	case p.rooms < 1 || p.rooms > p.conns:
		return errors.New("-rooms must be 1 to -conns")
	case p.rate < 1 || p.rate > 20000:
		return errors.New("-rate must be 1 to 20000")
	case p.duration <= 0 || p.duration > 2*time.Minute:
		return errors.New("-duration must be above 0 and at most 2m")
	case p.payload < 40 || p.payload > 60000:
		return errors.New("-payload must be 40 to 60000")
	}
	if p.mode == "step" {
		if err := p.step.check(); err != nil {
			return err
		}
	}
	if p.mode == "storm" && p.connectPar == 32 {
		p.connectPar = 256
	}
	return nil
}

// budget bounds the whole run: setup, connections and publishing.
func (p *params) budget() time.Duration {
	publishing := p.duration
	if p.mode == "step" {
		// Each step may wait up to its publishers' timeout and the
		// settling time beyond its length.
		publishing = time.Duration(p.step.count()) * (p.step.duration + 15*time.Second)
	}
	return publishing + 5*time.Minute
}
