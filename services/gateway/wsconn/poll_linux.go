package wsconn

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
)

// Poller holds parked connections in one epoll set and resumes each when
// its socket becomes readable or hangs up. Every socket is armed for one
// event at a time (EPOLLONESHOT, level-triggered): Park arms it, the
// event disarms it, so a resumed connection is never resumed twice, and
// bytes that arrived before Park are reported at once.
//
// The Go runtime keeps its own epoll registration of the same sockets
// for the reads and writes it makes; this set only tells when to start
// reading.
type Poller struct {
	epfd int
	wake [2]int // a pipe whose read end, in the set, ends the loop

	// mu guards the set as well as the map: no descriptor is added,
	// changed or removed once Close has begun.
	mu     sync.Mutex
	conns  map[uint64]*Conn // by registration id, never reused
	next   uint64
	closed bool
	done   chan struct{}
}

// wakeID marks the pipe's event; connection ids start above it.
const wakeID = 0

// NewPoller creates the epoll set and starts its loop; Close stops it.
func NewPoller() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("wsconn: epoll_create1: %w", err)
	}
	p := &Poller{epfd: epfd, conns: make(map[uint64]*Conn), done: make(chan struct{})}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("wsconn: pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setID(&ev, wakeID)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("wsconn: epoll_ctl: %w", err)
	}
	go p.loop()
	return p, nil
}

// Close stops the loop. Connections still parked stay parked (close them
// first); a later Park resumes at once.
func (p *Poller) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	syscall.Write(p.wake[1], []byte{0})
	<-p.done
	return p.closeFDs()
}

// errPollerClosed makes Park resume at once.
var errPollerClosed = errors.New("wsconn: poller closed")

func (p *Poller) closeFDs() error {
	return errors.Join(syscall.Close(p.epfd), syscall.Close(p.wake[0]), syscall.Close(p.wake[1]))
}

// Registered returns how many connections the poller knows: parked, or
// resumed and being read.
func (p *Poller) Registered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *Poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			panic(fmt.Sprintf("wsconn: epoll_wait: %v", err)) // a bad descriptor: a bug here
		}
		for i := range events[:n] {
			id := getID(&events[i])
			if id == wakeID {
				return
			}
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil {
				c.wake()
			}
		}
	}
}

// arm registers c's socket for one readability event. Caller holds c.mu,
// and c is not closed, so the descriptor is open.
func (p *Poller) arm(c *Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPollerClosed
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	op := syscall.EPOLL_CTL_MOD
	if c.id == 0 {
		p.next++
		c.id = p.next
		p.conns[c.id] = c
		op = syscall.EPOLL_CTL_ADD
	}
	setID(&ev, c.id)
	if err := syscall.EpollCtl(p.epfd, op, c.fd, &ev); err != nil {
		return fmt.Errorf("wsconn: epoll_ctl: %w", err)
	}
	return nil
}

// remove takes c's socket out of the set, before it is closed. Caller
// holds c.mu.
func (p *Poller) remove(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c.id)
	if !p.closed {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	}
}

// setID and getID keep a registration id in the event's data, which the
// kernel hands back unchanged.
func setID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func getID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// socketFD returns the descriptor of a TCP or Unix socket, or -1.
func socketFD(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd = int(s) }) != nil {
		return -1
	}
	return fd
}
