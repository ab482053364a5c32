package broker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/libs/redistest"
	"switchboard/services/gateway/broker"
)

// commandCalls returns how many times Redis ran each command since the
// last CONFIG RESETSTAT, from INFO commandstats.
func commandCalls(t *testing.T, rc *redis.Client) map[string]int {
	t.Helper()
	info, err := rc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for line := range strings.SplitSeq(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for kv := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				calls[name], _ = strconv.Atoi(v)
			}
		}
	}
	return calls
}

// Rooms wanted or dropped together go to Redis as SUBSCRIBE and UNSUBSCRIBE
// commands of up to BatchMax channels each, not one command per room.
func TestRedisBatchesSubscriptions(t *testing.T) {
	const n, batchMax = 1000, 128
	rs := redistest.Start(t)
	rc := rs.Client()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, ContextTimeoutEnabled: true})
	b := broker.NewRedis(broker.RedisOptions{Client: c, Prefix: "bt:", BatchMax: batchMax}, func(broker.Message) {})
	t.Cleanup(func() {
		b.Close()
		c.Close()
	})
	if err := rc.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("conversation:%d", i)
	}
	b.Want(rooms, true)
	ready(t, b, rooms...)
	want := (n + batchMax - 1) / batchMax
	if got := commandCalls(t, rc)["subscribe"]; got != want {
		t.Fatalf("%d rooms went out in %d SUBSCRIBE commands, want %d of at most %d channels", n, got, want, batchMax)
	}
	if got, _ := rc.PubSubNumSub(ctx, "bt:{conversation:999}").Result(); got["bt:{conversation:999}"] != 1 {
		t.Fatalf("the last room is not subscribed: %v", got)
	}

	b.Want(rooms, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		chans, err := rc.PubSubChannels(ctx, "bt:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(chans) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d channels left after every room was dropped", len(chans))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := commandCalls(t, rc)["unsubscribe"]; got != want {
		t.Fatalf("%d rooms dropped in %d UNSUBSCRIBE commands, want %d", n, got, want)
	}
}
