package workflows

import (
	"slices"
	"time"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/runmetrics"
	"github.com/flowproof/flowproof/activities/verify"
)

// Metrics are the measured figures of a run.
type Metrics struct {
	// RunID is the flowproof run (PipelineInput.RunID), not the Temporal
	// run id.
	RunID    string              `json:"run_id"`
	Messages int64               `json:"messages"`
	Names    activities.RunNames `json:"names"`
	Brokers  int                 `json:"brokers"`
	Health   []string            `json:"health"`

	Produced  int64 `json:"produced"`
	Delivered int64 `json:"delivered"`
	Verified  int64 `json:"verified"`

	Stages []StageMetrics `json:"stages"`

	FlinkJobs     activities.FlinkJobs `json:"flink_jobs"`
	TokenRenewals int                  `json:"token_renewals"`
	// TokenRejected counts the segments the endpoint cut short with a 401,
	// and those whose token the worker could not open (sealed with a key
	// it does not hold).
	TokenRejected int `json:"token_rejected"`
	HTTPBatches   int `json:"http_batches"`
	HTTPRetries   int `json:"http_retries"`
	// ChunksResumed counts produce chunks that an earlier attempt had
	// already committed, so the attempt that reported them wrote nothing.
	ChunksResumed int                `json:"chunks_resumed"`
	Backpressure  Backpressure       `json:"backpressure"`
	Latency       verify.Percentiles `json:"latency"`
	// EndToEndPerSecond is verified messages per second of the run's flow,
	// from the first message produced to the last arrival in the final
	// topic (verify.Result.FlowMillis).
	EndToEndPerSecond float64       `json:"end_to_end_per_second,omitempty"`
	Verification      verify.Result `json:"verification"`
	TotalMillis       int64         `json:"total_ms"`
	FailureMessage    string        `json:"failure,omitempty"`
	// FailedStage is the stage a run that did not succeed ended in.
	FailedStage string `json:"failed_stage,omitempty"`
	// Flink are the figures of each Flink job at the run's last check.
	Flink []flink.JobMetrics `json:"flink,omitempty"`
	// Hops is the hop table: every hop of the run counted per seq from the
	// data itself (raw, enriched, endpoint, final), as Verify counted it.
	Hops []verify.HopCount `json:"hops,omitempty"`
	// Thresholds are the input's thresholds held against the figures
	// above, once verification ran; none when no threshold was set.
	Thresholds []ThresholdCheck `json:"thresholds,omitempty"`
	// ResultNotStored says why this result is missing from the results
	// store (activities/results), when storing it failed.
	ResultNotStored string `json:"result_not_stored,omitempty"`
}

// StageMetrics times one stage.
type StageMetrics struct {
	Stage string `json:"stage"`
	// StartedUnixMillis places the stage on the run's timeline; 0 in
	// results recorded before it was kept.
	StartedUnixMillis int64   `json:"started_unix_ms,omitempty"`
	Messages          int64   `json:"messages,omitempty"`
	DurationMillis    int64   `json:"duration_ms"`
	PerSecond         float64 `json:"per_second,omitempty"`
}

// addProduce is the one place a production's result enters the metrics.
func (m *Metrics) addProduce(r ProduceResult) {
	m.Produced = r.Produced
	m.ChunksResumed = r.Resumed
	m.Backpressure = r.Backpressure
	m.Stages = append(m.Stages, stageMetrics(produceResultStage, r.Produced, r.StartedUnixMillis, r.DurationMillis))
}

// addDeliver is the one place a delivery's result enters the metrics.
func (m *Metrics) addDeliver(r DeliverResult) {
	m.Delivered = r.Delivered
	m.TokenRenewals, m.TokenRejected = r.TokenRenewals, r.TokenRejected
	m.HTTPBatches, m.HTTPRetries = r.Batches, r.Retries
	m.Stages = append(m.Stages, stageMetrics(deliverResultStage, r.Delivered, r.StartedUnixMillis, r.DurationMillis))
}

// addFlink is the one place a check of the Flink jobs enters the metrics.
func (m *Metrics) addFlink(c flink.CheckResult) { m.Flink = c.Jobs }

