package connection

import (
	"context"
	"log/slog"
	"time"

	"switchboard/libs/gatewayclient/protocol"
)

// flush writes the queue until it is empty, then ends; a closing
// connection's last flusher leaves every room and sends the close frame.
func (c *Conn) flush() {
	defer c.wg.Done()
	for {
		c.qmu.Lock()
		batch, closing, code := c.queue, c.closing, c.closeCode
		c.queue, c.inflight, c.queued = nil, c.queued, 0
		if len(batch) == 0 && !closing {
			c.flushing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()

		if len(batch) == 0 { // closing: flushing stays set, no flusher follows
			c.cleanup()
			c.finish(code)
			return
		}
		err := c.write(batch)
		c.qmu.Lock()
		c.inflight = 0
		c.qmu.Unlock()
		if err != nil {
			c.Close(0)
		}
	}
}

func (c *Conn) write(batch []item) error {
	for _, it := range batch {
		// writeTimer bounds the write: one timer per connection, rather
		// than a deadline armed per write.
		c.writeTimer.Reset(c.cfg.WriteTimeout)
		err := c.ws.WriteText(it.frame)
		c.writeTimer.Stop()
		if err != nil {
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
	if l := c.deps.Logger; l.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug("connection closed", "code", int(code), "reason", code.Reason())
	}
	if code == 0 || c.cut.Load() {
		c.ws.CloseNow()
		return
	}
	c.ws.Close(uint16(code), code.Reason())
}

// armExpiry sets the expiry timer to the token's expiry plus the grace.
func (c *Conn) armExpiry() {
	c.expiryTimer.Reset(time.Until(c.identity().Expires.Add(c.cfg.ExpiryGrace)))
}

// checkExpiry closes the connection if its token expired more than the
// grace ago; a refresh may have moved the expiry since the timer was set.
func (c *Conn) checkExpiry() {
	if time.Now().Before(c.identity().Expires.Add(c.cfg.ExpiryGrace)) {
		c.armExpiry()
		return
	}
	c.Close(protocol.CloseTokenExpired)
}

// ping sends a protocol ping from the timer's goroutine and schedules the
// next; no pong within the timeout closes the connection.
func (c *Conn) ping() {
	c.qmu.Lock()
	if c.closing {
		c.qmu.Unlock()
		return
	}
	c.wg.Add(1)
	c.qmu.Unlock()
	defer c.wg.Done()

	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.PingTimeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		c.Close(protocol.CloseNoPong)
		return
	}
	c.pingTimer.Reset(c.cfg.PingInterval)
}
