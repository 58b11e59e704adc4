package activities

import (
	"github.com/flowproof/flowproof/internal/health"
)

// RunNames are the Kafka names of one run. The workflow derives them once
// (see workflows.PipelineInput) and passes them to every activity, so no
// activity invents a name of its own.
type RunNames struct {
	RunID          string `json:"run_id"`
	RawTopic       string `json:"raw_topic"`
	EnrichedTopic  string `json:"enriched_topic"`
	ResponsesTopic string `json:"responses_topic"`
	FinalTopic     string `json:"final_topic"`
	// LedgerTopic records, in the same Kafka transaction as a chunk's
	// messages, that the chunk was committed; a retried chunk reads it to
	// know whether its first attempt already committed.
	LedgerTopic  string `json:"ledger_topic"`
	EnrichGroup  string `json:"enrich_group"`
	DeliverGroup string `json:"deliver_group"`
	SplitGroup   string `json:"split_group"`
}

// Topics lists every topic of the run.
func (n RunNames) Topics() []string {
	return []string{n.RawTopic, n.EnrichedTopic, n.ResponsesTopic, n.FinalTopic, n.LedgerTopic}
}

// CheckHealthInput says what a healthy stack has.
type CheckHealthInput struct {
	WantBrokers      int `json:"want_brokers"`
	WantTaskManagers int `json:"want_task_managers"`
}

// CheckHealthResult lists every component's check.
type CheckHealthResult struct {
	Components []health.Result `json:"components"`
}

// PrepareTopicsInput creates the run's topics.
type PrepareTopicsInput struct {
	Names             RunNames `json:"names"`
	Partitions        int      `json:"partitions"`
	ReplicationFactor int      `json:"replication_factor"`
}

// PrepareTopicsResult says which topics were created and which existed.
type PrepareTopicsResult struct {
	Created []string `json:"created"`
	Existed []string `json:"existed"`
	Brokers int      `json:"brokers"`
}

// SubmitFlinkJobsInput starts the enrich and split jobs of a run.
type SubmitFlinkJobsInput struct {
	Names                    RunNames `json:"names"`
	Parallelism              int      `json:"parallelism"`
	CheckpointIntervalMillis int64    `json:"checkpoint_interval_ms"`
}

// FlinkJobs identifies the run's Flink jobs.
type FlinkJobs struct {
	EnrichJobID string `json:"enrich_job_id"`
	SplitJobID  string `json:"split_job_id"`
	// EnrichJobName and SplitJobName are the jobs' Flink names, derived from
	// the run (see FlinkJobsOf). CancelFlinkJobs also cancels running jobs
	// by these names, so a run whose submission failed after Flink had
	// accepted a job still cleans it up.
	EnrichJobName string `json:"enrich_job_name,omitempty"`
	SplitJobName  string `json:"split_job_name,omitempty"`
	// SubmitToRunningMillis is the time from submitting the statements to
	// both jobs being RUNNING.
	SubmitToRunningMillis int64 `json:"submit_to_running_ms"`
}

// ProduceChunkInput is one resumable unit of production: messages
// FirstSeq .. FirstSeq+Count-1, written in one Kafka transaction.
type ProduceChunkInput struct {
	Names         RunNames `json:"names"`
	Chunk         int      `json:"chunk"`
	FirstSeq      int64    `json:"first_seq"`
	Count         int      `json:"count"`
	LogicalQueues int      `json:"logical_queues"`
	PayloadBytes  int      `json:"payload_bytes"`
	// RatePerSecond caps this chunk's production; 0 means unlimited.
	RatePerSecond float64 `json:"rate_per_second"`
}

// ProduceChunkResult reports one chunk.
type ProduceChunkResult struct {
	Produced int `json:"produced"`
	// AlreadyCommitted is true when an earlier attempt had committed the
	// chunk and this attempt wrote nothing.
	AlreadyCommitted bool  `json:"already_committed"`
	DurationMillis   int64 `json:"duration_ms"`
}

// PollLagInput names the groups whose lag is read.
type PollLagInput struct {
	Names RunNames `json:"names"`
}

// LagSample is the consumer lag of the run's groups at one moment.
type LagSample struct {
	AtUnixMillis int64 `json:"at_unix_ms"`
	Enrich       int64 `json:"enrich"`
	Deliver      int64 `json:"deliver"`
	Split        int64 `json:"split"`
}

// Max is the largest lag of the sample, the one backpressure acts on.
func (l LagSample) Max() int64 { return max(l.Enrich, l.Deliver, l.Split) }

// SealedToken is a security token encrypted with the workers' token key, so
// that workflow history (and thus the UI) only ever holds ciphertext.
type SealedToken struct {
	Sealed          []byte `json:"sealed"`
	KeyID           string `json:"key_id"`
	ExpiresAtUnix   int64  `json:"expires_at_unix"`
	Quota           int    `json:"quota"`
	ObtainedAtUnixM int64  `json:"obtained_at_unix_ms"`
}

