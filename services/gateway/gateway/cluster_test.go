package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"switchboard/libs/config"
	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/redistest"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/gateway"
)

// Two replicas on a three-node Redis Cluster in cluster mode: a message
// published on one reaches a member on the other for rooms owned by every
// node, and a join naming a position recovers what followed it.
func TestClusterMode(t *testing.T) {
	a := startAuth(t)
	rc := redistest.StartCluster(t, 3)
	addrs := rc.Addrs()
	url := "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
	cluster := func(c *gateway.Config) { c.RedisMode = gateway.RedisCluster }
	r1 := startReplica(t, a, url, cluster)
	r2 := startReplica(t, a, url, cluster)

	// One room per node, found by asking the cluster who owns its slot.
	cc := rc.Client()
	owners := map[string]string{}
	var ids []string
	for i := 0; len(owners) < 3; i++ {
		id := fmt.Sprintf("c%d", i)
		m, err := cc.MasterForKey(context.Background(), broker.KeysOf("test:", "conversation:"+id).Channel)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := owners[m.Options().Addr]; !ok {
			owners[m.Options().Addr] = id
			ids = append(ids, id)
		}
	}

	c := dial(t, r1, a.Issue("ann", "s1", time.Hour))
	c.connected()
	for _, id := range ids {
		a.Grant("ann", id)
		c.join("conversation:" + id)
	}
	for _, id := range ids {
		room := "conversation:" + id
		res := publishHTTP(t, r2, room, `"hello"`)
		if m := c.message(room); m.Offset != res.Offset || m.Epoch != res.Epoch {
			t.Fatalf("%s: got %s/%d, published %s/%d", room, m.Epoch, m.Offset, res.Epoch, res.Offset)
		}
	}

	room := "conversation:" + ids[1]
	var first protocol.PublishResult
	for i := range 5 {
		res := publishHTTP(t, r2, room, fmt.Sprint(i))
		if i == 0 {
			first = res
		}
	}
	c2 := dial(t, r1, a.Issue("ann", "s2", time.Hour))
	c2.connected()
	since := protocol.Position{Epoch: first.Epoch, Offset: first.Offset}
	reply := c2.call(protocol.Request{Type: protocol.TypeJoin, Room: room, Since: &since})
	var res protocol.JoinResult
	if reply.Error != nil || json.Unmarshal(reply.Result, &res) != nil || res.Recovered == nil || !*res.Recovered {
		t.Fatalf("join with a kept position answered %+v", reply)
	}
	for want := first.Offset + 1; want <= first.Offset+4; want++ {
		if m := c2.message(room); m.Offset != want || m.Epoch != first.Epoch {
			t.Fatalf("recovered offset %d of %s, want %d of %s", m.Offset, m.Epoch, want, first.Epoch)
		}
	}
}

func TestRedisModeConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"single by default", map[string]string{"REDIS_URL": "redis://127.0.0.1:6379"}, ""},
		{"cluster", map[string]string{"REDIS_URL": "redis://a:1?addr=b:2", "GATEWAY_REDIS_MODE": "cluster"}, ""},
		{"cluster without url", map[string]string{"GATEWAY_REDIS_MODE": "cluster"}, "GATEWAY_REDIS_MODE"},
		{"unknown mode", map[string]string{"GATEWAY_REDIS_MODE": "sentinel"}, "GATEWAY_REDIS_MODE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := gateway.FromEnv(config.New(config.Map(tt.env)))
			if tt.wantErr == "" {
				want := tt.env["GATEWAY_REDIS_MODE"]
				if want == "" {
					want = gateway.RedisSingle
				}
				if err != nil || cfg.RedisMode != want {
					t.Fatalf("mode %q, %v; want %q", cfg.RedisMode, err, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}
