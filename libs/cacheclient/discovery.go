package cacheclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
)

const (
	defaultResolveEvery = 10 * time.Second
	// resolveTimeout bounds one lookup.
	resolveTimeout = 5 * time.Second
	// minResolveGap spaces the early resolutions that calls ask for.
	minResolveGap = time.Second
)

// discovery keeps a client's ring in step with the addresses its name
// resolves to.
type discovery struct {
	// Read-only after discover.
	host, port string
	lookup     func(ctx context.Context, host string) ([]string, error)
	every, gap time.Duration
	log        *slog.Logger
	soon       chan struct{} // buffered 1: a call asks for an early resolution
	cancel     context.CancelFunc
	done       chan struct{} // closed when resolveLoop returns

	// Owned by the resolving goroutine (and by discover before it starts).
	retiring []*grpc.ClientConn // dropped by the last change; closed at the next resolution
	failing  bool               // the last resolution failed
}

func isDNS(addr string) bool { return strings.HasPrefix(addr, "dns:") }

// parseTarget returns the host and port of the single "dns:///host:port"
// of addrs.
func parseTarget(addrs []string) (host, port string, err error) {
	if len(addrs) != 1 {
		return "", "", errors.New("cacheclient: a dns:/// address must be the only address")
	}
	rest, ok := strings.CutPrefix(addrs[0], "dns:///")
	if ok {
		host, port, err = net.SplitHostPort(rest)
	}
	if !ok || err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("cacheclient: address %q: want dns:///host:port", addrs[0])
	}
	return host, port, nil
}

// discover sets c up to follow the name of addrs: it resolves the name
// once, then starts the goroutine that resolves it again.
func (c *Client) discover(addrs []string, opts Options) error {
	host, port, err := parseTarget(addrs)
	if err != nil {
		return err
	}
	if opts.ResolveEvery < 0 {
		return fmt.Errorf("cacheclient: ResolveEvery %v is negative", opts.ResolveEvery)
	}
	d := &discovery{
		host:   host,
		port:   port,
		lookup: opts.LookupHost,
		every:  cmp.Or(opts.ResolveEvery, defaultResolveEvery),
		log:    cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		soon:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if d.lookup == nil {
		d.lookup = net.DefaultResolver.LookupHost
	}
	d.gap = min(minResolveGap, d.every)
	c.disc = d
	c.ring.Store(&ring{err: errNotResolved})

	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	c.resolve(ctx)
	go c.resolveLoop(ctx)
	return nil
}

// stop ends resolveLoop and waits for it. It may be called again.
func (d *discovery) stop() {
	d.cancel()
	<-d.done
}

// resolveLoop resolves the name every d.every, and sooner (but not within
// d.gap of the last time) when a call asks, until ctx is done.
func (c *Client) resolveLoop(ctx context.Context) {
	d := c.disc
	defer close(d.done)
	defer func() { closeAll(d.retiring) }()
	timer := time.NewTimer(d.every)
	defer timer.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.soon:
			timer.Reset(time.Until(last.Add(d.gap)))
		case <-timer.C:
			c.resolve(ctx)
			last = time.Now()
			timer.Reset(d.every)
		}
	}
}

// resolveSoon asks for an early resolution; it does nothing for a fixed
// list, or when one is already asked for.
func (c *Client) resolveSoon() {
	if c.disc == nil {
		return
	}
	select {
	case c.disc.soon <- struct{}{}:
	default:
	}
}

// resolve looks the name up and, when the answer differs from the current
// set, swaps in the ring over the answer; the connections it drops are
// closed at the next resolution, so that calls already sent on them
// finish. A failed lookup keeps the current set.
func (c *Client) resolve(ctx context.Context) {
	d := c.disc
	closeAll(d.retiring)
	d.retiring = nil

	addrs, err := d.lookupAddrs(ctx)
	if ctx.Err() != nil {
		return // Close
	}
	if err != nil {
		c.resolveFailed(err)
		return
	}
	if d.failing {
		d.log.Info("cache name resolves again", "name", d.host)
		d.failing = false
	}
	cur := c.ring.Load()
	if slices.Equal(addrs, cur.addrs()) {
		return
	}
	next, err := c.newRing(addrs, cur)
	if err != nil {
		c.resolveFailed(err)
		return
	}
	c.ring.Store(next)
	d.retiring = cur.connsNotIn(next)
	d.log.Info("cache replicas changed", "name", d.host, "replicas", addrs)
}

// lookupAddrs returns the name's addresses joined with the port, sorted,
// without repeats; an answer without an address is an error.
func (d *discovery) lookupAddrs(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	hosts, err := d.lookup(ctx, d.host)
	if err == nil && len(hosts) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", d.host, err)
	}
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		addrs[i] = net.JoinHostPort(h, d.port)
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}

// resolveFailed keeps the current set; an empty ring takes err as its
// reason, so that calls report it.
func (c *Client) resolveFailed(err error) {
	d := c.disc
	cur := c.ring.Load()
	if len(cur.replicas) == 0 {
		c.ring.Store(&ring{err: err})
	}
	if !d.failing {
		d.log.Warn("cache name resolution failed; keeping the last replicas",
			"name", d.host, "replicas", len(cur.replicas), "error", err)
		d.failing = true
	}
}
