package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/metrics"
)

// Metrics are the gateway's own series.
type Metrics struct {
	Connections  prometheus.Gauge
	Fallback     prometheus.Gauge // of Connections, those over the event-stream fallback
	Rooms        prometheus.Gauge
	Members      prometheus.Gauge
	MessagesIn   *prometheus.CounterVec // by request type
	BytesIn      prometheus.Counter
	MessagesOut  prometheus.Counter
	BytesOut     prometheus.Counter
	Deliveries   prometheus.Counter // messages from the broker handed to members
	WriteLatency prometheus.Histogram
	Closes       *prometheus.CounterVec // by close code
	RedisErrors  prometheus.Counter
	AuthCache    *prometheus.CounterVec // by result: hit, miss
	AuthErrors   prometheus.Counter
	Publishes    *prometheus.CounterVec // by source and result
	Revocations  *prometheus.CounterVec // by kind
	Gaps         *prometheus.CounterVec // by kind: offset, epoch
	Repairs      *prometheus.CounterVec // by result: repaired, resync
	Recoveries   *prometheus.CounterVec // joins with a position, by result
}

// New registers the metrics in reg.
func New(reg prometheus.Registerer) *Metrics {
	f := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "switchboard", Subsystem: "gateway", Name: name, Help: help}
	}
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts(f("connections",
			"Open connections, WebSocket and event-stream fallback."))),
		Fallback: prometheus.NewGauge(prometheus.GaugeOpts(f("fallback_connections",
			"Open connections over the event-stream fallback, counted in connections too."))),
		Rooms:   prometheus.NewGauge(prometheus.GaugeOpts(f("rooms", "Rooms with at least one member here."))),
		Members: prometheus.NewGauge(prometheus.GaugeOpts(f("members", "Connection-room memberships."))),
		MessagesIn: prometheus.NewCounterVec(prometheus.CounterOpts(f("frames_in_total",
			"Frames received from clients, by type.")), []string{"type"}),
		BytesIn:     prometheus.NewCounter(prometheus.CounterOpts(f("bytes_in_total", "Bytes received from clients."))),
		MessagesOut: prometheus.NewCounter(prometheus.CounterOpts(f("frames_out_total", "Frames written to clients."))),
		BytesOut:    prometheus.NewCounter(prometheus.CounterOpts(f("bytes_out_total", "Bytes written to clients."))),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts(f("deliveries_total",
			"Room messages queued to members."))),
		WriteLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "switchboard", Subsystem: "gateway", Name: "publish_to_write_seconds",
			Help:    "Time from a publish to the write of the message to a client.",
			Buckets: metrics.LatencyBuckets,
		}),
		Closes: prometheus.NewCounterVec(prometheus.CounterOpts(f("closes_total",
			"Connections closed by the server, by close code.")), []string{"code"}),
		RedisErrors: prometheus.NewCounter(prometheus.CounterOpts(f("redis_errors_total", "Redis errors met by the broker."))),
		AuthCache: prometheus.NewCounterVec(prometheus.CounterOpts(f("auth_cache_total",
			"Token validations by cache result.")), []string{"result"}),
		AuthErrors: prometheus.NewCounter(prometheus.CounterOpts(f("auth_errors_total",
			"Calls to auth that failed for want of an answer."))),
		Publishes: prometheus.NewCounterVec(prometheus.CounterOpts(f("publishes_total",
			"Publishes by source (client, api) and result.")), []string{"source", "result"}),
		Revocations: prometheus.NewCounterVec(prometheus.CounterOpts(f("revocations_total",
			"Revocations received from auth, by kind.")), []string{"kind"}),
		Gaps: prometheus.NewCounterVec(prometheus.CounterOpts(f("gaps_total",
			"Live messages that skipped offsets or changed epoch, by kind.")), []string{"kind"}),
		Repairs: prometheus.NewCounterVec(prometheus.CounterOpts(f("repairs_total",
			"Gap repairs from room history, by result.")), []string{"result"}),
		Recoveries: prometheus.NewCounterVec(prometheus.CounterOpts(f("recoveries_total",
			"Joins naming a position, by result: recovered, not_recoverable, error.")), []string{"result"}),
	}
	reg.MustRegister(m.Connections, m.Fallback, m.Rooms, m.Members, m.MessagesIn, m.BytesIn, m.MessagesOut,
		m.BytesOut, m.Deliveries, m.WriteLatency, m.Closes, m.RedisErrors, m.AuthCache,
		m.AuthErrors, m.Publishes, m.Revocations, m.Gaps, m.Repairs, m.Recoveries)
	return m
}

// Discard returns metrics registered nowhere, for tests and tools.
func Discard() *Metrics { return New(prometheus.NewRegistry()) }

// Closed counts a close with code.
func (m *Metrics) Closed(code protocol.CloseCode) {
	m.Closes.WithLabelValues(strconv.Itoa(int(code))).Inc()
}
