package cacheclient

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// ring is one set of replicas, sorted by address, with their seeds. A
// ring never changes once built: discovery builds a new one, sharing the
// connections of the replicas that stay, and swaps it in whole, so a call
// that loaded a ring hashes all its keys over the same set.
type ring struct {
	replicas []replica
	seeds    []uint64 // seeds[i] is replicas[i]'s
	// err says why the ring is empty: the last failed resolution, or
	// errNotResolved. Nil in a ring with replicas.
	err error
}

type replica struct {
	addr string
	conn *grpc.ClientConn
	api  cachev1.CacheServiceClient
}

var errNotResolved = errors.New("not resolved yet")

// newRing returns the ring over addrs (sorted), reusing old's connection
// for every address old has and dialing the others. On failure it closes
// what it dialed. old may be nil.
func (c *Client) newRing(addrs []string, old *ring) (*ring, error) {
	r := &ring{}
	for _, addr := range addrs {
		rep, ok := old.find(addr)
		if !ok {
			conn, err := grpc.NewClient(addr, c.dial...)
			if err != nil {
				closeAll(r.connsNotIn(old))
				return nil, fmt.Errorf("cacheclient: replica %s: %w", addr, err)
			}
			rep = replica{addr: addr, conn: conn, api: cachev1.NewCacheServiceClient(conn)}
		}
		r.replicas = append(r.replicas, rep)
		r.seeds = append(r.seeds, addrSeed(addr))
	}
	return r, nil
}

// find returns the replica at addr. A nil ring has none.
func (r *ring) find(addr string) (replica, bool) {
	if r == nil {
		return replica{}, false
	}
	i, ok := slices.BinarySearchFunc(r.replicas, addr, func(rep replica, a string) int {
		return strings.Compare(rep.addr, a)
	})
	if !ok {
		return replica{}, false
	}
	return r.replicas[i], true
}

// connsNotIn returns the connections of r's replicas that other lacks.
func (r *ring) connsNotIn(other *ring) []*grpc.ClientConn {
	var out []*grpc.ClientConn
	for _, rep := range r.replicas {
		if _, ok := other.find(rep.addr); !ok {
			out = append(out, rep.conn)
		}
	}
	return out
}

func (r *ring) addrs() []string {
	out := make([]string, len(r.replicas))
	for i, rep := range r.replicas {
		out[i] = rep.addr
	}
	return out
}

// unavailable is the error of a call that finds the ring empty.
func (r *ring) unavailable() error {
	return status.Errorf(codes.Unavailable, "cacheclient: no cache replica: %v", r.err)
}

func closeAll(conns []*grpc.ClientConn) error {
	var errs []error
	for _, conn := range conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}
