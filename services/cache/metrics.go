package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// statsCollector reads every cache's statistics at scrape time, so the hot
// path counts nothing twice. Its only label is the cache name, a bounded
// set fixed at start.
type statsCollector struct {
	caches []*cache

	hits, misses, evictions, expirations *prometheus.Desc
	entries, bytes, maxEntries, maxBytes *prometheus.Desc
	watchers, dropped                    *prometheus.Desc
}

func newStatsCollector(cs *caches) *statsCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("switchboard_cache_"+name, help, []string{"cache"}, nil)
	}
	return &statsCollector{
		caches:      cs.list,
		hits:        d("hits_total", "Gets that found a live entry."),
		misses:      d("misses_total", "Gets that found no live entry."),
		evictions:   d("evictions_total", "Entries removed to respect the entry or byte limit."),
		expirations: d("expirations_total", "Entries removed because their TTL ran out."),
		entries:     d("entries", "Entries held now."),
		bytes:       d("bytes", "Bytes held now: keys, values and the fixed overhead per entry."),
		maxEntries:  d("max_entries", "Entry limit; 0 means none."),
		maxBytes:    d("max_bytes", "Byte limit; 0 means none."),
		watchers:    d("watchers", "Watch streams open now."),
		dropped:     d("watch_dropped_events_total", "Events lost by watchers that did not keep up."),
	}
}

func (s *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		s.hits, s.misses, s.evictions, s.expirations,
		s.entries, s.bytes, s.maxEntries, s.maxBytes, s.watchers, s.dropped,
	} {
		ch <- d
	}
}

func (s *statsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.caches {
		name := c.spec.Name
		st := c.store.Stats()
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		counter(s.hits, st.Hits)
		counter(s.misses, st.Misses)
		counter(s.evictions, st.Evictions)
		counter(s.expirations, st.Expirations)
		counter(s.dropped, c.hub.dropped.Load())
		gauge(s.entries, float64(st.Entries))
		gauge(s.bytes, float64(st.Bytes))
		gauge(s.maxEntries, float64(st.MaxEntries))
		gauge(s.maxBytes, float64(st.MaxBytes))
		gauge(s.watchers, float64(c.hub.count.Load()))
	}
}
