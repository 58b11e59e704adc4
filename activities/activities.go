// Package activities is where a flowproof run does its real work: one
// sub-package per stage of the pipeline, each with a small Activities
// struct holding only the clients that stage uses.
//
//   - preflight: CheckHealth, every component a run needs
//   - kafkaadmin: PrepareTopics, PollLag and Cleanup
//   - flink: SubmitFlinkJobs
//   - produce: ProduceChunk
//   - deliver: ObtainToken and DeliverSegment (tokens, the endpoint)
//   - verify: Verify
//   - runmetrics: RecordRunMetrics (the run's figures on the worker's /metrics)
//
// The workflows in workflows/ only decide what happens when; everything
// with I/O is in these packages. This package holds what several stages and
// the workflows share: the run's names, its Flink jobs, the message
// contract's header names and how long-running work reports progress.
package activities

// RunNames are the Kafka names of one run. The workflow derives them once
// (see workflows.PipelineInput) and passes them to every activity; the
// activities derive further names from them (a chunk's or a segment's
// transactional id, a Flink job's name), never from anything else.
type RunNames struct {
	RunID          string `json:"run_id"`
	RawTopic       string `json:"raw_topic"`
	EnrichedTopic  string `json:"enriched_topic"`
	ResponsesTopic string `json:"responses_topic"`
	FinalTopic     string `json:"final_topic"`
	// LedgerTopic records, in the same Kafka transaction as a chunk's
	// messages, that the chunk was committed; a retried chunk reads it to
	// know whether its first attempt already committed.
	LedgerTopic string `json:"ledger_topic"`
	// AcceptedTopic records every batch the endpoint accepted, one
	// AcceptedBatch each, written the moment the answer arrives and outside
	// any transaction, so that no later retry or abort can erase it.
	// Verification counts the endpoint's hop from it.
	AcceptedTopic string `json:"accepted_topic,omitempty"`
	EnrichGroup   string `json:"enrich_group"`
	DeliverGroup  string `json:"deliver_group"`
	SplitGroup    string `json:"split_group"`
}

// RunNamesOf is the names of the run runID when its input overrides none
// of its topics: flowproof.<run>.raw and so on (docs/message-contract.md).
func RunNamesOf(runID string) RunNames {
	prefix := "flowproof." + runID + "."
	return RunNames{
		RunID:          runID,
		RawTopic:       prefix + "raw",
		EnrichedTopic:  prefix + "enriched",
		ResponsesTopic: prefix + "responses",
		FinalTopic:     prefix + "final",
		LedgerTopic:    prefix + "ledger",
		AcceptedTopic:  prefix + "accepted",
		EnrichGroup:    prefix + "enrich",
		DeliverGroup:   prefix + "deliver",
		SplitGroup:     prefix + "split",
	}
}

// Topics lists every topic of the run.
func (n RunNames) Topics() []string {
	topics := []string{n.RawTopic, n.EnrichedTopic, n.ResponsesTopic, n.FinalTopic, n.LedgerTopic}
	if n.AcceptedTopic != "" { // runs recorded before the endpoint's hop was counted had none
		topics = append(topics, n.AcceptedTopic)
	}
	return topics
}

// AcceptedBatch is one record of RunNames.AcceptedTopic: a batch the
// endpoint answered with 2xx, as delivery sent it. The key of the record is
// the batch id.
type AcceptedBatch struct {
	BatchID string `json:"batch_id"`
	Segment int    `json:"segment"`
	// Attempt is the delivery activity's attempt that sent the batch.
	Attempt int32 `json:"attempt"`
	// Replayed is true when the endpoint answered from its idempotency
	// store: it had accepted this batch id before and did not accept the
	// messages again.
	Replayed bool `json:"replayed,omitempty"`
	// Seqs are the messages of the batch, in the order sent.
	Seqs                 []int64 `json:"seqs"`
	AcceptedAtUnixMillis int64   `json:"accepted_at_unix_ms"`
}

// Groups lists every consumer group of the run.
func (n RunNames) Groups() []string {
	return []string{n.EnrichGroup, n.DeliverGroup, n.SplitGroup}
}

// FlinkJobs identifies the run's Flink jobs.
type FlinkJobs struct {
	EnrichJobID string `json:"enrich_job_id"`
	SplitJobID  string `json:"split_job_id"`
	// EnrichJobName and SplitJobName are the jobs' Flink names, derived from
	// the run (see FlinkJobsOf). Cleanup also cancels running jobs by these
	// names, so a run whose submission failed after Flink had accepted a
	// job still cleans it up.
	EnrichJobName string `json:"enrich_job_name,omitempty"`
	SplitJobName  string `json:"split_job_name,omitempty"`
	// SubmitToRunningMillis is the time from submitting the statements to
	// both jobs being RUNNING.
	SubmitToRunningMillis int64 `json:"submit_to_running_ms"`
}

// FlinkJobsOf names the Flink jobs of a run, without ids.
//
// A job is named like its consumer group (flowproof.<run>.enrich, ...): both
// are per run and per job, and Kafka's name alphabet is a safe Flink job
// name.
func FlinkJobsOf(names RunNames) FlinkJobs {
	return FlinkJobs{EnrichJobName: names.EnrichGroup, SplitJobName: names.SplitGroup}
}

// MessageView is one message of the final topic, as the verification
// report shows it (verify writes it, the starter prints it).
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

// Header names and the produced_at layout of the message contract
// (docs/message-contract.md).
const (
	HeaderLogicalQueue  = "logical.queue"
	HeaderCorrelationID = "correlation.id"
	HeaderSendingID     = "sending.id"
	HeaderBatchNumber   = "batch.number"

	// ProducedAtLayout is RFC 3339 with exactly six fractional digits, so
	// every produced_at has the same width and sorts as text.
	ProducedAtLayout = "2006-01-02T15:04:05.000000Z07:00"
)
