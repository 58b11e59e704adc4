package workflows

import (
	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/verify"
)

// PipelineInput is the one input of PipelineWorkflow. Every field has a
// default (see withDefaults), so `{}` — or no input at all, as the Temporal
// UI sends when the form is left empty — runs the standard test. Durations are
// whole seconds so the JSON a person types stays obvious.
//
// Fields are only ever added, never renamed or retyped, so that histories of
// older runs keep replaying.
type PipelineInput struct {
	// RunID names the run's topics and groups; defaults to the workflow id.
	RunID string `json:"run_id,omitempty"`

	Messages      int64 `json:"messages,omitempty"`       // default 1,000,000
	LogicalQueues int   `json:"logical_queues,omitempty"` // default 1,000
	Partitions    int   `json:"partitions,omitempty"`     // default 100
	PayloadBytes  int   `json:"payload_bytes,omitempty"`  // default 128

	ChunkSize        int `json:"chunk_size,omitempty"`        // messages per produce chunk, default 10,000
	ChunkConcurrency int `json:"chunk_concurrency,omitempty"` // chunks in flight, default 2
	// RatePerSecond caps production over all queues; RatePerQueue caps each
	// logical queue. Messages go round-robin over the queues, so the
	// effective cap is min(RatePerSecond, RatePerQueue*LogicalQueues).
	RatePerSecond float64 `json:"rate_per_second,omitempty"` // default 50,000
	RatePerQueue  float64 `json:"rate_per_queue,omitempty"`  // default 100

	BatchSize       int `json:"batch_size,omitempty"`        // messages per HTTP batch, default 100
	TokenRenewEvery int `json:"token_renew_every,omitempty"` // delivered messages per token, default 10,000

	// LagThreshold holds production while the largest consumer lag of the
	// run is above it; production resumes below LagResume.
	LagThreshold        int64 `json:"lag_threshold,omitempty"`          // default 200,000
	LagResume           int64 `json:"lag_resume,omitempty"`             // default LagThreshold/2
	LagPollEverySeconds int   `json:"lag_poll_every_seconds,omitempty"` // default 5

	FlinkParallelism          int `json:"flink_parallelism,omitempty"`           // default 2
	CheckpointIntervalSeconds int `json:"checkpoint_interval_seconds,omitempty"` // default 5

	// Expected components; the health stage fails when fewer are up.
	Brokers      int `json:"brokers,omitempty"`       // default 3
	TaskManagers int `json:"task_managers,omitempty"` // default 1

	// Topics overrides topic names; empty ones default to flowproof.<run>.<stage>.
	Topics TopicNames `json:"topics,omitzero"`
	// KeepTopics leaves the run's topics in place after the run.
	KeepTopics bool `json:"keep_topics,omitempty"`

	// VerifyIdleSeconds ends verification when the final topic has been
	// quiet that long with messages still missing; default 120.
	VerifyIdleSeconds int `json:"verify_idle_seconds,omitempty"`
}

// TopicNames are optional overrides of the run's topic names.
type TopicNames struct {
	Raw       string `json:"raw,omitempty"`
	Enriched  string `json:"enriched,omitempty"`
	Responses string `json:"responses,omitempty"`
	Final     string `json:"final,omitempty"`
}

// Status is the outcome of a run.
type Status string

const (
	StatusSucceeded Status = "Succeeded"
	StatusFailed    Status = "Failed"
)

// PipelineResult is what a run returns: `{Status, Metrics}`.
type PipelineResult struct {
	Status  Status  `json:"Status"`
	Metrics Metrics `json:"Metrics"`
}

// Metrics are the measured figures of a run.
type Metrics struct {
	RunID    string              `json:"run_id"`
	Messages int64               `json:"messages"`
	Names    activities.RunNames `json:"names"`
	Brokers  int                 `json:"brokers"`
	Health   []string            `json:"health"`

	Produced  int64 `json:"produced"`
	Delivered int64 `json:"delivered"`
	Verified  int64 `json:"verified"`

	Stages []StageMetrics `json:"stages"`

	FlinkJobs      activities.FlinkJobs `json:"flink_jobs"`
	TokenRenewals  int                  `json:"token_renewals"`
	TokenRejected  int                  `json:"token_rejected"`
	HTTPBatches    int                  `json:"http_batches"`
	HTTPRetries    int                  `json:"http_retries"`
	ChunkRetries   int                  `json:"chunk_retries"`
	ChunksResumed  int                  `json:"chunks_resumed"`
	Backpressure   BackpressureMetrics  `json:"backpressure"`
	Latency        verify.Percentiles   `json:"latency"`
	Verification   verify.Result        `json:"verification"`
	TotalMillis    int64                `json:"total_ms"`
	FailureMessage string               `json:"failure,omitempty"`
}

// StageMetrics times one stage.
type StageMetrics struct {
	Stage          string  `json:"stage"`
	Messages       int64   `json:"messages,omitempty"`
	DurationMillis int64   `json:"duration_ms"`
	PerSecond      float64 `json:"per_second,omitempty"`
}

// BackpressureMetrics says how often and how long production was held.
type BackpressureMetrics struct {
	Holds      int                    `json:"holds"`
	HeldMillis int64                  `json:"held_ms"`
	MaxLag     int64                  `json:"max_lag"`
	LagSamples []kafkaadmin.LagSample `json:"lag_samples"`
}

// Progress is what the `progress` query returns while a run goes on; the
// starter's progress bar and the UI's current details are drawn from it.
type Progress struct {
	Stage         string `json:"stage"`
	Messages      int64  `json:"messages"`
	Produced      int64  `json:"produced"`
	Delivered     int64  `json:"delivered"`
	Verified      int64  `json:"verified"`
	TokenRenewals int    `json:"token_renewals"`
	Lag           int64  `json:"lag"`
	Held          bool   `json:"held"`
	// RatePerSecond is the production rate of the last chunk.
	RatePerSecond float64 `json:"rate_per_second"`
}

// ProgressQuery is the name of the query that returns Progress.
const ProgressQuery = "progress"
