//go:build !linux

package main

import (
	"sync"
)

// readLoop reads each of its clients on a goroutine of its own: epoll is
// Linux's, and the figures of docs/benchmarks.md come from Linux.
type readLoop struct {
	rec *recorder
	mu  sync.Mutex // one client's frames at a time, as on Linux
	wg  sync.WaitGroup
}

// newLoops starts n read loops recording into rec; stop ends them once
// their clients are closed.
func newLoops(n int, rec *recorder) (loops []*readLoop, stop func(), err error) {
	for range n {
		loops = append(loops, &readLoop{rec: rec})
	}
	return loops, func() {
		for _, l := range loops {
			l.wg.Wait()
		}
	}, nil
}

func (l *readLoop) add(c *client) error {
	l.wg.Go(func() {
		chunk := make([]byte, 16<<10)
		for {
			l.mu.Lock()
			frames(c, l.rec)
			l.mu.Unlock()
			n, err := c.nc.Read(chunk)
			if err != nil {
				return
			}
			c.buf = append(c.buf, chunk[:n]...)
		}
	})
	return nil
}

// remove does nothing: closing the socket ends its reader.
func (l *readLoop) remove(*client) {}
