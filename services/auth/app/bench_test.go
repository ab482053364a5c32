package app_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"switchboard/libs/redistest"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// BenchmarkAuth measures, over real gRPC on one server per store, an empty
// unary RPC (the health Check) next to Validate with a warm cache,
// Validate with a cold one (every token seen once, so both the token and
// the session cache miss), and Refresh.
//
//	go test -run '^$' -bench Auth -benchtime 3s ./app
func BenchmarkAuth(b *testing.B) {
	srv := redistest.Start(b)
	stores := []struct {
		name string
		vars map[string]string
	}{
		{"memory", nil},
		{"redis", map[string]string{"AUTH_REDIS_URL": srv.URL(), "AUTH_SIGNING_KEY_FILE": keyFile(b)}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			r := start(b, env(st.vars), nil)
			health := healthpb.NewHealthClient(dial(b, r.svc.GRPCAddr))
			ctx := context.Background()

			b.Run("empty", func(b *testing.B) {
				parallel(b, func() error {
					_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
					return err
				})
			})
			b.Run("validate_warm", func(b *testing.B) {
				p := issue(b, r, nil, "u-warm")
				req := &authv1.ValidateRequest{AccessToken: p.GetAccessToken()}
				b.ResetTimer()
				parallel(b, func() error {
					_, err := r.client.Validate(ctx, req)
					return err
				})
			})
			b.Run("validate_cold", func(b *testing.B) {
				tokens := make([]string, b.N)
				for i := range tokens {
					p, err := r.svc.Authority.IssueSession(ctx, fmt.Sprintf("u-cold-%d", i))
					if err != nil {
						b.Fatal(err)
					}
					tokens[i] = p.AccessToken
				}
				var next atomic.Int64
				b.ResetTimer()
				parallel(b, func() error {
					tok := tokens[next.Add(1)-1]
					_, err := r.client.Validate(ctx, &authv1.ValidateRequest{AccessToken: tok})
					return err
				})
			})
			b.Run("refresh", func(b *testing.B) {
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					rt := issue(b, r, nil, "u-refresh").GetRefreshToken()
					for pb.Next() {
						resp, err := r.client.Refresh(ctx, &authv1.RefreshRequest{RefreshToken: rt})
						if err != nil {
							b.Error(err)
							return
						}
						rt = resp.GetTokens().GetRefreshToken()
					}
				})
			})
		})
	}
}

// parallel runs call from 8 goroutines per CPU until b.N calls are made.
func parallel(b *testing.B, call func() error) {
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRevocationFanout measures the time from a Logout on one replica
// until a WatchRevocations subscriber of another replica hears of it, over
// Redis pub/sub, and reports its percentiles.
//
//	go test -run '^$' -bench RevocationFanout -benchtime 2000x ./app
func BenchmarkRevocationFanout(b *testing.B) {
	srv := redistest.Start(b)
	vars := map[string]string{"AUTH_REDIS_URL": srv.URL(), "AUTH_SIGNING_KEY_FILE": keyFile(b)}
	a, c := start(b, env(vars), nil), start(b, env(vars), nil)
	events := watch(b, c)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p := issue(b, a, nil, "u-fan")
		b.StartTimer()
		t0 := time.Now()
		if _, err := a.client.Logout(ctx, &authv1.LogoutRequest{RefreshToken: p.GetRefreshToken()}); err != nil {
			b.Fatal(err)
		}
		for {
			m := next(b, events)
			if m.GetSession().GetSessionId() == p.GetSessionId() {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(1), "max-µs")
}

// BenchmarkWarmVersusEmpty interleaves blocks of empty RPCs and of warm
// Validate calls on one server, so that both see the same load from the
// rest of the machine, and reports each one's time per call and the
// throughput of Validate as a share of the empty RPC's. One op is one
// block of 1000 calls of each kind from 16 goroutines.
//
//	go test -run '^$' -bench WarmVersusEmpty -benchtime 40x ./app
func BenchmarkWarmVersusEmpty(b *testing.B) {
	r := start(b, env(nil), nil)
	health := healthpb.NewHealthClient(dial(b, r.svc.GRPCAddr))
	ctx := context.Background()
	req := &authv1.ValidateRequest{AccessToken: issue(b, r, nil, "u-warm").GetAccessToken()}
	empty := func() error { _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); return err }
	validate := func() error { _, err := r.client.Validate(ctx, req); return err }
	block(b, empty, 1000) // warm both paths up
	block(b, validate, 1000)

	var tEmpty, tValidate time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 { // alternate which goes first
			tEmpty += block(b, empty, 1000)
			tValidate += block(b, validate, 1000)
		} else {
			tValidate += block(b, validate, 1000)
			tEmpty += block(b, empty, 1000)
		}
	}
	calls := float64(b.N * 1000)
	b.ReportMetric(float64(tEmpty.Nanoseconds())/calls, "empty-ns/call")
	b.ReportMetric(float64(tValidate.Nanoseconds())/calls, "validate-ns/call")
	b.ReportMetric(100*float64(tEmpty)/float64(tValidate), "validate-%-of-empty")
}

// block makes n calls from 16 goroutines and returns the wall time.
func block(b *testing.B, call func() error, n int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
