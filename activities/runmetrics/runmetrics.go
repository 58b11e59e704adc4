// Package runmetrics exports the figures of each finished run as Prometheus
// metrics of the worker that recorded it: runs by outcome, the time of the
// last success, and the last run's messages per hop, latency, lag,
// backpressure and token renewals. The workflow computes the figures; the
// activity RecordRunMetrics, called once at the end of a run, hands them to
// the worker's Recorder, which its /metrics endpoint serves.
//
// Each worker exports only the runs whose RecordRunMetrics it executed, so
// with several workers a query sums the counters over instances and takes
// the newest instance's last-run figures (see docs/running.md).
package runmetrics

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowproof/flowproof/activities/verify"
)

// Statuses a run ends with (workflows.Status); the counter starts at zero
// for each, so that the first failure after a worker starts is an increase
// that increase() can see.
var Statuses = []string{"Succeeded", "Failed", "Canceled"}

// Run is what RecordRunMetrics exports: the figures of one finished run,
// taken from its workflows.Metrics. Fields are only added, never renamed,
// so that runs recorded by older workflows still decode.
type Run struct {
	// RunID is the flowproof run; it is logged, not exported as a label,
	// which would make a series per run.
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	// EndedAtUnixMillis is the workflow's time at the end of the run, so
	// that a retried activity reports the same time.
	EndedAtUnixMillis int64 `json:"ended_at_unix_ms"`
	DurationMillis    int64 `json:"duration_ms"`

	Messages  int64 `json:"messages"`
	Produced  int64 `json:"produced"`
	Delivered int64 `json:"delivered"`
	Verified  int64 `json:"verified"`
	// Hops are verification's per-hop counts; empty when the run ended
	// before verification.
	Hops []verify.HopCount `json:"hops,omitempty"`
	// Latency is verification's end-to-end latency; zero when nothing was
	// verified, and then not exported.
	Latency verify.Percentiles `json:"latency"`

	// ProductionReported and DeliveryReported say whether production's
	// and delivery's results reached the workflow; a run that ended before
	// has no lag, holds, retries or rejections to report, rather than 0.
	ProductionReported bool `json:"production_reported,omitempty"`
	DeliveryReported   bool `json:"delivery_reported,omitempty"`

	MaxLag        int64   `json:"max_lag"`
	MaxLagSeconds float64 `json:"max_lag_seconds,omitempty"`
	// SampledMaxLag is each consumer group's largest lag among the lag
	// samples the run kept (at most a few hundred, spread over the run), so
	// it can miss a short peak; MaxLag is the largest of every poll.
	SampledMaxLag map[string]int64 `json:"sampled_max_lag,omitempty"`
	Holds         int              `json:"holds"`
	HeldMillis    int64            `json:"held_ms"`

	TokenRenewals int `json:"token_renewals"`
	TokenRejected int `json:"token_rejected"`
	HTTPRetries   int `json:"http_retries"`
}

// Activities holds the Recorder that RecordRunMetrics writes to.
type Activities struct {
	recorder *Recorder
}

// New returns the activity recording into recorder.
func New(recorder *Recorder) *Activities { return &Activities{recorder: recorder} }

// RecordRunMetrics exports a finished run's figures on this worker's
// /metrics. It never fails a run: the workflow logs its error and ends as
// it would have.
func (a *Activities) RecordRunMetrics(_ context.Context, run Run) error {
	if a.recorder == nil {
		return errors.New("record run metrics: this worker has no run metrics recorder")
	}
	a.recorder.Record(run)
	return nil
}

// Recorder keeps the counts of runs by status and the figures of the last
// run, and is the prometheus.Collector that exports them.
type Recorder struct {
	runs *prometheus.CounterVec

	mu sync.Mutex
	// lastSuccess is the end of the last successful run in Unix seconds,
	// 0 while this worker has recorded none (then it is not exported: a 0
	// would read as a success in 1970).
	lastSuccess float64
	last        *Run
}

// NewRecorder returns a Recorder with every status counted at zero.
func NewRecorder() *Recorder {
	r := &Recorder{runs: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowproof_runs_total",
		Help: "Runs this worker recorded the end of, by status (Succeeded, Failed, Canceled).",
	}, []string{"status"})}
	for _, status := range Statuses {
		r.runs.WithLabelValues(status)
	}
	return r
}

// Record counts run and makes it the last run.
func (r *Recorder) Record(run Run) {
	run.Hops = append([]verify.HopCount(nil), run.Hops...)
	r.runs.WithLabelValues(run.Status).Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if run.Status == "Succeeded" {
		r.lastSuccess = max(r.lastSuccess, float64(run.EndedAtUnixMillis)/1000)
	}
	r.last = &run
}

