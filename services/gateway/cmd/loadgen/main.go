// Command loadgen measures a gateway deployment on loopback: it starts a
// fake auth service and a redis-server of its own, runs gateway replicas
// (as processes of the built binary, or in this process), connects clients
// spread over the replicas, each in its user room and one conversation
// room, publishes through the HTTP publish API at a fixed rate, and prints
// one JSON report: connection rate, deliveries per second, fan-out latency
// percentiles, losses and duplicates, server CPU per delivery and memory
// per connection.
// The step mode publishes at rising rates, one step after another over the
// same clients, until the fan-out p99 passes a bound or deliveries are
// lost, and reports the highest rate that held with every step's figures.
// The soak mode (soak.go) runs gateway processes under churn (clients
// connecting, joining, publishing, leaving and closing over and over) with
// faults in between (a replica SIGKILLed and restarted, the pub/sub
// connections killed in Redis, Redis stopped briefly), and fails unless
// every acknowledged message reached the clients that stayed and each
// process's goroutines, open file descriptors and heap come back to its
// baseline; its report is printed either way.
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
//	go run ./services/gateway/cmd/loadgen -gateway-bin bin/switchboard-gateway \
//	    -mode soak -conns 200 -rooms 20 -duration 30s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
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
	procs      int // GOMAXPROCS of each gateway process; 0: the Go default
	perProcess int // connections this process holds; 0: clientsPerProcess (tests set fewer)
	step       stepParams
	soak       soakParams
}

func main() {
	var p params
	flag.StringVar(&p.mode, "mode", "fanout", "idle (connect and measure memory), fanout (then publish), storm (connect as fast as possible), recovery (clients on replica 0, killed while publishing; they reconnect to the others and recover), step (publish at rising rates until a step does not hold), soak (churn and faults; fails unless every acknowledged message arrived and the gateway processes' goroutines, fds and heap came back to their baselines)")
	flag.StringVar(&p.gatewayBin, "gateway-bin", "", "gateway binary to run as processes; empty: replicas in this process")
	flag.IntVar(&p.replicas, "replicas", 2, "gateway replicas (1-4)")
	flag.IntVar(&p.conns, "conns", 2000, "client connections (1-19000; idle and storm: 1-38000, those past 19000 held by a helper process)")
	flag.IntVar(&p.rooms, "rooms", 200, "conversation rooms the connections are spread over")
	flag.IntVar(&p.rate, "rate", 1000, "publishes per second (1-20000); soak: the most churn publishes a second")
	flag.DurationVar(&p.duration, "duration", 20*time.Second, "publishing time (at most 2m); soak: churn time (at most 30m)")
	flag.IntVar(&p.payload, "payload", 100, "bytes of each message (40-60000)")
	flag.IntVar(&p.connectPar, "connect-parallel", 32, "connections opened at once (storm: 256)")
	flag.StringVar(&p.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (useful with in-process replicas)")
	flag.StringVar(&p.memProfile, "memprofile", "", "write a heap profile of this process once connected")
	flag.IntVar(&p.step.start, "step-start", 500, "step mode: publishes per second of the first step")
	flag.IntVar(&p.step.step, "step", 500, "step mode: rate added at each step")
	flag.DurationVar(&p.step.duration, "step-duration", 5*time.Second, "step mode: length of each step (at most 30s)")
	flag.DurationVar(&p.step.p99Bound, "p99-bound", 50*time.Millisecond, "step mode: a step whose fan-out p99 exceeds this did not hold")
	flag.IntVar(&p.step.maxRate, "step-max", 20000, "step mode: the last rate tried (at most 50 steps)")
	flag.IntVar(&p.soak.churn, "soak-churn", 16, "soak mode: churn clients at once")
	flag.DurationVar(&p.soak.faultEvery, "soak-fault-every", 5*time.Second, "soak mode: one fault per period, in turn: replica SIGKILL, pub/sub connections killed, Redis SIGSTOP")
	flag.DurationVar(&p.soak.redisPause, "soak-redis-pause", 500*time.Millisecond, "soak mode: how long Redis is stopped (at most 3s); 0: never")
	flag.DurationVar(&p.soak.settle, "soak-settle", 20*time.Second, "soak mode: longest wait for a replica's baseline, and at the end for its return to it")
	flag.IntVar(&p.procs, "replica-procs", 0, "GOMAXPROCS of each gateway process (a replica's share of the cores, as a CPU limit of 1 gives it in a container); 0: the Go default, every core")
	flag.BoolVar(&p.debug, "debug", false, "gateway processes serve pprof on a loopback port printed to stderr")
	flag.Parse()
	if holderMain() {
		return
	}
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
	if rep != nil {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func (p *params) check() error {
	switch {
	case !slices.Contains([]string{"idle", "fanout", "storm", "recovery", "step", "soak"}, p.mode):
		return errors.New("-mode must be idle, fanout, storm, recovery, step or soak")
	case p.mode == "recovery" && p.replicas < 2:
		return errors.New("-mode recovery needs -replicas 2 or more")
	case p.replicas < 1 || p.replicas > 4:
		return errors.New("-replicas must be 1 to 4")
	case p.procs < 0 || p.procs > 64:
		return errors.New("-replica-procs must be 0 to 64")
	case p.conns < 1 || p.conns > p.maxConns():
		return fmt.Errorf("-conns must be 1 to %d in mode %s", p.maxConns(), p.mode)
	case p.rooms < 1 || p.rooms > p.conns:
		return errors.New("-rooms must be 1 to -conns")
	case p.rate < 1 || p.rate > 20000:
		return errors.New("-rate must be 1 to 20000")
	case p.duration <= 0 || p.duration > p.maxDuration():
		return fmt.Errorf("-duration must be above 0 and at most %v", p.maxDuration())
	case p.payload < 40 || p.payload > 60000:
		return errors.New("-payload must be 40 to 60000")
	}
	if p.mode == "step" {
		if err := p.step.check(); err != nil {
			return err
		}
	}
	if p.mode == "soak" {
		if err := p.soak.check(p); err != nil {
			return err
		}
	}
	if p.mode == "storm" && p.connectPar == 32 {
		p.connectPar = 256
	}
	return nil
}

// maxConns is what one process may hold, or two in the modes that
// publish nothing (a holder process keeps the rest).
func (p *params) maxConns() int {
	if p.mode == "idle" || p.mode == "storm" {
		return 2 * p.ownConns()
	}
	return p.ownConns()
}

// ownConns is how many connections this process holds at most.
func (p *params) ownConns() int {
	if p.perProcess > 0 {
		return p.perProcess
	}
	return clientsPerProcess
}

func (p *params) maxDuration() time.Duration {
	if p.mode == "soak" {
		return maxSoakDuration
	}
	return 2 * time.Minute
}

// budget bounds the whole run: setup, connections and publishing.
func (p *params) budget() time.Duration {
	publishing := p.duration
	if p.mode == "step" {
		// Each step may wait up to its publishers' timeout and the
		// settling time beyond its length.
		publishing = time.Duration(p.step.count()) * (p.step.duration + 15*time.Second)
	}
	if p.mode == "soak" {
		// The last fault may restart a replica after the churn ends,
		// whose baseline, like the end, may take the settle time.
		publishing += 3 * p.soak.settle
	}
	return publishing + 5*time.Minute
}
