package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/netport"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/gateway/gateway"
	"switchboard/services/gateway/internal/fakeauth"
)

const publishCredential = "loadgen-publish-credential"

// replica is one gateway: a process (pid > 0) or in this process.
type replica struct {
	http    string // host:port
	metrics string // host:port of /metrics
	debug   string // host:port of net/http/pprof; empty: not served
	pid     int
	stop    func()
	// kill ends the replica at once: SIGKILL for a process; for one in
	// this process, its Serve is cancelled (it closes its connections
	// over its drain period).
	kill func()
	// restart starts a killed process again with the same configuration,
	// hence on the same addresses; nil for a replica in this process.
	restart func(ctx context.Context) (*replica, error)
}

// freeAddr picks a loopback address for a process this command starts:
// below the ephemeral range, so that a replica restarted by the soak finds
// its address free although the clients' connections come and go.
func freeAddr() (string, error) { return netport.FreeAddr() }

// startRedis runs a redis-server without persistence on a free port.
func startRedis(ctx context.Context) (url string, pid int, stop func(), err error) {
	addr, err := freeAddr()
	if err != nil {
		return "", 0, nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	if err := waitFor(ctx, func() bool { return c.Ping(ctx).Err() == nil }); err != nil {
		stop()
		return "", 0, nil, fmt.Errorf("redis-server did not answer: %w", err)
	}
	return "redis://" + addr, cmd.Process.Pid, stop, nil
}

func waitFor(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func ready(ctx context.Context, addr string) error {
	return waitFor(ctx, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startProcess runs the gateway binary with its configuration. With
// debug it serves pprof on a free loopback port, named on stderr when loud;
// procs above 0 sets its GOMAXPROCS.
func startProcess(ctx context.Context, bin string, fa *fakeauth.Auth, redisURL string, procs int, debug, loud bool) (*replica, error) {
	httpAddr, err1 := freeAddr()
	grpcAddr, err2 := freeAddr()
	metricsAddr, err3 := freeAddr()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	env := []string{
		"GATEWAY_HTTP_ADDR=" + httpAddr, "GATEWAY_GRPC_ADDR=" + grpcAddr,
		"GATEWAY_METRICS_ADDR=" + metricsAddr,
		"AUTH_ADDR=" + fa.Addr, "GATEWAY_AUTH_CREDENTIAL=" + fakeauth.Credential,
		"REDIS_URL=" + redisURL, "GATEWAY_SERVICE_CREDENTIAL=" + publishCredential,
		"GATEWAY_LOG_LEVEL=warn", "GATEWAY_DRAIN=1s",
		"GATEWAY_MAX_CONNECTIONS=100000", "GATEWAY_RATE=1000", "GATEWAY_BURST=1000",
		// Every client of the load generator comes from 127.0.0.1.
		"GATEWAY_MAX_CONNECTIONS_PER_ADDRESS=0",
	}
	if procs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	debugAddr := ""
	if debug {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		if loud {
			fmt.Fprintf(os.Stderr, "loadgen: replica %s serves pprof on http://%s/debug/pprof/\n", httpAddr, addr)
		}
		debugAddr = addr
		env = append(env, "GATEWAY_DEBUG_ADDR="+addr)
	}
	return launch(ctx, bin, env, replica{http: httpAddr, metrics: metricsAddr, debug: debugAddr})
}

// launch starts the binary with env added to this process's environment
// and waits until it is ready on the HTTP address of addrs, which names
// the replica's addresses.
func launch(ctx context.Context, bin string, env []string, addrs replica) (*replica, error) {
	httpAddr := addrs.http
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	if err := ready(ctx, httpAddr); err != nil {
		stop()
		return nil, fmt.Errorf("gateway on %s not ready: %w", httpAddr, err)
	}
	kill := func() {
		cmd.Process.Kill()
		stop()
	}
	restart := func(ctx context.Context) (*replica, error) { return launch(ctx, bin, env, addrs) }
	r := addrs
	r.pid, r.stop, r.kill, r.restart = cmd.Process.Pid, stop, kill, restart
	return &r, nil
}

// startInProcess serves a gateway in this process.
func startInProcess(ctx context.Context, fa *fakeauth.Auth, redisURL string) (*replica, error) {
	conn, err := fa.Dial()
	if err != nil {
		return nil, err
	}
	cfg := gateway.Config{
		RedisURL: redisURL, RedisPrefix: "sb:", ServiceCredential: publishCredential,
		MaxConnections: 100000, MaxPerUser: 20, Drain: time.Second,
		AuthCacheEntries: 100000, AuthCacheTTL: time.Minute, CompressionThreshold: 2048,
	}
	cfg.Conn.Rate, cfg.Conn.Burst = 1000, 1000
	g, err := gateway.New(cfg, gateway.Options{Auth: authv1.NewAuthServiceClient(conn)})
	if err != nil {
		conn.Close()
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		conn.Close()
		return nil, err
	}
	mlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		lis.Close()
		conn.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { g.Serve(sctx, lis, nil, mlis); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done; conn.Close() }) }
	r := &replica{http: lis.Addr().String(), metrics: mlis.Addr().String(), stop: stop, kill: stop}
	if err := ready(ctx, r.http); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// cpuSeconds returns a process's user plus system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// selfCPUSeconds is this process's CPU time.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// rssBytes returns a process's resident set size.
func rssBytes(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return ""
}
