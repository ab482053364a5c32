package publish_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"switchboard/libs/grpctest"
	"switchboard/libs/redistest"
	"switchboard/libs/server"
	gatewayv1 "switchboard/proto/switchboard/gateway/v1"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/publish"
	"switchboard/services/gateway/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "publish-test-credential"

// serve runs a PublishService over b on a loopback gRPC server and returns
// a client carrying the credential.
func serve(t *testing.T, b broker.Broker) gatewayv1.PublishServiceClient {
	t.Helper()
	svc := publish.New(b, server.NewCredential(secret), 1<<16, 5*time.Second, telemetry.Discard())
	addr := grpctest.Serve(t, func(s *grpc.Server) { gatewayv1.RegisterPublishServiceServer(s, svc) })
	conn := grpctest.Dial(t, addr, server.WithCredential(secret, false))
	return gatewayv1.NewPublishServiceClient(conn)
}

// brokers returns a Memory broker and a Redis broker.
func brokers(t *testing.T) map[string]broker.Broker {
	t.Helper()
	rs := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, ContextTimeoutEnabled: true})
	r := broker.NewRedis(broker.RedisOptions{Client: c, Prefix: "pt:"}, func(broker.Message) {})
	m := broker.NewMemory(func(broker.Message) {}, broker.HistoryOptions{})
	t.Cleanup(func() {
		r.Close()
		c.Close()
		m.Close()
	})
	return map[string]broker.Broker{"redis": r, "memory": m}
}

// A publish repeated over gRPC with the same idempotency key answers with
// the original position and stores nothing more; another key, or none,
// publishes at the next offset.
func TestPublishIdempotentOverGRPC(t *testing.T) {
	for name, b := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			client := serve(t, b)
			ctx := context.Background()
			call := func(key string) *gatewayv1.PublishResponse {
				t.Helper()
				res, err := client.Publish(ctx, &gatewayv1.PublishRequest{
					Room: "conversation:p", Data: []byte(`{"text":"hi"}`), IdempotencyKey: key,
				})
				if err != nil {
					t.Fatalf("publish with key %q: %v", key, err)
				}
				return res
			}

			first := call("k1")
			again := call("k1")
			if again.GetEpoch() != first.GetEpoch() || again.GetOffset() != first.GetOffset() {
				t.Fatalf("repeat answered %s/%d, want %s/%d", again.GetEpoch(), again.GetOffset(), first.GetEpoch(), first.GetOffset())
			}
			other, none := call("k2"), call("")
			if other.GetOffset() != first.GetOffset()+1 || none.GetOffset() != first.GetOffset()+2 {
				t.Fatalf("after offset %d, another key got %d and no key %d", first.GetOffset(), other.GetOffset(), none.GetOffset())
			}
			msgs, err := b.History(ctx, "conversation:p", first.GetEpoch(), 0)
			if err != nil || len(msgs) != 3 {
				t.Fatalf("history holds %d messages (%v), want 3", len(msgs), err)
			}
		})
	}
}
