package cacheclient

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cachev1 "switchboard/proto/switchboard/cache/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeReplica is a cache.v1 server over a map, on a real loopback
// listener, that records the keys of every call. It checks nothing but
// empty keys: the service's own tests cover validation.
type fakeReplica struct {
	cachev1.UnimplementedCacheServiceServer
	addr string
	srv  *grpc.Server

	mu      sync.Mutex
	entries map[string][]byte
	calls   [][]string // keys of each call, in arrival order
}

func startFake(t *testing.T) *fakeReplica {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFake(t, lis)
}

// serveFake serves a fake replica on lis until the test ends.
func serveFake(t *testing.T, lis net.Listener) *fakeReplica {
	t.Helper()
	f := &fakeReplica{addr: lis.Addr().String(), srv: grpc.NewServer(), entries: map[string][]byte{}}
	cachev1.RegisterCacheServiceServer(f.srv, f)
	done := make(chan struct{})
	go func() { defer close(done); f.srv.Serve(lis) }()
	t.Cleanup(func() { f.srv.Stop(); <-done })
	return f
}

// stop ends the replica as a crash would: its listener closes, so new
// calls are refused.
func (f *fakeReplica) stop() { f.srv.Stop() }

func (f *fakeReplica) record(keys ...string) {
	f.mu.Lock()
	f.calls = append(f.calls, keys)
	f.mu.Unlock()
}

// received returns the keys of every call so far.
func (f *fakeReplica) received() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeReplica) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.entries[key]
	return ok
}

func (f *fakeReplica) get(key string) *cachev1.GetResponse {
	v, ok := f.entries[key]
	return &cachev1.GetResponse{Found: ok, Value: v}
}

func (f *fakeReplica) Get(_ context.Context, r *cachev1.GetRequest) (*cachev1.GetResponse, error) {
	f.record(r.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.get(r.Key), nil
}

func (f *fakeReplica) Set(_ context.Context, r *cachev1.SetRequest) (*cachev1.SetResponse, error) {
	f.record(r.Key)
	if r.Key == "" {
		return nil, status.Error(codes.InvalidArgument, "key is empty")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries[r.Key] = r.Value
	return &cachev1.SetResponse{}, nil
}

func (f *fakeReplica) Delete(_ context.Context, r *cachev1.DeleteRequest) (*cachev1.DeleteResponse, error) {
	f.record(r.Key)
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.entries[r.Key]
	delete(f.entries, r.Key)
	return &cachev1.DeleteResponse{Deleted: ok}, nil
}

func (f *fakeReplica) BatchGet(_ context.Context, r *cachev1.BatchGetRequest) (*cachev1.BatchGetResponse, error) {
	f.record(r.Keys...)
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &cachev1.BatchGetResponse{}
	for _, k := range r.Keys {
		resp.Items = append(resp.Items, f.get(k))
	}
	return resp, nil
}

func (f *fakeReplica) BatchSet(_ context.Context, r *cachev1.BatchSetRequest) (*cachev1.BatchSetResponse, error) {
	keys := make([]string, len(r.Entries))
	for i, e := range r.Entries {
		keys[i] = e.Key
	}
	f.record(keys...)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range r.Entries {
		f.entries[e.Key] = e.Value
	}
	return &cachev1.BatchSetResponse{}, nil
}

func (f *fakeReplica) Stats(_ context.Context, r *cachev1.StatsRequest) (*cachev1.StatsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &cachev1.StatsResponse{Cache: r.Cache, Entries: uint64(len(f.entries))}, nil
}

// cluster starts n fake replicas and a client over them.
func cluster(t *testing.T, n int, opts Options) (*Client, map[string]*fakeReplica) {
	t.Helper()
	fakes := map[string]*fakeReplica{}
	var addrs []string
	for range n {
		f := startFake(t)
		fakes[f.addr] = f
		addrs = append(addrs, f.addr)
	}
	c, err := New(addrs, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fakes
}
