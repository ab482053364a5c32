package redistest

import (
	"context"
	"fmt"
	"testing"
)

// The cluster serves keys of every slot, spread over its three nodes.
func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	cc := c.Client()
	ctx := context.Background()
	owners := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("k%d", i)
		if err := cc.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if c.Node(m.Options().Addr) == nil {
			t.Fatalf("%s owned by %s, not a node of the cluster", key, m.Options().Addr)
		}
		owners[m.Options().Addr] = true
	}
	if len(owners) != 3 {
		t.Fatalf("30 keys on %d nodes, want 3", len(owners))
	}
}
