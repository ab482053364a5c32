package authority

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	libmetrics "switchboard/libs/metrics"
	bounded "switchboard/libs/store"
	"switchboard/services/auth/token"
)

// metrics of an Authority. Labels are fixed sets: results, reasons and
// cache names; never a token, user or session.
type metrics struct {
	validations  *prometheus.CounterVec   // result
	validateTime *prometheus.HistogramVec // cache: hit, miss
	refreshes    *prometheus.CounterVec   // result
	refreshTime  prometheus.Histogram
	logins       *prometheus.CounterVec // result
	loginTime    prometheus.Histogram
	revocations  *prometheus.CounterVec // kind
	watchers     prometheus.Gauge

	// The hot path's children, resolved once.
	validOK             prometheus.Counter
	validHit, validMiss prometheus.Observer
}

func newMetrics() *metrics {
	m := &metrics{
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_validations_total",
			Help: "Access token validations by result (ok or the reason of refusal).",
		}, []string{"result"}),
		validateTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auth_validate_duration_seconds", Buckets: libmetrics.LatencyBuckets,
			Help: "Time to validate an access token, by whether the token cache hit.",
		}, []string{"cache"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_refreshes_total",
			Help: "Refreshes by result: rotated, replayed, reused, unknown, gone, malformed, error.",
		}, []string{"result"}),
		refreshTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auth_refresh_duration_seconds", Buckets: libmetrics.LatencyBuckets,
			Help: "Time to refresh a session.",
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_logins_total",
			Help: "Logins by result: ok, refused, limited, invalid, error.",
		}, []string{"result"}),
		loginTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auth_login_duration_seconds", Buckets: libmetrics.LatencyBuckets,
			Help: "Time to log in, password hashing included.",
		}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_revocation_events_total",
			Help: "Revocation events followed, by kind: session, access, reset.",
		}, []string{"kind"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auth_revocation_watchers", Help: "Open WatchRevocations streams.",
		}),
	}
	m.validOK = m.validations.WithLabelValues("ok")
	m.validHit = m.validateTime.WithLabelValues("hit")
	m.validMiss = m.validateTime.WithLabelValues("miss")
	return m
}

// RegisterMetrics adds the authority's metrics to reg.
func (a *Authority) RegisterMetrics(reg prometheus.Registerer) {
	m := a.metrics
	reg.MustRegister(m.validations, m.validateTime, m.refreshes, m.refreshTime,
		m.logins, m.loginTime, m.revocations, m.watchers)
	a.registerCacheMetrics(reg)
}

// registerCacheMetrics exports each cache's hits, misses and hit ratio.
func (a *Authority) registerCacheMetrics(reg prometheus.Registerer) {
	if a.tokens == nil {
		return
	}
	caches := map[string]func() bounded.Stats{
		"tokens":    func() bounded.Stats { return a.tokens.Stats() },
		"sessions":  func() bounded.Stats { return a.sessions.Stats() },
		"decisions": func() bounded.Stats { return a.decisions.Stats() },
	}
	for name, stats := range caches {
		labels := prometheus.Labels{"cache": name}
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "auth_cache_hit_ratio", ConstLabels: labels,
				Help: "Hits over lookups since start.",
			}, func() float64 { return stats().HitRatio() }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "auth_cache_hits_total", ConstLabels: labels, Help: "Cache hits.",
			}, func() float64 { return float64(stats().Hits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "auth_cache_misses_total", ConstLabels: labels, Help: "Cache misses.",
			}, func() float64 { return float64(stats().Misses) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "auth_cache_entries", ConstLabels: labels, Help: "Entries held.",
			}, func() float64 { return float64(stats().Entries) }),
		)
	}
}

func (m *metrics) validation(err error, hit bool, d time.Duration) {
	if err == nil {
		m.validOK.Inc()
	} else {
		m.validations.WithLabelValues(validationResult(err)).Inc()
	}
	if hit {
		m.validHit.Observe(d.Seconds())
	} else {
		m.validMiss.Observe(d.Seconds())
	}
}

func validationResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case KindOf(err) == Unavailable:
		return "error"
	}
	if r := token.ReasonOf(err); r != "" {
		return string(r)
	}
	return "revoked"
}

func (m *metrics) refresh(outcome string, _ error, d time.Duration) {
	m.refreshes.WithLabelValues(outcome).Inc()
	m.refreshTime.Observe(d.Seconds())
}

func (m *metrics) login(err error, d time.Duration) {
	result := "ok"
	switch KindOf(err) {
	case 0:
		if err != nil {
			result = "error"
		}
	case Unauthenticated:
		result = "refused"
	case RateLimited:
		result = "limited"
	case InvalidArgument:
		result = "invalid"
	default:
		result = "error"
	}
	m.logins.WithLabelValues(result).Inc()
	m.loginTime.Observe(d.Seconds())
}
