package main

import (
	"context"
	"errors"
	"time"
)

// Step mode raises the publish rate by a fixed step, one fixed-length step
// at a time, over the same connected clients, until a step does not hold.
// A step holds when every publish was acknowledged, every delivery arrived,
// the achieved rate reached stepRateFloor of the target and the fan-out p99
// stayed within the bound. The answer is the highest rate that held.

// Bounds of the step mode.
const (
	maxSteps        = 50
	maxStepDuration = 30 * time.Second
	// stepRateFloor is the share of the target rate a step must achieve:
	// below it the publisher, not the gateway, set the pace.
	stepRateFloor = 0.95
)

// Why a step run stopped.
const (
	stopP99       = "p99_over_bound"
	stopLost      = "deliveries_lost"
	stopErrors    = "publish_errors"
	stopRate      = "rate_not_reached"
	stopMaxRate   = "max_rate_held"
	stopCancelled = "cancelled"
)

// stepParams are the step mode's flags.
type stepParams struct {
	start    int
	step     int
	duration time.Duration
	p99Bound time.Duration
	maxRate  int
}

// count returns how many steps the run has at most.
func (s stepParams) count() int { return (s.maxRate-s.start)/s.step + 1 }

func (s stepParams) check() error {
	switch {
	case s.start < 1 || s.start > 20000:
		return errors.New("-step-start must be 1 to 20000")
	case s.step < 1:
		return errors.New("-step must be at least 1")
	case s.maxRate < s.start || s.maxRate > 20000:
		return errors.New("-step-max must be -step-start to 20000")
	case s.duration <= 0 || s.duration > maxStepDuration:
		return errors.New("-step-duration must be above 0 and at most 30s")
	case s.p99Bound <= 0:
		return errors.New("-p99-bound must be above 0")
	case s.count() > maxSteps:
		return errors.New("at most 50 steps: raise -step or lower -step-max")
	}
	return nil
}

// stepReport is the step mode's part of the report.
type stepReport struct {
	StartRate       int        `json:"start_rate"`
	Step            int        `json:"step"`
	StepSeconds     float64    `json:"step_seconds"`
	P99BoundMS      float64    `json:"p99_bound_ms"`
	MaxRate         int        `json:"max_rate"`
	HighestHeldRate int        `json:"highest_held_rate"`
	StoppedBecause  string     `json:"stopped_because"`
	Steps           []stepFigs `json:"steps"`
}

// stepFigs are one step's figures.
type stepFigs struct {
	Rate          int     `json:"rate"`
	Seconds       float64 `json:"seconds"`
	Published     int64   `json:"published"`
	AchievedRate  float64 `json:"achieved_rate"`
	PublishErrors int64   `json:"publish_errors"`
	Expected      int64   `json:"expected_deliveries"`
	Delivered     int64   `json:"deliveries"`
	Duplicates    int64   `json:"duplicates"`
	Lost          int64   `json:"lost"`
	LatencyMS     *pcts   `json:"latency_ms"`
	ServerCPU     float64 `json:"server_cpu_seconds"`
	Held          bool    `json:"held"`
}

// stepPhase runs the steps over the connected clients and fills rep.Steps.
func stepPhase(ctx context.Context, p params, reps []*replica, redisPID int, rec *recorder, rep *report) {
	s := p.step
	sr := &stepReport{StartRate: s.start, Step: s.step, StepSeconds: s.duration.Seconds(),
		P99BoundMS: float64(s.p99Bound) / 1e6, MaxRate: s.maxRate, Steps: []stepFigs{}}
	rep.Steps = sr
	for rate := s.start; rate <= s.maxRate; rate += s.step {
		if ctx.Err() != nil {
			sr.StoppedBecause = stopCancelled
			return
		}
		figs := runStep(ctx, p, rate, reps, redisPID, rec)
		why := judge(figs, s)
		figs.Held = why == ""
		sr.Steps = append(sr.Steps, figs)
		if !figs.Held {
			sr.StoppedBecause = why
			return
		}
		sr.HighestHeldRate = rate
	}
	sr.StoppedBecause = stopMaxRate
}

// runStep publishes at rate for one step and returns its figures.
func runStep(ctx context.Context, p params, rate int, reps []*replica, redisPID int, rec *recorder) stepFigs {
	rec.reset()
	one := p
	one.rate, one.duration = rate, p.step.duration
	var r report
	publishPhase(ctx, one, reps, redisPID, rec, &r)
	return stepFigs{Rate: rate, Seconds: r.Seconds, Published: r.Published, AchievedRate: r.AchievedRate,
		PublishErrors: r.PublishErrors, Expected: r.Expected, Delivered: r.Delivered,
		Duplicates: r.Duplicates, Lost: r.Lost,
		LatencyMS: r.LatencyMS, ServerCPU: r.ServerCPU}
}

// judge returns why a step did not hold, or "" when it held. The rate is
// judged on the count published, one short of the floor forgiven: the last
// tick of a step falls just before its end.
func judge(f stepFigs, s stepParams) string {
	want := stepRateFloor * float64(f.Rate) * s.duration.Seconds()
	switch {
	case f.PublishErrors > 0 || f.Published == 0:
		return stopErrors
	case f.Lost > 0:
		return stopLost
	case f.LatencyMS == nil || f.LatencyMS.P99 > float64(s.p99Bound)/1e6:
		return stopP99
	case float64(f.Published+1) < want:
		return stopRate
	}
	return ""
}
