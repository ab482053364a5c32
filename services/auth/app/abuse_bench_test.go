package app_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	authv1 "switchboard/proto/switchboard/auth/v1"
)

// BenchmarkValidateUnderForgedFlood measures Validate of a valid token
// (warm cache, one call at a time) alone, while 16 clients flood the same
// server with valid tokens, and while they flood it with forged ones; it
// reports the rate of flood calls answered alongside. The two floods side
// by side tell what a forged token costs over a valid one.
//
//	go test -run '^$' -bench ValidateUnderForgedFlood -benchtime 3s ./app
func BenchmarkValidateUnderForgedFlood(b *testing.B) {
	for _, tc := range []struct {
		name     string
		flooders int
		forged   bool
	}{
		{"quiet", 0, false}, {"valid-flood", 16, false}, {"forged-flood", 16, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := start(b, env(nil), nil)
			p := login(b, r, nil)
			flood := []string{p.GetAccessToken()}
			if tc.forged {
				flood = forgeries(p.GetAccessToken())
			}
			ctx, cancel := context.WithCancel(context.Background())
			var calls atomic.Int64
			var wg sync.WaitGroup
			for w := range tc.flooders {
				wg.Go(func() {
					for i := w; ctx.Err() == nil; i++ {
						_, err := r.client.Validate(ctx, &authv1.ValidateRequest{AccessToken: flood[i%len(flood)]})
						if (err == nil) == tc.forged && ctx.Err() == nil {
							b.Errorf("flood token %d = %v", i%len(flood), err)
							return
						}
						calls.Add(1)
					}
				})
			}
			valid := &authv1.ValidateRequest{AccessToken: p.GetAccessToken()}
			call := ctxT(b)
			for b.Loop() {
				if _, err := r.client.Validate(call, valid); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			b.ReportMetric(float64(calls.Load())/b.Elapsed().Seconds(), "flood/s")
		})
	}
}
