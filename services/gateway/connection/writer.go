package connection

import (
	"context"
	"time"

	"github.com/coder/websocket"

	"switchboard/libs/gatewayclient/protocol"
)

// writer writes the queue, pings the peer and enforces the token's expiry
// until the connection closes; then it sends the close frame.
func (c *Conn) writer(ctx context.Context) {
	defer c.wg.Done()
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	armed := false

	for {
		select {
		case <-ctx.Done():
			c.ws.CloseNow()
			return
		case <-c.wake:
		case <-c.renewed:
			armed = false
		case <-ping.C:
			c.startPing(ctx)
			continue
		case <-expiry.C:
			if c.expired() {
				c.Close(protocol.CloseTokenExpired)
			} else {
				armed = false
			}
		}
		if !armed {
			armed = c.arm(expiry)
		}
		if done := c.flush(); done {
			return
		}
	}
}

// arm sets the expiry timer to the token's expiry plus the grace, once the
// connection is authenticated, and reports whether it did.
func (c *Conn) arm(t *time.Timer) bool {
	id := c.identity()
	if id.User == "" {
		return false
	}
	t.Reset(time.Until(id.Expires.Add(c.cfg.ExpiryGrace)))
	return true
}

func (c *Conn) expired() bool {
	return !time.Now().Before(c.identity().Expires.Add(c.cfg.ExpiryGrace))
}

// flush writes everything queued. When the connection is closing it sends
// the close frame and reports true.
func (c *Conn) flush() bool {
	for {
		c.qmu.Lock()
		batch, closing, code := c.queue, c.closing, c.closeCode
		c.queue, c.queued = nil, 0
		c.qmu.Unlock()

		if len(batch) == 0 && closing {
			c.cleanup() // no more fan-out to a closing connection
			c.finish(code)
			return true
		}
		if len(batch) == 0 {
			return false
		}
		if err := c.write(batch); err != nil {
			c.Close(0)
		}
	}
}

func (c *Conn) write(batch []item) error {
	for _, it := range batch {
		ctx, cancel := context.WithTimeout(c.writeCtx, c.cfg.WriteTimeout)
		err := c.ws.Write(ctx, websocket.MessageText, it.frame)
		cancel()
		if err != nil {
			if c.writeCtx.Err() == nil && ctx.Err() != nil {
				c.Close(protocol.CloseSlowConsumer)
			}
			return err
		}
		c.deps.Metrics.MessagesOut.Inc()
		c.deps.Metrics.BytesOut.Add(float64(len(it.frame)))
		if !it.published.IsZero() {
			c.deps.Metrics.WriteLatency.Observe(time.Since(it.published).Seconds())
		}
	}
	return nil
}

// finish sends the close frame with code, or drops the connection when
// code is 0 (the peer is gone) or the connection was cut.
func (c *Conn) finish(code protocol.CloseCode) {
	if code == 0 || c.writeCtx.Err() != nil {
		c.ws.CloseNow()
		return
	}
	c.ws.Close(websocket.StatusCode(code), code.Reason())
}

// startPing sends a protocol ping on a short-lived goroutine, unless the
// connection is closing; no pong within the timeout closes the connection.
func (c *Conn) startPing(ctx context.Context) {
	if c.isClosing() {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		pctx, cancel := context.WithTimeout(ctx, c.cfg.PingTimeout)
		defer cancel()
		if err := c.ws.Ping(pctx); err != nil && ctx.Err() == nil {
			c.Close(protocol.CloseNoPong)
		}
	}()
}
