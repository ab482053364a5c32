package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"switchboard/libs/store"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// api serves cache.v1. It is the RPC boundary: the only place that turns
// problems into status codes.
type api struct {
	cachev1.UnimplementedCacheServiceServer

	// Read-only after construction.
	caches   *caches
	limits   Limits
	log      *slog.Logger
	stopping <-chan struct{} // closed when the server begins to stop

	watchers atomic.Int64 // open Watch streams over all caches
}

// badRequest is a problem with what the client sent; its text is safe to
// return, since it only describes the client's own input.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &badRequest{msg: fmt.Sprintf(format, args...)}
}

// errStatus maps an error met while serving a call to its status. Bad input
// says what was wrong; anything else is logged and answered without detail.
func (a *api) errStatus(ctx context.Context, method string, err error) error {
	var bad *badRequest
	switch {
	case errors.As(err, &bad):
		return status.Error(codes.InvalidArgument, bad.msg)
	case errors.Is(err, store.ErrTooLarge):
		return status.Error(codes.InvalidArgument, "entry is larger than the cache can hold")
	}
	a.log.ErrorContext(ctx, "cache call failed", "method", method, "err", err)
	return status.Error(codes.Internal, "internal error")
}

// lookup returns the named cache or NOT_FOUND.
func (a *api) lookup(name string) (*cache, error) {
	if c := a.caches.get(name); c != nil {
		return c, nil
	}
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "cache name is empty")
	}
	return nil, status.Errorf(codes.NotFound, "unknown cache %q", clip(name, maxCacheName))
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (a *api) checkKey(key string) error {
	switch {
	case key == "":
		return invalid("key is empty")
	case len(key) > a.limits.MaxKeyBytes:
		return invalid("key of %d bytes is over the limit of %d", len(key), a.limits.MaxKeyBytes)
	}
	return nil
}

func (a *api) checkBatch(n int) error {
	if n > a.limits.MaxBatch {
		return invalid("batch of %d is over the limit of %d", n, a.limits.MaxBatch)
	}
	return nil
}

// checkEntry checks a key, value and TTL for c, and returns the TTL to
// store (0: the cache's default).
func (a *api) checkEntry(c *cache, key string, value []byte, ttl *durationpb.Duration) (time.Duration, error) {
	if err := a.checkKey(key); err != nil {
		return 0, err
	}
	if len(value) > a.limits.MaxValueBytes {
		return 0, invalid("value of %d bytes is over the limit of %d", len(value), a.limits.MaxValueBytes)
	}
	if limit := c.maxEntryBytes(); limit > 0 && int64(len(key)+len(value)) > limit {
		return 0, invalid("key and value of %d bytes are over the %d bytes an entry of cache %q may hold",
			len(key)+len(value), limit, c.spec.Name)
	}
	return a.checkTTL(ttl)
}

func (a *api) checkTTL(ttl *durationpb.Duration) (time.Duration, error) {
	if ttl == nil {
		return 0, nil
	}
	if err := ttl.CheckValid(); err != nil {
		return 0, invalid("ttl is not a valid duration")
	}
	d := ttl.AsDuration()
	switch {
	case d < 0:
		return 0, invalid("ttl %s is negative", d)
	case d > a.limits.MaxTTL:
		return 0, invalid("ttl %s is over the limit of %s", d, a.limits.MaxTTL)
	}
	return d, nil
}

func (a *api) Get(ctx context.Context, req *cachev1.GetRequest) (*cachev1.GetResponse, error) {
	c, err := a.lookup(req.GetCache())
	if err != nil {
		return nil, err
	}
	if err := a.checkKey(req.GetKey()); err != nil {
		return nil, a.errStatus(ctx, "Get", err)
	}
	return getOne(c, req.GetKey()), nil
}

func getOne(c *cache, key string) *cachev1.GetResponse {
	v, ttl, ok := c.store.GetWithTTL(key)
	if !ok {
		return &cachev1.GetResponse{}
	}
	resp := &cachev1.GetResponse{Found: true, Value: v}
	if ttl > 0 {
		resp.Ttl = durationpb.New(ttl)
	}
	return resp
}

func (a *api) Set(ctx context.Context, req *cachev1.SetRequest) (*cachev1.SetResponse, error) {
	c, err := a.lookup(req.GetCache())
	if err != nil {
		return nil, err
	}
	ttl, err := a.checkEntry(c, req.GetKey(), req.GetValue(), req.GetTtl())
	if err == nil {
		err = c.store.SetWithTTL(req.GetKey(), req.GetValue(), ttl)
	}
	if err != nil {
		return nil, a.errStatus(ctx, "Set", err)
	}
	return &cachev1.SetResponse{}, nil
}

func (a *api) Delete(ctx context.Context, req *cachev1.DeleteRequest) (*cachev1.DeleteResponse, error) {
	c, err := a.lookup(req.GetCache())
	if err != nil {
		return nil, err
	}
	if err := a.checkKey(req.GetKey()); err != nil {
		return nil, a.errStatus(ctx, "Delete", err)
	}
	return &cachev1.DeleteResponse{Deleted: c.store.Delete(req.GetKey())}, nil
}

