package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/redistest"
	"switchboard/services/auth/store"
	"switchboard/services/auth/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemory(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return store.NewMemory() })
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	var n atomic.Int64
	storetest.Run(t, func(*testing.T) store.Store {
		// A fresh prefix per test isolates its keys and its channel.
		return store.NewRedis(client, fmt.Sprintf("t%d:", n.Add(1)))
	})
}

// A subscription that lost its connection says so with a Reset once it is
// back, and then delivers events again.
func TestRedisSubscriptionResetAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	s := store.NewRedis(srv.Client(), "r:")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	srv.Restart()
	for {
		select {
		case e, ok := <-sub.C():
			if !ok {
				t.Fatal("subscription ended instead of resetting")
			}
			if e.Kind != store.Reset {
				t.Fatalf("event before the reset: %+v", e)
			}
		case <-ctx.Done():
			t.Fatal("no reset after a restart")
		}
		break
	}
	if err := s.Grant(ctx, "u", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeAccess(ctx, "u", "c"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub.C():
		if e.Kind != store.AccessRevoked {
			t.Fatalf("event = %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no event after the reset")
	}
}
