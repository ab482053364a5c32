package redistest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of redis-server processes owned by a test,
// every node a master, the hash slots split evenly between them.
type Cluster struct {
	// Nodes are the cluster's servers. Restart keeps a node's cluster
	// configuration (nodes.conf in its directory), so a restarted node
	// rejoins with its slots and no data.
	Nodes []*Server

	tb testing.TB
}

// StartCluster starts n redis-server processes with cluster mode on, on
// free loopback ports, joins them with `redis-cli --cluster create` (no
// replicas), waits until every node reports cluster_state:ok and kills them
// at cleanup. Nodes notice a dead peer after 2 s (cluster-node-timeout).
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("a redis cluster needs at least 3 masters, got %d", n)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redis-cli not found (apt-get install redis-tools): %v", err)
	}
	c := &Cluster{tb: tb}
	for range n {
		c.Nodes = append(c.Nodes, Start(tb,
			"--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
			"--cluster-config-file", "nodes.conf"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// Addrs lists the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// Client returns a go-redis cluster client closed at cleanup.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
	c.tb.Cleanup(func() { cc.Close() })
	return cc
}

// Node returns the server listening on addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// WaitOK waits, up to 30 s, until every node reports cluster_state:ok.
func (c *Cluster) WaitOK() {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		for {
			info, err := clusterInfo(s.Addr)
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.tb.Fatalf("%s: cluster not ok: %v\n%s", s, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func clusterInfo(addr string) (string, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return cl.ClusterInfo(ctx).Result()
}
