//go:build !linux

package wsconn

import "net"

// Poller parks connections on Linux only; elsewhere a waiting reader
// holds a goroutine and NewPoller returns nil.
type Poller struct{}

// NewPoller returns nil: Options.Poller nil means no parking.
func NewPoller() (*Poller, error) { return nil, nil }

// Close does nothing.
func (p *Poller) Close() error { return nil }

// Registered returns 0.
func (p *Poller) Registered() int { return 0 }

func (p *Poller) arm(*Conn) error { return nil }
func (p *Poller) remove(*Conn)    {}

func socketFD(net.Conn) int { return -1 }