var (
	lastSuccessDesc = prometheus.NewDesc("flowproof_last_success_timestamp_seconds",
		"End of the last successful run this worker recorded, in Unix seconds; absent until there is one.", nil, nil)
	lastRunDesc = prometheus.NewDesc("flowproof_last_run_timestamp_seconds",
		"End of the last run this worker recorded, in Unix seconds; the flowproof_last_run_* series describe that run.", nil, nil)
	lastRunStatusDesc = prometheus.NewDesc("flowproof_last_run_status",
		"1 for the status the last run ended with, 0 for the others.", []string{"status"}, nil)
	durationDesc = prometheus.NewDesc("flowproof_last_run_duration_seconds",
		"Duration of the last run, from its start to the end of its cleanup.", nil, nil)
	messagesDesc = prometheus.NewDesc("flowproof_last_run_messages",
		"Messages of the last run: expected (its input), produced and delivered (the workers' counts), verified (unique on the final topic).",
		[]string{"count"}, nil)
	hopUniqueDesc = prometheus.NewDesc("flowproof_last_run_hop_messages",
		"Distinct messages (seqs) of the last run that passed each hop, as verification counted them from the data.", []string{"hop"}, nil)
	hopMissingDesc = prometheus.NewDesc("flowproof_last_run_hop_missing_messages",
		"Messages of the last run missing at each hop.", []string{"hop"}, nil)
	hopDuplicatedDesc = prometheus.NewDesc("flowproof_last_run_hop_duplicated_messages",
		"Messages of the last run that passed each hop more than once.", []string{"hop"}, nil)
	latencyDesc = prometheus.NewDesc("flowproof_last_run_latency_seconds",
		"End-to-end latency (produced to final topic) of the last run's verified messages at each quantile (0.5, 0.95, 0.99, 0.999); quantile 1 is the maximum. Absent when the run verified nothing.",
		[]string{"quantile"}, nil)
	maxLagDesc = prometheus.NewDesc("flowproof_last_run_max_lag_messages",
		"Largest consumer lag of any group at any poll of the last run. This and the other lag and backpressure series are absent when the run ended before production reported.", nil, nil)
	maxLagSecondsDesc = prometheus.NewDesc("flowproof_last_run_max_lag_seconds",
		"Largest lag of the last run in seconds of draining (when its threshold in seconds applied).", nil, nil)
	sampledLagDesc = prometheus.NewDesc("flowproof_last_run_sampled_max_lag_messages",
		"Largest lag of each consumer group among the lag samples the last run kept (spread over the run; a short peak can fall between them).",
		[]string{"group"}, nil)
	holdsDesc = prometheus.NewDesc("flowproof_last_run_backpressure_holds",
		"Times the last run held production for consumer lag.", nil, nil)
	heldDesc = prometheus.NewDesc("flowproof_last_run_backpressure_held_seconds",
		"Time the last run's production was held for consumer lag.", nil, nil)
	renewalsDesc = prometheus.NewDesc("flowproof_last_run_token_renewals",
		"Tokens the last run's delivery obtained.", nil, nil)
	rejectedDesc = prometheus.NewDesc("flowproof_last_run_token_rejections",
		"Delivery segments of the last run that the endpoint cut short with a 401, or whose token could not be opened.", nil, nil)
	retriesDesc = prometheus.NewDesc("flowproof_last_run_http_retries",
		"HTTP batches of the last run that were sent again.", nil, nil)
)

// Describe makes the Recorder a checked collector: every series it can
// export has its description here.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	r.runs.Describe(ch)
	for _, d := range []*prometheus.Desc{
		lastSuccessDesc, lastRunDesc, lastRunStatusDesc, durationDesc, messagesDesc,
		hopUniqueDesc, hopMissingDesc, hopDuplicatedDesc, latencyDesc,
		maxLagDesc, maxLagSecondsDesc, sampledLagDesc, holdsDesc, heldDesc,
		renewalsDesc, rejectedDesc, retriesDesc,
	} {
		ch <- d
	}
}

// Collect exports the counters and, once a run was recorded, the last
// run's figures, all from one run even while another is being recorded.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	r.runs.Collect(ch)
	r.mu.Lock()
	lastSuccess, last := r.lastSuccess, r.last
	r.mu.Unlock()
	if lastSuccess > 0 {
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, lastSuccess)
	}
	if last != nil {
		collectRun(ch, last)
	}
}

func collectRun(ch chan<- prometheus.Metric, run *Run) {
	gauge := func(desc *prometheus.Desc, value float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, value, labels...)
	}
	gauge(lastRunDesc, float64(run.EndedAtUnixMillis)/1000)
	for _, status := range Statuses {
		gauge(lastRunStatusDesc, boolValue(run.Status == status), status)
	}
	gauge(durationDesc, float64(run.DurationMillis)/1000)
	gauge(messagesDesc, float64(run.Messages), "expected")
	gauge(messagesDesc, float64(run.Produced), "produced")
	gauge(messagesDesc, float64(run.Delivered), "delivered")
	gauge(messagesDesc, float64(run.Verified), "verified")
	// A hop named twice would make the whole scrape invalid; the first
	// count stands.
	seen := map[string]bool{}
	for _, h := range run.Hops {
		if h.Skipped || seen[h.Hop] {
			continue
		}
		seen[h.Hop] = true
		gauge(hopUniqueDesc, float64(h.Unique), h.Hop)
		gauge(hopMissingDesc, float64(h.Missing), h.Hop)
		gauge(hopDuplicatedDesc, float64(h.Duplicated), h.Hop)
	}
	if run.Verified > 0 {
		for _, q := range []struct {
			quantile float64
			millis   float64
		}{{0.5, run.Latency.P50}, {0.95, run.Latency.P95}, {0.99, run.Latency.P99}, {0.999, run.Latency.P999}, {1, run.Latency.Max}} {
			// A verification older than p99.9 reports it as 0.
			if q.quantile == 0.999 && q.millis == 0 {
				continue
			}
			gauge(latencyDesc, q.millis/1000, strconv.FormatFloat(q.quantile, 'g', -1, 64))
		}
	}
	if run.ProductionReported {
		gauge(maxLagDesc, float64(run.MaxLag))
		gauge(maxLagSecondsDesc, run.MaxLagSeconds)
		for group, lag := range run.SampledMaxLag {
			gauge(sampledLagDesc, float64(lag), group)
		}
		gauge(holdsDesc, float64(run.Holds))
		gauge(heldDesc, float64(run.HeldMillis)/1000)
	}
	// Renewals are also counted from delivery's progress, so a run that
	// ended early has them.
	gauge(renewalsDesc, float64(run.TokenRenewals))
	if run.DeliveryReported {
		gauge(rejectedDesc, float64(run.TokenRejected))
		gauge(retriesDesc, float64(run.HTTPRetries))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
