package broker

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// publishPipeline sends the publish scripts that wait at the same time to
// Redis together, as one pipeline on one connection: one write and one
// read in the replica, one read of them all and one write of their
// replies in Redis, where each publish on a connection of its own costs a
// read and a write on both sides. A publish that finds none in flight
// goes out at once and alone, so a replica that publishes rarely waits
// for nothing; the publishes that arrive while one is out queue, and
// leave together as soon as it is back. Under load that is most of them.
// A publish thus waits for at most one round trip before it is sent.
type publishPipeline struct {
	client pipelineClient

	mu      sync.Mutex
	running bool           // a publish or a pipeline is out
	queue   []*publishCall // waiting for it
}

// pipelineClient is a *redis.Client or a *redis.ClusterClient, whose
// pipelines are split by node.
type pipelineClient interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

// publishCall is one run of the publish script.
type publishCall struct {
	ctx  context.Context
	keys []string
	args []any

	res  []any
	err  error
	done chan struct{} // closed when res and err are set; nil for the call sent at once
}

// maxPipeline bounds the publishes sent as one pipeline.
const maxPipeline = 64

func newPublishPipeline(c pipelineClient) *publishPipeline { return &publishPipeline{client: c} }

// run runs the publish script with keys and args and returns its reply.
// An error means the publish may or may not have run, as for a command of
// its own.
func (p *publishPipeline) run(ctx context.Context, keys []string, args []any) ([]any, error) {
	c := &publishCall{ctx: ctx, keys: keys, args: args}
	p.mu.Lock()
	if p.running {
		c.done = make(chan struct{})
		p.queue = append(p.queue, c)
		p.mu.Unlock()
		select {
		case <-c.done:
			return c.res, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p.running = true
	p.mu.Unlock()

	p.send([]*publishCall{c})
	// What queued meanwhile leaves from a goroutine of its own, so that
	// this caller answers its client now.
	if batch := p.next(); batch != nil {
		go p.drain(batch)
	}
	return c.res, c.err
}

// next takes the next batch off the queue, or marks nothing in flight
// and returns nil when the queue is empty.
func (p *publishPipeline) next() []*publishCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.queue), maxPipeline)
	if n == 0 {
		p.running = false
		return nil
	}
	batch := p.queue[:n:n]
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil // the next queue starts a new array; batch keeps this one
	}
	return batch
}

// drain sends batches until the queue is empty.
func (p *publishPipeline) drain(batch []*publishCall) {
	for ; batch != nil; batch = p.next() {
		p.send(batch)
	}
}

// send runs batch's scripts, those whose callers have not given up, and
// sets every call's reply.
func (p *publishPipeline) send(batch []*publishCall) {
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.finish(nil, err)
			continue
		}
		live = append(live, c)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		c := live[0]
		c.finish(publishScript.Run(c.ctx, p.client, c.keys, c.args...).Slice())
		return
	}

	ctx, cancel := batchContext(live)
	defer cancel()
	pipe := p.client.Pipeline()
	cmds := make([]*redis.Cmd, len(live))
	for i, c := range live {
		cmds[i] = publishScript.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	pipe.Exec(ctx) // each command carries its own error
	for i, c := range live {
		res, err := cmds[i].Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Redis lost its script cache (a restart, SCRIPT FLUSH): the
			// script did not run. Run loads it again.
			res, err = publishScript.Run(ctx, p.client, c.keys, c.args...).Slice()
		}
		c.finish(res, err)
	}
}

func (c *publishCall) finish(res []any, err error) {
	c.res, c.err = res, err
	if c.done != nil {
		close(c.done)
	}
}

// batchContext bounds a pipeline by the latest deadline of its calls, so
// that no caller's publish is cut before its own deadline. A call without
// a deadline leaves the pipeline to the client's read and write timeouts.
func batchContext(batch []*publishCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
