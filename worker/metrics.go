package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
)

// sdkMetrics exports the Temporal SDK's metrics to Prometheus. The SDK's
// tally-based handler is not published for this SDK version, so this is a
// small client.MetricsHandler of its own.
//
// The SDK names a metric and attaches tags at the call site, and the same
// metric may carry different tag sets from different call sites. Prometheus
// vectors need one fixed label set per name, so instead every distinct
// (name, tags) pair is a series of its own, kept here and emitted as constant
// metrics when Prometheus scrapes (an unchecked collector). Counters get the
// conventional "_total" suffix and timers become "_seconds" histograms.
type sdkMetrics struct {
	buckets []float64

	mu     sync.RWMutex
	series map[string]*series
	// kinds remembers the kind of each exported name: a name the SDK used as
	// a counter cannot also be exported as a gauge.
	kinds map[string]metricKind

	// conflicts counts metric uses dropped because their name was taken by
	// another kind; exported so that a drop cannot go unnoticed.
	conflicts atomic.Int64
}

type metricKind int

const (
	kindCounter metricKind = iota + 1
	kindGauge
	kindHistogram
)

// timerBuckets (seconds) span a gRPC call of a millisecond to a production
// chunk of many minutes.
var timerBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

func newSDKMetrics() *sdkMetrics {
	return &sdkMetrics{
		buckets: timerBuckets,
		series:  map[string]*series{},
		kinds:   map[string]metricKind{},
	}
}

// Handler returns the client.MetricsHandler to hand to the SDK.
func (m *sdkMetrics) Handler() client.MetricsHandler { return sdkHandler{metrics: m} }

// series is one exported time series: a name plus fixed label values.
type series struct {
	desc *prometheus.Desc
	kind metricKind
	// labelValues are in the order of desc's label names.
	labelValues []string

	counter atomic.Int64
	gauge   atomic.Uint64 // math.Float64bits

	histMu      sync.Mutex
	bucketCount []uint64 // non-cumulative, one per bucket
	count       uint64
	sum         float64
	buckets     []float64
}

func (s *series) Inc(delta int64) {
	// Counters only go up; the SDK never passes a negative delta, and a
	// negative one would corrupt every rate() over the series.
	if delta > 0 {
		s.counter.Add(delta)
	}
}

func (s *series) Update(value float64) { s.gauge.Store(math.Float64bits(value)) }

func (s *series) Record(d time.Duration) {
	seconds := d.Seconds()
	i := sort.SearchFloat64s(s.buckets, seconds)
	s.histMu.Lock()
	if i < len(s.bucketCount) {
		s.bucketCount[i]++
	}
	s.count++
	s.sum += seconds
	s.histMu.Unlock()
}

func (s *series) metric() (prometheus.Metric, error) {
	switch s.kind {
	case kindCounter:
		return prometheus.NewConstMetric(s.desc, prometheus.CounterValue, float64(s.counter.Load()), s.labelValues...)
	case kindGauge:
		return prometheus.NewConstMetric(s.desc, prometheus.GaugeValue, math.Float64frombits(s.gauge.Load()), s.labelValues...)
	default:
		s.histMu.Lock()
		cumulative := make(map[float64]uint64, len(s.buckets))
		var running uint64
		for i, upper := range s.buckets {
			running += s.bucketCount[i]
			cumulative[upper] = running
		}
		count, sum := s.count, s.sum
		s.histMu.Unlock()
		return prometheus.NewConstHistogram(s.desc, count, sum, cumulative, s.labelValues...)
	}
}

// discard takes metric updates that cannot be exported.
type discard struct{}

func (discard) Inc(int64)            {}
func (discard) Update(float64)       {}
func (discard) Record(time.Duration) {}

// get returns the series of name with tags, creating it on first use, or nil
// when name is already exported as another kind.
func (m *sdkMetrics) get(name string, kind metricKind, tags labelSet) *series {
	key := name + "\xff" + tags.key
	m.mu.RLock()
	s, ok := m.series[key]
	m.mu.RUnlock()
	if ok {
		if s.kind != kind {
			return nil
		}
		return s
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.series[key]; ok {
		if s.kind != kind {
			return nil
		}
		return s
	}
	if known, ok := m.kinds[name]; ok && known != kind {
		return nil
	}
	m.kinds[name] = kind
	s = &series{
		desc:        prometheus.NewDesc(name, "Temporal SDK metric "+name+".", tags.names, nil),
		kind:        kind,
		labelValues: tags.values,
	}
	if kind == kindHistogram {
		s.buckets = m.buckets
		s.bucketCount = make([]uint64, len(m.buckets))
	}
	m.series[key] = s
	return s
}

var conflictsDesc = prometheus.NewDesc("flowproof_worker_sdk_metric_conflicts_total",
	"Temporal SDK metric updates dropped because their name is exported as another kind.", nil, nil)

// Describe sends nothing, which makes this an unchecked collector: the
// series are only known once the SDK has used them.
func (m *sdkMetrics) Describe(chan<- *prometheus.Desc) {}

func (m *sdkMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.RLock()
	all := make([]*series, 0, len(m.series))
	for _, s := range m.series {
		all = append(all, s)
	}
	m.mu.RUnlock()
	for _, s := range all {
		metric, err := s.metric()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(s.desc, err)
			continue
		}
		ch <- metric
	}
	ch <- prometheus.MustNewConstMetric(conflictsDesc, prometheus.CounterValue, float64(m.conflicts.Load()))
}