// ObtainTokenInput asks the token service for a new token.
type ObtainTokenInput struct {
	// Renewal counts the tokens obtained before this one, for logs and UI.
	Renewal int `json:"renewal"`
	// Quota asks for a token that allows this many messages; 0 takes the
	// token service's default. The service caps it at its maximum, and the
	// granted quota is in SealedToken.Quota.
	Quota int `json:"quota,omitempty"`
	// TTLSeconds asks for a shorter lifetime than the service's default; 0
	// takes the default.
	TTLSeconds int `json:"ttl_seconds,omitempty"`
}

// DeliverSegmentInput delivers up to MaxMessages enriched messages, starting
// at Offsets, with one token. The responses are written in one Kafka
// transaction whose id derives from the run and segment, so a retried
// segment fences its earlier attempt and starts over from the same offsets.
type DeliverSegmentInput struct {
	Names       RunNames        `json:"names"`
	Segment     int             `json:"segment"`
	Offsets     map[int32]int64 `json:"offsets"`
	MaxMessages int             `json:"max_messages"`
	BatchSize   int             `json:"batch_size"`
	Token       SealedToken     `json:"token"`
	// IdleTimeoutMillis ends the segment early when no enriched message has
	// arrived for that long (the segment then reports fewer messages).
	IdleTimeoutMillis int64 `json:"idle_timeout_ms"`
}

// DeliverSegmentResult reports one segment.
type DeliverSegmentResult struct {
	Offsets   map[int32]int64 `json:"offsets"`
	Delivered int             `json:"delivered"`
	Batches   int             `json:"batches"`
	// Retries counts HTTP requests that were retried (429, 5xx, network).
	Retries int `json:"retries"`
	// TokenRejected is true when the endpoint answered 401 (expired or used
	// up); the segment stopped at the last accepted batch and the workflow
	// renews the token before the next segment.
	TokenRejected bool   `json:"token_rejected"`
	RejectReason  string `json:"reject_reason,omitempty"`
}

// VerifyInput checks the final topic of a run.
type VerifyInput struct {
	Names    RunNames `json:"names"`
	Messages int64    `json:"messages"`
	// IdleTimeoutMillis ends verification when no new record arrived for
	// that long before all messages were seen.
	IdleTimeoutMillis int64 `json:"idle_timeout_ms"`
}

// MessageView is one message of the final topic, shown in the report.
type MessageView struct {
	Partition     int32             `json:"partition"`
	Offset        int64             `json:"offset"`
	Key           string            `json:"key"`
	Headers       map[string]string `json:"headers"`
	Seq           int64             `json:"seq"`
	CorrelationID string            `json:"correlation_id"`
	SendingID     string            `json:"sending_id"`
	BatchNumber   int64             `json:"batch_number"`
	ProducedAt    string            `json:"produced_at"`
	ArrivedAt     string            `json:"arrived_at"`
}

// Percentiles of end-to-end latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// VerifyResult proves (or disproves) exactly-once arrival.
type VerifyResult struct {
	Expected int64 `json:"expected"`
	Records  int64 `json:"records"`
	Unique   int64 `json:"unique"`
	Missing  int64 `json:"missing"`
	// Duplicates counts records whose seq had been seen before.
	Duplicates int64 `json:"duplicates"`
	// DuplicateCorrelationIDs counts records whose correlation id had been
	// seen before. With derived ids it can only be non-zero together with
	// Duplicates or BadRecords; it is counted on its own so the report
	// shows uniqueness of the ids directly.
	DuplicateCorrelationIDs int64 `json:"duplicate_correlation_ids"`
	// BadRecords counts records that break the contract: unparsable value,
	// a header missing or differing from its field, a wrong correlation id.
	BadRecords     int64         `json:"bad_records"`
	FirstMissing   []int64       `json:"first_missing,omitempty"`
	Problems       []string      `json:"problems,omitempty"`
	Latency        Percentiles   `json:"latency"`
	First          []MessageView `json:"first"`
	Last           []MessageView `json:"last"`
	DurationMillis int64         `json:"duration_ms"`
}

// Passed is true when every message arrived exactly once and intact.
func (v VerifyResult) Passed() bool {
	return v.Expected > 0 && v.Unique == v.Expected && v.Missing == 0 && v.Duplicates == 0 && v.BadRecords == 0
}

// CleanupInput undoes what a run created.
type CleanupInput struct {
	Names      RunNames  `json:"names"`
	Jobs       FlinkJobs `json:"jobs"`
	KeepTopics bool      `json:"keep_topics"`
}
