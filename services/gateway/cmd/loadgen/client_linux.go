package main

import (
	"errors"
	"sync"
	"syscall"
)

// readLoop reads its clients' frames as their sockets become readable and
// records the messages.
type readLoop struct {
	epfd int
	rec  *recorder
	done chan struct{}

	mu      sync.Mutex
	clients map[int]*client // by descriptor
	stopped bool
}

// newLoops starts n read loops recording into rec; stop ends them.
func newLoops(n int, rec *recorder) (loops []*readLoop, stop func(), err error) {
	for range n {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			for _, l := range loops {
				l.stop()
			}
			return nil, nil, err
		}
		l := &readLoop{epfd: epfd, rec: rec, done: make(chan struct{}), clients: make(map[int]*client)}
		go l.run()
		loops = append(loops, l)
	}
	return loops, func() {
		for _, l := range loops {
			l.stop()
		}
	}, nil
}

func (l *readLoop) add(c *client) error {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	rc.Control(func(fd uintptr) { c.fd = int(fd) })
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return errors.New("the read loop has stopped")
	}
	l.clients[c.fd] = c
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		delete(l.clients, c.fd)
		return err
	}
	if len(c.buf) > 0 { // frames that came with the join's reply
		frames(c, l.rec)
	}
	return nil
}

// remove takes c out of the loop before its socket closes.
func (l *readLoop) remove(c *client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients[c.fd] == c {
		delete(l.clients, c.fd)
		if !l.stopped {
			syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
		}
	}
}

func (l *readLoop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	<-l.done
	syscall.Close(l.epfd)
}

// run waits for readable sockets, reads what they hold and records the
// messages, until stopped (it looks every 100 ms).
func (l *readLoop) run() {
	defer close(l.done)
	events := make([]syscall.EpollEvent, 128)
	chunk := make([]byte, 64<<10)
	for {
		n, err := syscall.EpollWait(l.epfd, events, 100)
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if c := l.clients[int(ev.Fd)]; c != nil {
				l.drain(c, chunk)
			}
		}
		l.mu.Unlock()
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// drain reads what c's socket holds, then handles its whole frames.
// Caller holds l.mu.
func (l *readLoop) drain(c *client, chunk []byte) {
	for {
		n, err := syscall.Read(c.fd, chunk)
		if n > 0 {
			c.buf = append(c.buf, chunk[:n]...)
		}
		if n <= 0 || err != nil || n < len(chunk) {
			if n == 0 || (err != nil && !errors.Is(err, syscall.EAGAIN)) {
				// The server closed: the loop stops watching it.
				delete(l.clients, c.fd)
				syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
			}
			break
		}
	}
	frames(c, l.rec)
}