// labelSet is a handler's tags as sorted Prometheus label names and values,
// with key identifying the set.
type labelSet struct {
	names  []string
	values []string
	key    string
}

func newLabelSet(tags map[string]string) labelSet {
	names := make([]string, 0, len(tags))
	byName := make(map[string]string, len(tags))
	for k, v := range tags {
		// An empty value is how Prometheus spells an absent label, so such
		// a tag is dropped rather than made into a second, equal series.
		if v == "" {
			continue
		}
		name := labelName(k)
		if _, dup := byName[name]; !dup {
			names = append(names, name)
		}
		byName[name] = v
	}
	sort.Strings(names)
	set := labelSet{names: names, values: make([]string, len(names))}
	var key strings.Builder
	for i, n := range names {
		set.values[i] = byName[n]
		key.WriteString(n)
		key.WriteByte('=')
		key.WriteString(byName[n])
		key.WriteByte(0)
	}
	set.key = key.String()
	return set
}

// labelName makes a tag key a valid Prometheus label name.
func labelName(tag string) string {
	var b strings.Builder
	for i, r := range tag {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', i > 0 && r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" || strings.HasPrefix(name, "__") {
		// "__" is reserved for Prometheus' own labels.
		name = "tag" + name
	}
	return name
}

// sdkHandler is the client.MetricsHandler; WithTags returns a copy with the
// merged tags, all sharing one sdkMetrics.
type sdkHandler struct {
	metrics *sdkMetrics
	tags    map[string]string
	labels  labelSet
}

func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return sdkHandler{metrics: h.metrics, tags: merged, labels: newLabelSet(merged)}
}

func (h sdkHandler) Counter(name string) client.MetricsCounter {
	return h.lookup(strings.TrimSuffix(name, "_total")+"_total", kindCounter)
}

func (h sdkHandler) Gauge(name string) client.MetricsGauge {
	return h.lookup(name, kindGauge)
}

func (h sdkHandler) Timer(name string) client.MetricsTimer {
	return h.lookup(strings.TrimSuffix(name, "_seconds")+"_seconds", kindHistogram)
}

// instrument is what Counter, Gauge and Timer hand out: a series, or
// discard when the name's kind conflicts.
type instrument interface {
	Inc(int64)
	Update(float64)
	Record(time.Duration)
}

func (h sdkHandler) lookup(name string, kind metricKind) instrument {
	if s := h.metrics.get(name, kind, h.labels); s != nil {
		return s
	}
	h.metrics.conflicts.Add(1)
	return discard{}
}

// metricsServer serves /metrics: the SDK's metrics, the figures of the runs
// this worker recorded (runmetrics), the Go runtime and process metrics of
// the worker; and the probes /healthz and /readyz.
type metricsServer struct {
	server   *http.Server
	listener net.Listener
}

// startMetricsServer serves /metrics (metrics, plus the Go runtime and
// process metrics), /healthz and /readyz (from ready) on addr, and with
// withPprof Go's profiles under /debug/pprof/ (parseConfig allows that on
// loopback only).
func startMetricsServer(addr string, metrics []prometheus.Collector, ready *readiness, withPprof bool, log *zap.Logger) (*metricsServer, error) {
	registry := prometheus.NewRegistry()
	for _, c := range slices.Concat(metrics, []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}) {
		if err := registry.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s (set -metrics-addr to another address, or to empty to disable): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(log),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/healthz", serveHealthy)
	mux.HandleFunc("/readyz", ready.serveReady)
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	return &metricsServer{server: server, listener: listener}, nil
}

// URL is where the metrics can be scraped.
func (s *metricsServer) URL() string { return "http://" + s.listener.Addr().String() + "/metrics" }

func (s *metricsServer) Shutdown(ctx context.Context) error {
	if err := s.server.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop metrics server: %w", err)
	}
	return nil
}
