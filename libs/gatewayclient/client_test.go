package gatewayclient_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/libs/gatewayclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoff(t *testing.T) {
	lo, hi := 500*time.Millisecond, 20*time.Second
	tests := []struct {
		attempt int
		ceiling time.Duration
	}{
		{0, lo}, {1, time.Second}, {3, 4 * time.Second}, {5, 16 * time.Second},
		{6, hi}, {40, hi}, {1000, hi},
	}
	for _, tt := range tests {
		t.Run(tt.ceiling.String(), func(t *testing.T) {
			var most time.Duration
			for range 2000 {
				d := gatewayclient.Backoff(tt.attempt, lo, hi)
				if d < 0 || d > tt.ceiling {
					t.Fatalf("attempt %d: %s outside [0, %s]", tt.attempt, d, tt.ceiling)
				}
				most = max(most, d)
			}
			if most < tt.ceiling/2 { // full jitter spreads over the whole range
				t.Fatalf("attempt %d: largest of 2000 draws %s, want near %s", tt.attempt, most, tt.ceiling)
			}
		})
	}
}

func TestGrade(t *testing.T) {
	tests := []struct {
		rtt  time.Duration
		want gatewayclient.Quality
	}{
		{time.Millisecond, gatewayclient.QualityExcellent},
		{99 * time.Millisecond, gatewayclient.QualityExcellent},
		{100 * time.Millisecond, gatewayclient.QualityGood},
		{299 * time.Millisecond, gatewayclient.QualityGood},
		{300 * time.Millisecond, gatewayclient.QualityPoor},
		{5 * time.Second, gatewayclient.QualityPoor},
	}
	for _, tt := range tests {
		t.Run(tt.rtt.String(), func(t *testing.T) {
			if got := gatewayclient.Grade(tt.rtt); got != tt.want {
				t.Fatalf("Grade(%s) = %s, want %s", tt.rtt, got, tt.want)
			}
		})
	}
}
