package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
)

// clientsPerProcess is how many client connections one process holds: the
// open-file limit here is 20,000 a process, and the load generator needs
// some descriptors of its own. In the idle and storm modes, the clients
// past it are opened by a helper process (the same executable, started
// with holderEnv set), so a run can hold more connections than one
// process may open.
const clientsPerProcess = 19000

// holderEnv, set to the connections to open at once, makes the process a
// holder.
const holderEnv = "LOADGEN_HOLDER"

// dial is one connection to open.
type dial struct{ addr, token, room string }

// dialAll opens the connections, parallel at a time, each read by one of
// the loops; a connection that failed is nil in clients and counted.
// Client i is the recorder's client i.
func dialAll(ctx context.Context, dials []dial, parallel int, loops []*readLoop) (clients []*client, failed int64) {
	clients = make([]*client, len(dials))
	var failures atomic.Int64
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, d := range dials {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialClient(ctx, d.addr, d.token, d.room, i, loops[i%len(loops)])
			if err != nil {
				failures.Add(1)
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	return clients, failures.Load()
}

// holder is a helper process holding connections until stopped.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startHolder starts a helper process, hands it the connections to open
// and waits until it has opened them; it returns how many failed.
func startHolder(ctx context.Context, dials []dial, parallel int) (*holder, int64, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", holderEnv, parallel))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start the holder: %w", err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	w := bufio.NewWriter(stdin)
	fmt.Fprintln(w, len(dials))
	for _, d := range dials {
		fmt.Fprintln(w, d.addr, d.token, d.room)
	}
	var failed int64
	werr := w.Flush()
	if _, err := fmt.Fscanln(stdout, &failed); err != nil || werr != nil {
		h.stop()
		return nil, 0, errors.Join(errors.New("the holder did not report its connections"), err, werr)
	}
	return h, failed, nil
}

// stop closes the holder's connections and waits for it to exit.
func (h *holder) stop() {
	h.stdin.Close()
	h.cmd.Wait()
}

// holderMain runs the process as a holder when holderEnv is set, and
// reports whether it did.
func holderMain() bool {
	v, ok := os.LookupEnv(holderEnv)
	if !ok {
		return false
	}
	parallel, err := strconv.Atoi(v)
	if err == nil && parallel < 1 {
		err = errors.New("not positive")
	}
	if err == nil {
		err = hold(context.Background(), parallel)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen holder: %v\n", err)
		os.Exit(1)
	}
	return true
}

// hold is the helper process's side: it reads a count and that many
// "addr token room" lines from stdin, opens the connections, prints how
// many failed, and holds them until stdin closes.
func hold(ctx context.Context, parallel int) error {
	in := bufio.NewReader(os.Stdin)
	var n int
	if _, err := fmt.Fscanln(in, &n); err != nil || n < 0 || n > clientsPerProcess {
		return fmt.Errorf("hold: a count of at most %d first: %v", clientsPerProcess, err)
	}
	dials := make([]dial, n)
	for i := range dials {
		d := &dials[i]
		if _, err := fmt.Fscanln(in, &d.addr, &d.token, &d.room); err != nil {
			return fmt.Errorf("hold: connection %d: %w", i, err)
		}
	}
	loops, stopLoops, err := newLoops(1, newRecorder())
	if err != nil {
		return err
	}
	defer stopLoops()
	clients, failed := dialAll(ctx, dials, parallel, loops)
	fmt.Println(failed)
	io.Copy(io.Discard, in) // until the parent closes stdin
	for _, c := range clients {
		if c != nil {
			c.Close()
		}
	}
	return nil
}
