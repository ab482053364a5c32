package cacheclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"switchboard/libs/server"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// Options configure New. The zero value is a plaintext client without
// fallover.
type Options struct {
	// DialOptions are added to every replica's connection, after a
	// plaintext transport that they may replace. Default: none.
	DialOptions []grpc.DialOption
	// Credential, when set, is sent on every call as the service
	// credential (CACHE_SERVICE_CREDENTIAL of the replicas). Default:
	// none.
	Credential string
	// Fallover sends a call whose replica answers UNAVAILABLE to the
	// key's next replica in rendezvous order. Default false: the call
	// fails. See the package doc for what fallover costs.
	Fallover bool
	// MaxBatch caps the keys of one BatchGet or BatchSet call to a
	// replica; larger shares are sent in several calls. It must not exceed
	// the replicas' CACHE_MAX_BATCH. Zero: 1000.
	MaxBatch int

	// The options below serve a client built from a dns:/// address (see
	// Discovery in the package doc); New refuses LookupHost and
	// ResolveEvery with fixed addresses.

	// LookupHost resolves the name of a dns:/// address to the replicas'
	// IP addresses, as (*net.Resolver).LookupHost does. Default:
	// net.DefaultResolver.LookupHost.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// ResolveEvery is how often the name is resolved again. A call that
	// finds a replica UNAVAILABLE, or no replica at all, asks for an
	// earlier resolution, at most one a second. Zero: 10 s.
	ResolveEvery time.Duration
	// Logger receives the changes of the replica set (Info) and failed
	// resolutions (Warn, once until one succeeds). Default: discarded.
	Logger *slog.Logger
}

// Item is the answer for one key.
type Item struct {
	Found bool
	Value []byte
	// TTL is the time left before the entry expires; 0 when it never does.
	TTL time.Duration
}

// Entry is one key and value to store.
type Entry struct {
	Key   string
	Value []byte
	// TTL is the entry's time to live; 0 means the cache's default.
	TTL time.Duration
}

// ReplicaStats are one replica's statistics of a cache, or why there are
// none.
type ReplicaStats struct {
	Addr  string
	Stats *cachev1.StatsResponse // nil when Err is set
	Err   error
}

// ReplicaError is the failure of a call to one replica. Its gRPC status is
// the replica's, so status.Code works on it.
type ReplicaError struct {
	Addr string
	Err  error
}

func (e *ReplicaError) Error() string { return fmt.Sprintf("cache replica %s: %v", e.Addr, e.Err) }

func (e *ReplicaError) Unwrap() error { return e.Err }

// GRPCStatus returns the replica's status.
func (e *ReplicaError) GRPCStatus() *status.Status { return status.Convert(e.Err) }

// Client spreads keys over cache replicas. It is safe for concurrent use.
type Client struct {
	// Read-only after New.
	dial     []grpc.DialOption
	fallover bool
	maxBatch int
	disc     *discovery // nil for a fixed list

	// Safe on its own: discovery swaps the ring whole; a call loads it
	// once.
	ring atomic.Pointer[ring]
}

// New returns a client over the replicas at addrs: either fixed addresses
// ("host:port"), or a single "dns:///host:port" whose name resolves to
// every replica (see Discovery in the package doc). A replica's address
// is its identity in the hashing: every client of the same replicas must
// name them alike. New does not wait for connections; a replica that
// cannot be reached fails the calls it owns. With a name, New resolves it
// once before returning, but a failure there is not New's: calls fail
// with UNAVAILABLE until a resolution succeeds.
func New(addrs []string, opts Options) (*Client, error) {
	if opts.MaxBatch < 0 {
		return nil, fmt.Errorf("cacheclient: MaxBatch %d is negative", opts.MaxBatch)
	}
	c := &Client{fallover: opts.Fallover, maxBatch: opts.MaxBatch, dial: dialOptions(opts)}
	if c.maxBatch == 0 {
		c.maxBatch = 1000
	}
	if slices.ContainsFunc(addrs, isDNS) {
		if err := c.discover(addrs, opts); err != nil {
			return nil, err
		}
		return c, nil
	}
	if opts.LookupHost != nil || opts.ResolveEvery != 0 {
		return nil, errors.New("cacheclient: LookupHost and ResolveEvery need a dns:/// address")
	}
	sorted, err := checkAddrs(addrs)
	if err != nil {
		return nil, err
	}
	r, err := c.newRing(sorted, nil)
	if err != nil {
		return nil, err
	}
	c.ring.Store(r)
	return c, nil
}

