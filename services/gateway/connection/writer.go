package connection

import (
	"context"
	"errors"
	"log/slog"
	"os"
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
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The client has not taken a frame within the write
			// timeout: a slow consumer, cut without a close frame.
			c.Close(protocol.CloseSlowConsumer)
			c.drop()
		case err != nil:
			c.Close(0)
		}
	}
}

func (c *Conn) write(batch []item) error {
	for _, it := range batch {
		err := c.ws.WriteText(it.frame) // bounded by the write timeout
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

// armExpiry sets the deadline to the token's expiry plus the grace.
func (c *Conn) armExpiry() {
	c.deadline.Reset(time.Until(c.identity().Expires.Add(c.cfg.ExpiryGrace)))
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