// addVerify is the one place a verification's result enters the metrics.
func (m *Metrics) addVerify(v verify.Result) {
	m.Verified = v.Unique
	m.Verification = v
	m.Hops = v.Hops
	m.Latency = v.Latency
	if v.FlowMillis > 0 {
		m.EndToEndPerSecond = float64(v.Unique) / (float64(v.FlowMillis) / 1000)
	}
}

// keepCountsSoFar fills the counts a run that ended early has not reported
// through its children's results from their last progress signals.
func (m *Metrics) keepCountsSoFar(pr Progress) {
	m.Produced = max(m.Produced, pr.Produced)
	m.Delivered = max(m.Delivered, pr.Delivered)
	m.TokenRenewals = max(m.TokenRenewals, pr.TokenRenewals)
}

func stageMetrics(stage string, messages, startedUnixMillis, millis int64) StageMetrics {
	m := StageMetrics{Stage: stage, Messages: messages, StartedUnixMillis: startedUnixMillis, DurationMillis: millis}
	if messages > 0 && millis > 0 {
		m.PerSecond = float64(messages) / (float64(millis) / 1000)
	}
	return m
}

// runMetrics is the one place a run's metrics become what the worker
// exports on /metrics (runmetrics.Run).
func (m *Metrics) runMetrics(status Status, endedAt time.Time) runmetrics.Run {
	sampledMax := map[string]int64{}
	for _, s := range m.Backpressure.LagSamples {
		sampledMax["enrich"] = max(sampledMax["enrich"], s.Enrich)
		sampledMax["split"] = max(sampledMax["split"], s.Split)
		sampledMax["deliver"] = max(sampledMax["deliver"], s.Deliver)
	}
	if len(m.Backpressure.LagSamples) == 0 {
		sampledMax = nil
	}
	return runmetrics.Run{
		RunID:              m.RunID,
		Status:             string(status),
		EndedAtUnixMillis:  endedAt.UnixMilli(),
		DurationMillis:     m.TotalMillis,
		Messages:           m.Messages,
		Produced:           m.Produced,
		Delivered:          m.Delivered,
		Verified:           m.Verified,
		Hops:               m.Hops,
		Latency:            m.Latency,
		ProductionReported: m.ProductionReported(),
		DeliveryReported:   m.DeliveryReported(),
		MaxLag:             m.Backpressure.MaxLag,
		MaxLagSeconds:      m.Backpressure.MaxLagSeconds,
		SampledMaxLag:      sampledMax,
		Holds:              m.Backpressure.Holds,
		HeldMillis:         m.Backpressure.HeldMillis,
		TokenRenewals:      m.TokenRenewals,
		TokenRejected:      m.TokenRejected,
		HTTPRetries:        m.HTTPRetries,
	}
}

// The stages only the children's results add (addProduce, addDeliver).
const (
	produceResultStage = "produce"
	deliverResultStage = "deliver"
)

// ProductionReported says whether production's result reached the metrics.
// A run that ended before it has zeros in the figures that result brings,
// which were never measured; so too for the two below.
func (m *Metrics) ProductionReported() bool { return m.hasStage(produceResultStage) }

// DeliveryReported says whether delivery's result reached the metrics.
func (m *Metrics) DeliveryReported() bool { return m.hasStage(deliverResultStage) }

// VerificationReported says whether Verify's result reached the metrics.
func (m *Metrics) VerificationReported() bool { return m.hasStage(StageVerify) }

// ShownFigures says which stages' figures a summary or report shows.
type ShownFigures struct{ Verification, Delivery, Production bool }

// ShownFigures are the stages whose figures reached m. A result without
// stage timings (recorded before they were kept) does not say which stages
// reported, and all its figures are shown as they are.
func (m *Metrics) ShownFigures() ShownFigures {
	untimed := len(m.Stages) == 0
	return ShownFigures{
		Verification: untimed || m.VerificationReported(),
		Delivery:     untimed || m.DeliveryReported(),
		Production:   untimed || m.ProductionReported(),
	}
}

func (m *Metrics) hasStage(stage string) bool {
	return slices.ContainsFunc(m.Stages, func(s StageMetrics) bool { return s.Stage == stage })
}
