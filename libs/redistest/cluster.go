package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
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
	return StartClusterReplicas(tb, n, 0)
}

// StartClusterReplicas is StartCluster with replicas replicas of each of
// the masters masters: masters × (1 + replicas) processes. A master's
// replica takes over after the master has been unreachable for 2 s.
func StartClusterReplicas(tb testing.TB, masters, replicas int) *Cluster {
	tb.Helper()
	if masters < 3 {
		tb.Fatalf("a redis cluster needs at least 3 masters, got %d", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redis-cli not found (apt-get install redis-tools): %v", err)
	}
	c := &Cluster{tb: tb}
	for range masters * (1 + replicas) {
		c.Nodes = append(c.Nodes, Start(tb,
			"--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
			"--cluster-config-file", "nodes.conf", "--repl-diskless-sync-delay", "0"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	c.waitReplicas()
	return c
}

// waitReplicas waits, up to 30 s, until every replica has synchronised
// with its master: a replica that never did cannot take over.
func (c *Cluster) waitReplicas() {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		for {
			info, err := replicationInfo(s.Addr)
			if err == nil && (strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				c.tb.Fatalf("%s: replica not in sync: %v\n%s", s, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func replicationInfo(addr string) (string, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return cl.Info(ctx, "replication").Result()
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

// WaitOK waits, up to 30 s, until every running node reports
// cluster_state:ok.
func (c *Cluster) WaitOK() {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Nodes {
		if !s.Running() {
			continue
		}
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

// MoveSlot moves a hash slot, with its keys, from the node that owns it to
// to, the way `redis-cli --cluster reshard` does: IMPORTING on to,
// MIGRATING on the owner, MIGRATE of every key, then SETSLOT NODE on every
// node. Subscribers of the slot's shard channels on the old owner are
// unsubscribed by it.
func (c *Cluster) MoveSlot(slot int, to *Server) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clients := make(map[string]*redis.Client, len(c.Nodes))
	ids := make(map[string]string, len(c.Nodes))
	for _, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		defer cl.Close()
		id, err := cl.ClusterMyID(ctx).Result()
		if err != nil {
			c.tb.Fatalf("%s: CLUSTER MYID: %v", s, err)
		}
		clients[s.Addr], ids[s.Addr] = cl, id
	}
	from := c.owner(ctx, clients[to.Addr], slot)
	if from == to.Addr {
		return
	}
	src, dst := clients[from], clients[to.Addr]
	c.must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from]).Err())
	c.must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to.Addr]).Err())
	host, port, _ := net.SplitHostPort(to.Addr)
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		c.must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		c.must(src.Do(ctx, args...).Err())
	}
	c.must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to.Addr]).Err())
	c.must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to.Addr]).Err())
	for addr, cl := range clients {
		if addr != from && addr != to.Addr {
			c.must(cl.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to.Addr]).Err())
		}
	}
}

// owner returns the address of the node owning slot, as cl sees it.
func (c *Cluster) owner(ctx context.Context, cl *redis.Client, slot int) string {
	c.tb.Helper()
	ranges, err := cl.ClusterSlots(ctx).Result()
	c.must(err)
	for _, r := range ranges {
		if slot >= r.Start && slot <= r.End && len(r.Nodes) > 0 {
			return r.Nodes[0].Addr
		}
	}
	c.tb.Fatalf("slot %d has no owner", slot)
	return ""
}

func (c *Cluster) must(err error) {
	c.tb.Helper()
	if err != nil {
		c.tb.Fatal(fmt.Errorf("move slot: %w", err))
	}
}
