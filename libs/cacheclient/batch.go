package cacheclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// BatchGet returns one item per key, in the order of keys. Keys are sent to
// their replicas in one call per replica (or per MaxBatch keys), all at
// once. When a replica fails, the error names it and the items of its keys
// are left not found; the other items are filled, so a caller that treats
// the cache as best-effort may use them.
func (c *Client) BatchGet(ctx context.Context, cache string, keys []string) ([]Item, error) {
	items := make([]Item, len(keys))
	err := c.batch(ctx, hashKeys(len(keys), func(i int) string { return keys[i] }),
		func(ctx context.Context, r replica, idx []int) error {
			sub := make([]string, len(idx))
			for j, i := range idx {
				sub[j] = keys[i]
			}
			resp, err := r.api.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: cache, Keys: sub})
			if err != nil {
				return err
			}
			if len(resp.Items) != len(idx) {
				return fmt.Errorf("answered %d items for %d keys", len(resp.Items), len(idx))
			}
			for j, i := range idx { // each call owns its own indices
				items[i] = itemOf(resp.Items[j])
			}
			return nil
		})
	return items, err
}

// BatchSet stores entries, each on its own replica. A replica stores its
// share whole or not at all, but the batch as a whole is not atomic: when
// one replica refuses or fails, the others may have stored theirs. An
// empty key is refused here, before anything is sent.
func (c *Client) BatchSet(ctx context.Context, cache string, entries []Entry) error {
	for i, e := range entries {
		if e.Key == "" {
			return status.Errorf(codes.InvalidArgument, "entries[%d]: key is empty", i)
		}
	}
	return c.batch(ctx, hashKeys(len(entries), func(i int) string { return entries[i].Key }),
		func(ctx context.Context, r replica, idx []int) error {
			sub := make([]*cachev1.Entry, len(idx))
			for j, i := range idx {
				e := entries[i]
				sub[j] = &cachev1.Entry{Key: e.Key, Value: e.Value, Ttl: ttlOf(e.TTL)}
			}
			_, err := r.api.BatchSet(ctx, &cachev1.BatchSetRequest{Cache: cache, Entries: sub})
			return err
		})
}

// Stats returns every current replica's statistics of cache, sorted by
// address, and the failures joined.
func (c *Client) Stats(ctx context.Context, cache string) ([]ReplicaStats, error) {
	rg := c.ring.Load()
	if len(rg.replicas) == 0 {
		c.resolveSoon()
		return nil, rg.unavailable()
	}
	out := make([]ReplicaStats, len(rg.replicas))
	var wg sync.WaitGroup
	for i, r := range rg.replicas {
		wg.Go(func() {
			st, err := r.api.Stats(ctx, &cachev1.StatsRequest{Cache: cache})
			out[i] = ReplicaStats{Addr: r.addr, Stats: st}
			if err != nil {
				out[i] = ReplicaStats{Addr: r.addr, Err: &ReplicaError{Addr: r.addr, Err: err}}
			}
		})
	}
	wg.Wait()

	var errs []error
	for _, s := range out {
		errs = append(errs, s.Err)
	}
	return out, errors.Join(errs...)
}

func hashKeys(n int, key func(int) string) []uint64 {
	h := make([]uint64, n)
	for i := range h {
		h[i] = keyHash(key(i))
	}
	return h
}

// part is one call of a batch: some of the batch's indices, sent to one
// replica.
type part struct {
	replica int
	idx     []int
	err     error
}

// batch sends every index to its replica, in parts of at most maxBatch, all
// at once. With fallover, the indices of a replica that answered
// UNAVAILABLE are sent again to their next replicas, until they succeed or
// no replica is left. It returns the failures joined. Every round uses
// the ring loaded at the start.
func (c *Client) batch(ctx context.Context, hashes []uint64, call func(context.Context, replica, []int) error) error {
	r := c.ring.Load()
	if len(hashes) > 0 && len(r.replicas) == 0 {
		c.resolveSoon()
		return r.unavailable()
	}
	pending := make([]int, len(hashes))
	for i := range pending {
		pending[i] = i
	}
	var excluded []bool
	var errs []error
	for len(pending) > 0 {
		parts := c.split(r, hashes, pending, excluded)
		send(ctx, r, parts, call)

		var retry []*part
		for _, p := range parts {
			if p.err == nil {
				continue
			}
			err := &ReplicaError{Addr: r.replicas[p.replica].addr, Err: p.err}
			p.err = err
			if status.Code(err) == codes.Unavailable {
				c.resolveSoon()
			}
			if !c.fallover || status.Code(err) != codes.Unavailable {
				errs = append(errs, err)
				continue
			}
			if excluded == nil {
				excluded = make([]bool, len(r.replicas))
			}
			excluded[p.replica] = true
			retry = append(retry, p)
		}

		pending = pending[:0:0]
		left := slices.Contains(excluded, false)
		for _, p := range retry {
			if !left {
				errs = append(errs, p.err)
				continue
			}
			pending = append(pending, p.idx...)
		}
	}
	return errors.Join(errs...)
}

// split groups indices by replica, keeping their order, and cuts each
// group into parts of at most maxBatch.
func (c *Client) split(r *ring, hashes []uint64, pending []int, excluded []bool) []*part {
	groups := make([][]int, len(r.replicas))
	for _, i := range pending {
		owner := best(r.seeds, hashes[i], excluded)
		groups[owner] = append(groups[owner], i)
	}
	var parts []*part
	for owner, g := range groups {
		for chunk := range slices.Chunk(g, c.maxBatch) {
			parts = append(parts, &part{replica: owner, idx: chunk})
		}
	}
	return parts
}

// send runs every part's call at once and records each part's error.
func send(ctx context.Context, r *ring, parts []*part, call func(context.Context, replica, []int) error) {
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() { p.err = call(ctx, r.replicas[p.replica], p.idx) })
	}
	wg.Wait()
}
