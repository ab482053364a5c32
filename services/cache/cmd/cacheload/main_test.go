package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"switchboard/libs/grpctest"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCache is a cache.v1 server that keeps what it is sent.
type fakeCache struct {
	cachev1.UnimplementedCacheServiceServer
	mu    sync.Mutex
	items map[string][]byte
	calls map[string]int
}

func (f *fakeCache) count(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
}

func (f *fakeCache) Get(_ context.Context, r *cachev1.GetRequest) (*cachev1.GetResponse, error) {
	f.count("Get")
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.items[r.GetKey()]
	return &cachev1.GetResponse{Found: ok, Value: v}, nil
}

func (f *fakeCache) Set(_ context.Context, r *cachev1.SetRequest) (*cachev1.SetResponse, error) {
	f.count("Set")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[r.GetKey()] = r.GetValue()
	return &cachev1.SetResponse{}, nil
}

func (f *fakeCache) BatchGet(_ context.Context, r *cachev1.BatchGetRequest) (*cachev1.BatchGetResponse, error) {
	f.count("BatchGet")
	return &cachev1.BatchGetResponse{Items: make([]*cachev1.GetResponse, len(r.GetKeys()))}, nil
}

func (f *fakeCache) BatchSet(_ context.Context, r *cachev1.BatchSetRequest) (*cachev1.BatchSetResponse, error) {
	f.count("BatchSet")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range r.GetEntries() {
		f.items[e.GetKey()] = e.GetValue()
	}
	return &cachev1.BatchSetResponse{}, nil
}

func startFake(t *testing.T) (*fakeCache, string) {
	t.Helper()
	f := &fakeCache{items: map[string][]byte{}, calls: map[string]int{}}
	return f, grpctest.Serve(t, func(s *grpc.Server) { cachev1.RegisterCacheServiceServer(s, f) })
}

// TestRun: each op makes the requested number of calls of its method, and
// reads first fill the key space.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		op, method string
		fills      bool
	}{
		{"get", "Get", true}, {"set", "Set", false}, {"batchget", "BatchGet", true}, {"batchset", "BatchSet", false},
	} {
		t.Run(tc.op, func(t *testing.T) {
			f, addr := startFake(t)
			p := params{target: addr, op: tc.op, cache: "messages", keys: 50, valueBytes: 10, batch: 20}
			p.load.Concurrency, p.load.Requests, p.load.Duration = 4, 40, time.Minute
			if err := p.check(); err != nil {
				t.Fatal(err)
			}
			rep, err := run(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Requests != 40 || rep.OK != 40 || len(rep.Errors) != 0 {
				t.Fatalf("report = %+v", rep)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.calls[tc.method] != 40 {
				t.Fatalf("%s calls = %d, want 40", tc.method, f.calls[tc.method])
			}
			if fillCalls := f.calls["BatchSet"]; tc.fills && (fillCalls != 3 || len(f.items) != 50) {
				t.Fatalf("fill made %d BatchSet calls and %d keys, want 3 and 50", fillCalls, len(f.items))
			}
		})
	}
}

func TestCheck(t *testing.T) {
	good := func() params {
		p := params{target: "127.0.0.1:7300", op: "get", cache: "messages", keys: 10, valueBytes: 1, batch: 1}
		p.load.Concurrency, p.load.Requests, p.load.Duration = 1, 1, time.Second
		return p
	}
	for _, tc := range []struct {
		name string
		edit func(*params)
	}{
		{"remote target", func(p *params) { p.target = "192.0.2.1:7300" }},
		{"any address", func(p *params) { p.target = "0.0.0.0:7300" }},
		{"unknown op", func(p *params) { p.op = "delete" }},
		{"no keys", func(p *params) { p.keys = 0 }},
		{"huge value", func(p *params) { p.valueBytes = 2 << 20 }},
		{"no batch", func(p *params) { p.batch = 0 }},
		{"no duration", func(p *params) { p.load.Duration = 0 }},
		{"no workers", func(p *params) { p.load.Concurrency = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.edit(&p)
			if err := p.check(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	p := good()
	if err := p.check(); err != nil {
		t.Fatalf("good params: %v", err)
	}
}
