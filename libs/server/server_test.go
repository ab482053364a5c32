package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"switchboard/libs/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCredentialMatches(t *testing.T) {
	c := NewCredential("s3cret")
	for _, tc := range []struct {
		presented string
		want      bool
	}{
		{"s3cret", true}, {"s3cre", false}, {"s3cret ", false}, {"", false},
	} {
		if got := c.Matches(tc.presented); got != tc.want {
			t.Errorf("Matches(%q) = %v, want %v", tc.presented, got, tc.want)
		}
	}
	if NewCredential("").Matches("") {
		t.Error("an empty credential matched an empty presentation")
	}
}

// startGRPC serves a GRPC on a loopback port until the test ends.
func startGRPC(t *testing.T, opts GRPCOptions) (*GRPC, string) {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = metrics.NewRegistry()
	}
	g := NewGRPC(opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return g, lis.Addr().String()
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestRequireRefusesTrustedCallsWithoutCredential(t *testing.T) {
	cred := NewCredential("backend-secret")
	unary, stream := cred.Require(func(method string) bool {
		return method == "/grpc.health.v1.Health/Check"
	})
	g, addr := startGRPC(t, GRPCOptions{
		Unary: []grpc.UnaryServerInterceptor{unary}, Stream: []grpc.StreamServerInterceptor{stream},
	})
	g.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	for _, tc := range []struct {
		name string
		opts []grpc.DialOption
		want codes.Code
	}{
		{"none", nil, codes.Unauthenticated},
		{"wrong", []grpc.DialOption{WithCredential("guess", false)}, codes.Unauthenticated},
		{"right", []grpc.DialOption{WithCredential("backend-secret", false)}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := healthpb.NewHealthClient(dial(t, addr, tc.opts...))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("Check: code %s (%v), want %s", got, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "guess") {
				t.Fatalf("error repeats the presented credential: %v", err)
			}
		})
	}
}

func TestCheckGRPCFollowsHealth(t *testing.T) {
	g, addr := startGRPC(t, GRPCOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := CheckGRPC(ctx, addr); err == nil {
		t.Fatal("CheckGRPC passed before the service said it serves")
	}
	g.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if err := CheckGRPC(ctx, addr); err != nil {
		t.Fatalf("CheckGRPC: %v", err)
	}
}

func TestServeHTTPStopsOnCancel(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHTTP(ctx, lis, srv, time.Second) }()

	url := "http://" + lis.Addr().String() + "/"
	if err := CheckHTTP(context.Background(), url); err != nil {
		t.Fatalf("CheckHTTP: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := CheckHTTP(context.Background(), url); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}
