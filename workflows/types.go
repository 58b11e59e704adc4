package workflows

// PipelineInput is the one input of PipelineWorkflow. Every field has a
// default (see withDefaults), so `{}` — or no input at all, as the Temporal
// UI sends when the form is left empty — runs the standard test. Durations are
// whole seconds so the JSON a person types stays obvious.
//
// Fields are only ever added, never renamed or retyped, so that histories of
// older runs keep replaying.
type PipelineInput struct {
	// RunID is the flowproof run: it names the run's topics and groups
	// (flowproof.<run id>.<stage>). It defaults to the workflow id and is not
	// the Temporal run id.
	RunID string `json:"run_id,omitempty"`

	Messages      int64 `json:"messages,omitempty"`       // default 1,000,000
	LogicalQueues int   `json:"logical_queues,omitempty"` // default 1,000
	Partitions    int   `json:"partitions,omitempty"`     // of the raw topic, default 100
	// DerivedPartitions is the partition count of the topics the pipeline
	// derives from the raw one (enriched, responses, final, accepted). The
	// logical queues' spread over partitions is the raw topic's contract;
	// every partition of a derived topic costs each broker bookkeeping on
	// every fetch of its consumers and followers whatever it carries.
	DerivedPartitions int `json:"derived_partitions,omitempty"` // default min(partitions, 12)
	PayloadBytes      int `json:"payload_bytes,omitempty"`      // default 128

	ChunkSize        int `json:"chunk_size,omitempty"`        // messages per produce chunk, default 10,000
	ChunkConcurrency int `json:"chunk_concurrency,omitempty"` // chunks in flight, default 2
	// RatePerSecond caps production over all queues; RatePerQueue caps each
	// logical queue. Messages go round-robin over the queues, so the
	// effective cap is min(RatePerSecond, RatePerQueue*LogicalQueues).
	RatePerSecond float64 `json:"rate_per_second,omitempty"` // default 50,000
	RatePerQueue  float64 `json:"rate_per_queue,omitempty"`  // default 100
	// WarmupMessages, the first messages of a run, are produced at no more
	// than WarmupRatePerSecond: the run's Flink jobs start cold, and what
	// production queues before they drain at speed is what the slowest
	// messages wait. A warmup rate at or above the cap leaves it out.
	WarmupMessages      int64   `json:"warmup_messages,omitempty"`        // default 150,000
	WarmupRatePerSecond float64 `json:"warmup_rate_per_second,omitempty"` // default 12,000

	BatchSize       int `json:"batch_size,omitempty"`        // messages per HTTP batch, default 100
	TokenRenewEvery int `json:"token_renew_every,omitempty"` // delivered messages per token, default 10,000

	// LagThreshold holds production while the largest consumer lag of the
	// run is above it; production resumes below LagResume.
	LagThreshold        int64 `json:"lag_threshold,omitempty"`          // default 150,000
	LagResume           int64 `json:"lag_resume,omitempty"`             // default LagThreshold/2
	LagPollEverySeconds int   `json:"lag_poll_every_seconds,omitempty"` // default 2
	// LagThresholdSeconds holds production also while a consumer group's
	// lag would take it longer than this to drain at the rate it drains
	// (beyond the checkpoint interval the Flink groups always trail by);
	// production resumes once every group is at LagResumeSeconds. Either
	// threshold holds production; a large value leaves the one in messages.
	LagThresholdSeconds float64 `json:"lag_threshold_seconds,omitempty"` // default 5
	LagResumeSeconds    float64 `json:"lag_resume_seconds,omitempty"`    // default LagThresholdSeconds/2

	FlinkParallelism          int `json:"flink_parallelism,omitempty"`           // default 1
	CheckpointIntervalSeconds int `json:"checkpoint_interval_seconds,omitempty"` // default 5
	// FlinkWatchSeconds is how often the run checks its Flink jobs while
	// messages flow; a job that ended, or restarted more than
	// MaxFlinkRestarts times (0 takes the default), fails the run.
	FlinkWatchSeconds int `json:"flink_watch_seconds,omitempty"` // default 10
	MaxFlinkRestarts  int `json:"max_flink_restarts,omitempty"`  // default 3

	// Expected components; the health stage fails when fewer are up.
	Brokers      int `json:"brokers,omitempty"`       // default replication_factor
	TaskManagers int `json:"task_managers,omitempty"` // default 1

	// ReplicationFactor of every topic the run creates; the health stage
	// wants at least as many brokers.
	ReplicationFactor int `json:"replication_factor,omitempty"` // default 3
	// MinInsyncReplicas of every topic the run creates: the replicas a
	// write must reach (every producer of a run writes with acks=all).
	// With replication factor 3 and 2 in sync, one broker may be down.
	MinInsyncReplicas int `json:"min_insync_replicas,omitempty"` // default 2, 1 when replication_factor is below 3
	// TopicConfigs are Kafka topic configs for every topic the run
	// creates (retention.ms, compression.type, ...); min.insync.replicas
	// and message.timestamp.type are flowproof's own and refused, and the
	// run's ledger stays compacted.
	TopicConfigs map[string]string `json:"topic_configs,omitempty"`

	// Topics overrides topic names; empty ones default to flowproof.<run>.<stage>.
	Topics TopicNames `json:"topics,omitzero"`
	// KeepTopics leaves the run's topics in place after the run.
	KeepTopics bool `json:"keep_topics,omitempty"`

	// VerifyIdleSeconds ends verification when the final topic has been
	// quiet that long with messages still missing; default 120.
	VerifyIdleSeconds int `json:"verify_idle_seconds,omitempty"`

	// TimeoutSeconds is the run's deadline: past it the run ends Failed
	// (RunTimedOut) with its figures so far. Default: 15 minutes plus a
	// second per 1,000 messages plus verify_idle_seconds, which a healthy
	// stack of any size beats by far.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`

	// Thresholds are limits on the run's figures (duration, throughput,
	// latency, lag, backpressure, HTTP retries) besides exactly-once
	// delivery; a run that breaks one ends Failed naming it. None is set
	// by default.
	Thresholds Thresholds `json:"thresholds,omitzero"`

	// unknownField is the first JSON field of the input that PipelineInput
	// does not have (see UnmarshalJSON); Validate refuses it, so a typo
	// cannot quietly run the default test.
	unknownField string
}

// TopicNames are optional overrides of the run's topic names.
type TopicNames struct {
	Raw       string `json:"raw,omitempty"`
	Enriched  string `json:"enriched,omitempty"`
	Responses string `json:"responses,omitempty"`
	Final     string `json:"final,omitempty"`
}

// Status is the outcome of a run. It is also the FlowproofStatus search
// attribute, which reads StatusRunning until the run ends.
type Status string

// The values of Status.
const (
	StatusRunning   Status = "Running"
	StatusSucceeded Status = "Succeeded"
	StatusFailed    Status = "Failed"
	StatusCanceled  Status = "Canceled"
)

// PipelineResult is what a run returns: `{Status, Metrics}`.
type PipelineResult struct {
	Status  Status  `json:"Status"`
	Metrics Metrics `json:"Metrics"`
}
