// Command tcpfloor measures what one small write on a loopback TCP
// connection costs the writing process, in CPU time: the floor under the
// gateway's server CPU per delivered message, which writes each delivery
// to its connection with one system call.
//
// It opens -conns connections to a reader process of its own (this binary
// re-run with -reader, so that the readers' CPU is not counted), then
// writes -payload bytes at -rate writes a second, round-robin over the
// connections, for -duration, and prints the writer's user and system CPU
// per write as JSON. Loopback only; bounded in connections, rate and time.
//
// On loopback the kernel runs the receiving side's TCP processing and the
// reader's wake-up in the writer's system call, so the figure includes
// them, as the gateway's own CPU figures do.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

type params struct {
	conns    int
	rate     int
	duration time.Duration
	payload  int
}

type report struct {
	Connections    int     `json:"connections"`
	Rate           int     `json:"rate"`
	PayloadBytes   int     `json:"payload_bytes"`
	Writes         int     `json:"writes"`
	Seconds        float64 `json:"seconds"`
	UserCPUSeconds float64 `json:"user_cpu_seconds"`
	SysCPUSeconds  float64 `json:"sys_cpu_seconds"`
	CPUMicrosPer   float64 `json:"cpu_us_per_write"`
	SysMicrosPer   float64 `json:"sys_us_per_write"`
	GoVersion      string  `json:"go_version"`
	CPUs           int     `json:"cpus"`
}

func main() {
	var p params
	reader := flag.String("reader", "", "internal: run as the reader process, dialing this address")
	flag.IntVar(&p.conns, "conns", 2000, "connections (1-10000)")
	flag.IntVar(&p.rate, "rate", 10000, "writes per second (1000-100000)")
	flag.DurationVar(&p.duration, "duration", 10*time.Second, "writing time (at most 1m)")
	flag.IntVar(&p.payload, "payload", 180, "bytes of each write (1-65536): a ~100-byte message with its JSON envelope and frame header")
	flag.Parse()

	if err := p.check(); err != nil {
		fmt.Fprintln(os.Stderr, "tcpfloor:", err)
		os.Exit(2)
	}
	var err error
	if *reader != "" {
		err = read(*reader, p.conns)
	} else {
		err = run(p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpfloor:", err)
		os.Exit(1)
	}
}

func (p params) check() error {
	switch {
	case p.conns < 1 || p.conns > 10000:
		return errors.New("-conns must be 1 to 10000")
	case p.rate < 1000 || p.rate > 100000:
		return errors.New("-rate must be 1000 to 100000")
	case p.duration <= 0 || p.duration > time.Minute:
		return errors.New("-duration must be positive and at most 1m")
	case p.payload < 1 || p.payload > 65536:
		return errors.New("-payload must be 1 to 65536")
	}
	return nil
}

// read dials n connections to addr and discards what arrives until the
// writer closes them, or its standard input closes.
func read(addr string, n int) error {
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		go io.Copy(io.Discard, c)
	}
	fmt.Println("connected")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

func run(p params) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	child, err := startReader(ln.Addr().String(), p.conns)
	if err != nil {
		return err
	}
	defer child.stop()

	conns, err := accept(ln, p.conns)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	if err := child.connected(); err != nil {
		return err
	}
	rep, err := write(conns, p)
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(out))
	return nil
}

type readerProc struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   *bufio.Reader
}

func startReader(addr string, n int) (*readerProc, error) {
	cmd := exec.Command(os.Args[0], "-reader", addr, "-conns", fmt.Sprint(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &readerProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}, nil
}

// connected waits for the reader to report every connection made.
func (r *readerProc) connected() error {
	line, err := r.out.ReadString('\n')
	if err != nil || line != "connected\n" {
		return fmt.Errorf("reader did not connect: %q %v", line, err)
	}
	return nil
}

func (r *readerProc) stop() {
	r.stdin.Close()
	r.cmd.Wait()
}

func accept(ln net.Listener, n int) ([]net.Conn, error) {
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Minute))
	conns := make([]net.Conn, 0, n)
	for len(conns) < n {
		c, err := ln.Accept()
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// write paces the writes in 1 ms ticks, catching up after a late tick, and
// measures this process's CPU over them.
func write(conns []net.Conn, p params) (report, error) {
	msg := make([]byte, p.payload)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()

	user0, sys0 := cpuTimes()
	start, writes := time.Now(), 0
	for elapsed := time.Duration(0); elapsed < p.duration; elapsed = time.Since(start) {
		<-tick.C
		due := int(elapsed.Seconds() * float64(p.rate)) // catches up on late ticks
		for ; writes < due; writes++ {
			if _, err := conns[writes%len(conns)].Write(msg); err != nil {
				return report{}, err
			}
		}
	}
	user1, sys1 := cpuTimes()
	user, sys := (user1 - user0).Seconds(), (sys1 - sys0).Seconds()
	return report{
		Connections: len(conns), Rate: p.rate, PayloadBytes: p.payload,
		Writes: writes, Seconds: time.Since(start).Seconds(),
		UserCPUSeconds: user, SysCPUSeconds: sys,
		CPUMicrosPer: (user + sys) * 1e6 / float64(writes),
		SysMicrosPer: sys * 1e6 / float64(writes),
		GoVersion:    runtime.Version(), CPUs: runtime.NumCPU(),
	}, nil
}

func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