func dialOptions(opts Options) []grpc.DialOption {
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts.DialOptions...)
	if opts.Credential != "" {
		dial = append(dial, server.WithCredential(opts.Credential, false))
	}
	return dial
}

func checkAddrs(addrs []string) ([]string, error) {
	if len(addrs) == 0 {
		return nil, errors.New("cacheclient: no replica address")
	}
	sorted := slices.Clone(addrs)
	slices.Sort(sorted)
	for i, a := range sorted {
		if a == "" {
			return nil, errors.New("cacheclient: empty replica address")
		}
		if i > 0 && sorted[i-1] == a {
			return nil, fmt.Errorf("cacheclient: replica %s is listed twice", a)
		}
	}
	return sorted, nil
}

// Close stops the re-resolution of a name, if any, and closes every
// replica's connection.
func (c *Client) Close() error {
	if c.disc != nil {
		c.disc.stop()
	}
	return closeAll(c.ring.Load().connsNotIn(nil))
}

// Replicas returns the current replicas' addresses, sorted. With a name,
// it is the last set the name resolved to, empty before the first.
func (c *Client) Replicas() []string { return c.ring.Load().addrs() }

// Owner returns the address of the replica that owns key among the
// current replicas, or "" when there is none.
func (c *Client) Owner(key string) string {
	r := c.ring.Load()
	if len(r.replicas) == 0 {
		return ""
	}
	return r.replicas[best(r.seeds, keyHash(key), nil)].addr
}

// do runs call on key's owner and, with fallover, on the next replicas in
// the key's order while they answer UNAVAILABLE.
func (c *Client) do(key string, call func(r replica) error) error {
	r := c.ring.Load()
	if len(r.replicas) == 0 {
		c.resolveSoon()
		return r.unavailable()
	}
	h := keyHash(key)
	var excluded []bool
	for {
		i := best(r.seeds, h, excluded)
		err := call(r.replicas[i])
		if err == nil {
			return nil
		}
		err = &ReplicaError{Addr: r.replicas[i].addr, Err: err}
		if status.Code(err) != codes.Unavailable {
			return err
		}
		c.resolveSoon()
		if !c.fallover {
			return err
		}
		if excluded == nil {
			excluded = make([]bool, len(r.replicas))
		}
		excluded[i] = true
		if !slices.Contains(excluded, false) {
			return err
		}
	}
}

// Get returns key's entry in cache; a miss is Found false, not an error.
func (c *Client) Get(ctx context.Context, cache, key string) (Item, error) {
	var item Item
	err := c.do(key, func(r replica) error {
		resp, err := r.api.Get(ctx, &cachev1.GetRequest{Cache: cache, Key: key})
		item = itemOf(resp)
		return err
	})
	return item, err
}

func itemOf(r *cachev1.GetResponse) Item {
	if !r.GetFound() {
		return Item{}
	}
	return Item{Found: true, Value: r.GetValue(), TTL: r.GetTtl().AsDuration()}
}

// Set stores value under key in cache; ttl 0 means the cache's default.
func (c *Client) Set(ctx context.Context, cache, key string, value []byte, ttl time.Duration) error {
	req := &cachev1.SetRequest{Cache: cache, Key: key, Value: value, Ttl: ttlOf(ttl)}
	return c.do(key, func(r replica) error {
		_, err := r.api.Set(ctx, req)
		return err
	})
}

func ttlOf(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// Delete removes key from cache and reports whether it was there.
func (c *Client) Delete(ctx context.Context, cache, key string) (bool, error) {
	var deleted bool
	err := c.do(key, func(r replica) error {
		resp, err := r.api.Delete(ctx, &cachev1.DeleteRequest{Cache: cache, Key: key})
		deleted = resp.GetDeleted()
		return err
	})
	return deleted, err
}
