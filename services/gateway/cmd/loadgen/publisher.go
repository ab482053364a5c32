package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// publisher posts messages to /v1/publish over keep-alive HTTP/1.1
// connections of its own, each written and read by the goroutine that
// publishes. net/http's client hands every request to the connection's
// writing goroutine and the answer back from its reading one; at 5,000
// publishes a second those hand-offs took about a third of the load
// generator's CPU, which the gateways it measures share the cores with.
// The requests on the wire are the same, and as with net/http's client a
// publish takes the connection to its replica used last (idle ones are
// a stack), so a low rate keeps to a few connections. It is safe for
// concurrent use.
type publisher struct {
	mu   sync.Mutex
	idle map[string][]*pubConn // by replica address, the last used on top
}

type pubConn struct {
	nc  net.Conn
	br  *bufio.Reader
	req []byte // the request being written, reused
}

// publishTimeout bounds one publish, from writing the request to reading
// the end of the answer.
const publishTimeout = 10 * time.Second

func newPublisher() *publisher { return &publisher{idle: make(map[string][]*pubConn)} }

// publish posts {"room": room, "data": data} to the replica at addr with
// the publish credential, and the idempotency key key unless it is empty,
// and reports whether it answered 200. A failed call closes its
// connection.
func (p *publisher) publish(addr, room, key string, data []byte) bool {
	c, err := p.conn(addr)
	if err != nil {
		return false
	}
	body := len(`{"room":"","data":}`) + len(room) + len(data)
	if key != "" {
		body += len(`,"idempotency_key":""`) + len(key)
	}
	b := append(c.req[:0], "POST /v1/publish HTTP/1.1\r\nHost: "...)
	b = append(b, addr...)
	b = append(b, "\r\nAuthorization: Bearer "+publishCredential+"\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(body), 10)
	b = append(b, "\r\n\r\n"+`{"room":"`...)
	b = append(b, room...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	if key != "" {
		b = append(b, `,"idempotency_key":"`...)
		b = append(b, key...)
		b = append(b, '"')
	}
	b = append(b, '}')
	c.req = b

	c.nc.SetDeadline(time.Now().Add(publishTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close()
		return false
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.nc.Close()
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.nc.Close()
	} else {
		p.put(addr, c)
	}
	return err == nil && resp.StatusCode == http.StatusOK
}

// conn takes addr's connection used last, or dials one.
func (p *publisher) conn(addr string) (*pubConn, error) {
	p.mu.Lock()
	if idle := p.idle[addr]; len(idle) > 0 {
		c := idle[len(idle)-1]
		p.idle[addr] = idle[:len(idle)-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	nc, err := net.DialTimeout("tcp", addr, publishTimeout)
	if err != nil {
		return nil, err
	}
	return &pubConn{nc: nc, br: bufio.NewReader(nc)}, nil
}

func (p *publisher) put(addr string, c *pubConn) {
	p.mu.Lock()
	p.idle[addr] = append(p.idle[addr], c)
	p.mu.Unlock()
}

// close closes the idle connections; call it once no publish runs.
func (p *publisher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, idle := range p.idle {
		for _, c := range idle {
			c.nc.Close()
		}
		delete(p.idle, addr)
	}
}

// appendPayload appends a message of the fan-out and recovery runs: its
// sequence number, the send time in unix nanoseconds (what the clients
// measure latency from) and, unless pad is empty, padding to the payload
// size.
func appendPayload(b []byte, seq int64, pad string) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	if pad != "" {
		b = append(b, `,"pad":"`...)
		b = append(b, pad...)
		b = append(b, '"')
	}
	return append(b, '}')
}
