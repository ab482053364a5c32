package main

import (
	"fmt"
	"time"

	"switchboard/libs/store"
)

// cache is one named bounded store with its watchers.
type cache struct {
	// Read-only after construction; store and hub are safe on their own.
	spec  CacheSpec
	store *store.Store[string, []byte]
	hub   *hub
}

// maxEntryBytes is the largest key plus value the cache can hold, or 0 when
// it has no byte limit. A sharded store gives each shard an equal share of
// the byte limit and refuses an entry larger than its shard's share, so
// the bound is the smallest share less the fixed overhead per entry.
func (c *cache) maxEntryBytes() int64 {
	if c.spec.MaxBytes == 0 {
		return 0
	}
	return max(c.spec.MaxBytes/int64(c.store.Shards())-store.EntryOverhead, 0)
}

// caches are the named caches of one process, in configuration order.
type caches struct {
	byName map[string]*cache
	list   []*cache
}

// newCaches builds one store per spec. clock is nil outside tests.
func newCaches(specs []CacheSpec, clock store.Clock) (*caches, error) {
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	cs := &caches{byName: make(map[string]*cache, len(specs))}
	for _, spec := range specs {
		c, err := newCache(spec, clock, now)
		if err != nil {
			cs.close()
			return nil, fmt.Errorf("cache %q: %w", spec.Name, err)
		}
		cs.byName[spec.Name] = c
		cs.list = append(cs.list, c)
	}
	return cs, nil
}

func newCache(spec CacheSpec, clock store.Clock, now func() time.Time) (*cache, error) {
	c := &cache{spec: spec, hub: newHub(now)}
	st, err := store.New(store.Options[string, []byte]{
		Policy:     spec.Policy,
		MaxEntries: spec.MaxEntries,
		MaxBytes:   spec.MaxBytes,
		DefaultTTL: spec.DefaultTTL,
		Size:       store.StringBytesSize,
		OnEvent:    c.hub.publish,
		Clock:      clock,
	})
	if err != nil {
		return nil, err
	}
	c.store = st
	return c, nil
}

// get returns the named cache, or nil.
func (cs *caches) get(name string) *cache { return cs.byName[name] }

// names lists the caches in configuration order.
func (cs *caches) names() []string {
	out := make([]string, len(cs.list))
	for i, c := range cs.list {
		out[i] = c.spec.Name
	}
	return out
}

// close stops every store's background work.
func (cs *caches) close() {
	for _, c := range cs.list {
		c.store.Close()
	}
}
