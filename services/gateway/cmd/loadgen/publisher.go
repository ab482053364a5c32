package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// publisher posts messages to /v1/publish over keep-alive HTTP/1.1
// connections of its own, one per replica, each written and read by the
// goroutine that publishes. net/http's client hands every request to the
// connection's writing goroutine and the answer back from its reading
// one; at 5,000 publishes a second those hand-offs took about a third of
// the load generator's CPU, which the gateways it measures share the
// cores with. The requests on the wire are the same. A publisher is used
// by one goroutine at a time.
type publisher struct {
	conns map[string]*pubConn // by replica address
	req   []byte              // the request being written, reused
}

type pubConn struct {
	nc net.Conn
	br *bufio.Reader
}

// publishTimeout bounds one publish, from writing the request to reading
// the end of the answer.
const publishTimeout = 10 * time.Second

func newPublisher() *publisher { return &publisher{conns: make(map[string]*pubConn)} }

// publish posts {"room": room, "data": data} to the replica at addr with
// the publish credential and reports whether it answered 200. A failed
// call drops the connection; the next call to addr dials again.
func (p *publisher) publish(addr, room string, data []byte) bool {
	c, err := p.conn(addr)
	if err != nil {
		return false
	}
	body := len(`{"room":"","data":}`) + len(room) + len(data)
	b := append(p.req[:0], "POST /v1/publish HTTP/1.1\r\nHost: "...)
	b = append(b, addr...)
	b = append(b, "\r\nAuthorization: Bearer "+publishCredential+"\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(body), 10)
	b = append(b, "\r\n\r\n"+`{"room":"`...)
	b = append(b, room...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	b = append(b, '}')
	p.req = b

	c.nc.SetDeadline(time.Now().Add(publishTimeout))
	if _, err := c.nc.Write(b); err != nil {
		p.drop(addr)
		return false
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		p.drop(addr)
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		p.drop(addr)
	}
	return err == nil && resp.StatusCode == http.StatusOK
}

func (p *publisher) conn(addr string) (*pubConn, error) {
	if c := p.conns[addr]; c != nil {
		return c, nil
	}
	nc, err := net.DialTimeout("tcp", addr, publishTimeout)
	if err != nil {
		return nil, err
	}
	c := &pubConn{nc: nc, br: bufio.NewReader(nc)}
	p.conns[addr] = c
	return c, nil
}

func (p *publisher) drop(addr string) {
	if c := p.conns[addr]; c != nil {
		c.nc.Close()
		delete(p.conns, addr)
	}
}

// close closes every connection.
func (p *publisher) close() {
	for addr := range p.conns {
		p.drop(addr)
	}
}

// appendPayload appends a message of the fan-out runs: its sequence
// number, the send time in unix nanoseconds (what the clients measure
// latency from) and padding to the payload size.
func appendPayload(b []byte, seq int64, pad string) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	b = append(b, `,"pad":"`...)
	b = append(b, pad...)
	return append(b, `"}`...)
}