func (a *api) BatchGet(ctx context.Context, req *cachev1.BatchGetRequest) (*cachev1.BatchGetResponse, error) {
	c, err := a.lookup(req.GetCache())
	if err != nil {
		return nil, err
	}
	keys := req.GetKeys()
	if err := a.checkBatchGet(keys); err != nil {
		return nil, a.errStatus(ctx, "BatchGet", err)
	}

	items := make([]*cachev1.GetResponse, len(keys))
	for i, k := range keys {
		items[i] = getOne(c, k)
	}
	return &cachev1.BatchGetResponse{Items: items}, nil
}

func (a *api) checkBatchGet(keys []string) error {
	if err := a.checkBatch(len(keys)); err != nil {
		return err
	}
	for i, k := range keys {
		if err := a.checkKey(k); err != nil {
			return invalid("keys[%d]: %v", i, err)
		}
	}
	return nil
}

// BatchSet checks every entry before it stores any, so that a bad entry
// changes nothing.
func (a *api) BatchSet(ctx context.Context, req *cachev1.BatchSetRequest) (*cachev1.BatchSetResponse, error) {
	c, err := a.lookup(req.GetCache())
	if err != nil {
		return nil, err
	}
	entries := req.GetEntries()
	ttls, err := a.checkBatchSet(c, entries)
	if err != nil {
		return nil, a.errStatus(ctx, "BatchSet", err)
	}

	for i, e := range entries {
		if err := c.store.SetWithTTL(e.GetKey(), e.GetValue(), ttls[i]); err != nil {
			return nil, a.errStatus(ctx, "BatchSet", fmt.Errorf("entries[%d]: %w", i, err))
		}
	}
	return &cachev1.BatchSetResponse{}, nil
}

func (a *api) checkBatchSet(c *cache, entries []*cachev1.Entry) ([]time.Duration, error) {
	if err := a.checkBatch(len(entries)); err != nil {
		return nil, err
	}
	ttls := make([]time.Duration, len(entries))
	for i, e := range entries {
		ttl, err := a.checkEntry(c, e.GetKey(), e.GetValue(), e.GetTtl())
		if err != nil {
			return nil, invalid("entries[%d]: %v", i, err)
		}
		ttls[i] = ttl
	}
	return ttls, nil
}

func (a *api) Stats(ctx context.Context, req *cachev1.StatsRequest) (*cachev1.StatsResponse, error) {
	c, err := a.lookup(req.GetCache())
	if err != nil {
		return nil, err
	}
	st := c.store.Stats()
	return &cachev1.StatsResponse{
		Cache:       c.spec.Name,
		Policy:      string(st.Policy),
		Hits:        st.Hits,
		Misses:      st.Misses,
		Evictions:   st.Evictions,
		Expirations: st.Expirations,
		HitRatio:    st.HitRatio(),
		Entries:     uint64(st.Entries),
		Bytes:       uint64(st.Bytes),
		MaxEntries:  uint64(st.MaxEntries),
		MaxBytes:    uint64(st.MaxBytes),
	}, nil
}

// Watch streams the events of one cache until the client cancels or the
// server stops (UNAVAILABLE: the client may watch again elsewhere).
func (a *api) Watch(req *cachev1.WatchRequest, stream grpc.ServerStreamingServer[cachev1.WatchResponse]) error {
	c, err := a.lookup(req.GetCache())
	if err != nil {
		return err
	}
	if a.watchers.Add(1) > int64(a.limits.MaxWatchers) {
		a.watchers.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "%d watchers are open, the limit", a.limits.MaxWatchers)
	}
	defer a.watchers.Add(-1)

	w := c.hub.add(a.limits.WatchBuffer)
	defer c.hub.remove(w)
	// The stream is established once headers are out, so a client knows
	// that every event from now on reaches it or is counted as dropped.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	return a.pump(stream, w, c.hub.now)
}

// pump sends the watcher's events until the stream ends.
func (a *api) pump(stream grpc.ServerStreamingServer[cachev1.WatchResponse], w *watcher, now func() time.Time) error {
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-a.stopping:
			return status.Error(codes.Unavailable, "server is stopping")
		case e := <-w.ch:
			if err := stream.Send(watchResponse(e)); err != nil {
				return err
			}
		}
		if n := w.gap(); n > 0 {
			gap := event{at: now(), dropped: n}
			if err := stream.Send(watchResponse(gap)); err != nil {
				return err
			}
		}
	}
}

var eventKinds = map[store.EventKind]cachev1.EventKind{
	store.EventSet:    cachev1.EventKind_EVENT_KIND_SET,
	store.EventDelete: cachev1.EventKind_EVENT_KIND_DELETE,
	store.EventEvict:  cachev1.EventKind_EVENT_KIND_EVICT,
	store.EventExpire: cachev1.EventKind_EVENT_KIND_EXPIRE,
}

// watchResponse converts an event; a gap (kind 0) becomes
// EVENT_KIND_UNSPECIFIED with only dropped and time set.
func watchResponse(e event) *cachev1.WatchResponse {
	return &cachev1.WatchResponse{
		Kind:    eventKinds[e.kind],
		Key:     e.key,
		Time:    timestamppb.New(e.at),
		Dropped: e.dropped,
	}
}
