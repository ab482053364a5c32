package main

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"switchboard/libs/cacheclient"
	cachev1 "switchboard/proto/switchboard/cache/v1"
)

// The Go client over three real replicas: keys land on their owners only,
// batches come back in order, and a stopped replica fails its own keys
// with UNAVAILABLE while the others go on.
func TestClientOverReplicas(t *testing.T) {
	ctx := testCtx(t)
	servers := map[string]*testServer{}
	var addrs []string
	for range 3 {
		ts := startServer(t, testConfig(t), nil)
		servers[ts.addr] = ts
		addrs = append(addrs, ts.addr)
	}
	c, err := cacheclient.New(addrs, cacheclient.Options{MaxBatch: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	const n = 300
	entries := make([]cacheclient.Entry, n)
	keys := make([]string, n)
	for i := range entries {
		keys[i] = fmt.Sprintf("conversation:%d", i)
		entries[i] = cacheclient.Entry{Key: keys[i], Value: []byte(fmt.Sprint(i))}
	}
	if err := c.BatchSet(ctx, "wide", entries); err != nil {
		t.Fatalf("BatchSet: %v", err)
	}

	// Each replica holds exactly the keys it owns.
	for addr := range servers {
		direct := dial(t, addr)
		resp, err := direct.BatchGet(ctx, &cachev1.BatchGetRequest{Cache: "wide", Keys: keys[:100]})
		if err != nil {
			t.Fatalf("BatchGet on %s: %v", addr, err)
		}
		for i, it := range resp.Items {
			if it.Found != (c.Owner(keys[i]) == addr) {
				t.Fatalf("%s on %s: found %v, owner %s", keys[i], addr, it.Found, c.Owner(keys[i]))
			}
		}
	}
	items, err := c.BatchGet(ctx, "wide", keys)
	if err != nil {
		t.Fatalf("BatchGet: %v", err)
	}
	for i, it := range items {
		if !it.Found || string(it.Value) != fmt.Sprint(i) {
			t.Fatalf("item %d = %+v", i, it)
		}
	}

	down := addrs[0]
	if err := servers[down].stop(); err != nil {
		t.Fatalf("stop %s: %v", down, err)
	}
	items, err = c.BatchGet(ctx, "wide", keys)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("BatchGet with %s stopped: %v, want UNAVAILABLE", down, err)
	}
	for i, it := range items {
		if owned := c.Owner(keys[i]) == down; it.Found == owned {
			t.Fatalf("item %d (owner %s) found = %v with %s stopped", i, c.Owner(keys[i]), it.Found, down)
		}
	}
	for _, k := range keys[:20] {
		want := codes.OK
		if c.Owner(k) == down {
			want = codes.Unavailable
		}
		if _, err := c.Get(ctx, "wide", k); status.Code(err) != want {
			t.Fatalf("Get %s (owner %s): %v, want %v", k, c.Owner(k), err, want)
		}
	}
}
