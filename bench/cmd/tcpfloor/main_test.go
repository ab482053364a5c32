package main

import (
	"testing"
	"time"
)

func TestCheckBounds(t *testing.T) {
	ok := params{conns: 2000, rate: 10000, duration: 10 * time.Second, payload: 180}
	if err := ok.check(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	bad := map[string]func(*params){
		"no connections":  func(p *params) { p.conns = 0 },
		"too many":        func(p *params) { p.conns = 10001 },
		"rate too low":    func(p *params) { p.rate = 999 },
		"rate too high":   func(p *params) { p.rate = 100001 },
		"no duration":     func(p *params) { p.duration = 0 },
		"too long":        func(p *params) { p.duration = time.Minute + time.Second },
		"empty payload":   func(p *params) { p.payload = 0 },
		"payload too big": func(p *params) { p.payload = 65537 },
	}
	for name, change := range bad {
		t.Run(name, func(t *testing.T) {
			p := ok
			change(&p)
			if p.check() == nil {
				t.Fatalf("%+v accepted", p)
			}
		})
	}
}
