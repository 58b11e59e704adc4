package workflows

import (
	"fmt"

	"github.com/flowproof/flowproof/activities/produce"
	"github.com/flowproof/flowproof/internal/errtype"
)

// fieldCheck is one rule of a child workflow's input, named by its JSON
// field.
type fieldCheck struct {
	ok    bool
	field string
	value any
	rule  string
}

// firstFailure is the non-retryable InvalidInput of the first check that
// fails, naming the workflow and the field.
func firstFailure(workflowName string, checks []fieldCheck) error {
	for _, c := range checks {
		if !c.ok {
			return errtype.InvalidInputf("%s: %s %v: %s", workflowName, c.field, c.value, c.rule)
		}
	}
	return nil
}

// validate is ProduceWorkflow's check of its input: a parent derives it
// from a validated PipelineInput, but a child can also be started on its
// own, and a wrong value would fail only chunks later.
func (in ProduceInput) validate() error {
	n := in.Names
	chunkRate := in.RatePerSecond / float64(max(in.ChunkConcurrency, 1))
	return firstFailure("ProduceWorkflow", []fieldCheck{
		{n.RunID != "" && n.RawTopic != "" && n.LedgerTopic != "", "names", n.RunID, "run_id, raw_topic and ledger_topic must be set"},
		{n.EnrichGroup != "" && n.DeliverGroup != "" && n.SplitGroup != "" && n.EnrichedTopic != "" && n.ResponsesTopic != "",
			"names", n.RunID, "the groups and topics whose lag is polled must be set"},
		{in.Messages >= 1, "messages", in.Messages, "must be at least 1"},
		{in.ChunkSize >= 1, "chunk_size", in.ChunkSize, "must be at least 1"},
		{in.ChunkConcurrency >= 1, "chunk_concurrency", in.ChunkConcurrency, "must be at least 1"},
		{in.LogicalQueues >= 1, "logical_queues", in.LogicalQueues, "must be at least 1"},
		{in.PayloadBytes >= 0 && in.PayloadBytes <= produce.MaxPayloadBytes, "payload_bytes", in.PayloadBytes,
			fmt.Sprintf("must be between 0 and %d", produce.MaxPayloadBytes)},
		{in.RatePerSecond > 0, "rate_per_second", in.RatePerSecond, "must be positive"},
		{float64(in.ChunkSize)/chunkRate <= produce.MaxChunkDuration.Seconds(), "chunk_size", in.ChunkSize,
			fmt.Sprintf("at %.4g messages/s per chunk a chunk takes longer than %s", chunkRate, produce.MaxChunkDuration)},
		{in.LagThreshold > 0, "lag_threshold", in.LagThreshold, "must be positive"},
		{in.LagResume > 0 && in.LagResume <= in.LagThreshold, "lag_resume", in.LagResume, "must be positive and at most lag_threshold"},
		{in.LagPollEvery >= 1, "lag_poll_every_seconds", in.LagPollEvery, "must be at least 1"},
		{in.LagThresholdSeconds >= 0, "lag_threshold_seconds", in.LagThresholdSeconds, "must not be negative (0: no threshold in seconds)"},
		{in.LagThresholdSeconds == 0 || (in.LagResumeSeconds > 0 && in.LagResumeSeconds <= in.LagThresholdSeconds),
			"lag_resume_seconds", in.LagResumeSeconds, "must be positive and at most lag_threshold_seconds"},
		{in.CheckpointIntervalSeconds >= 0, "checkpoint_interval_seconds", in.CheckpointIntervalSeconds, "must not be negative"},
		{in.ChunksPerRun >= 0, "chunks_per_run", in.ChunksPerRun, "must not be negative (0: the default)"},
		{in.SegmentMessages >= 0, "segment_messages", in.SegmentMessages, "must not be negative (0: no segment steps)"},
		{in.State.NextChunk >= 0 && in.State.Produced >= 0, "state", in.State.NextChunk, "next_chunk and produced must not be negative"},
	})
}

// validate is DeliverWorkflow's check of its input.
func (in DeliverInput) validate() error {
	n := in.Names
	return firstFailure("DeliverWorkflow", []fieldCheck{
		{n.RunID != "" && n.EnrichedTopic != "" && n.ResponsesTopic != "" && n.DeliverGroup != "", "names", n.RunID,
			"run_id, enriched_topic, responses_topic and deliver_group must be set"},
		{in.Messages >= 1, "messages", in.Messages, "must be at least 1"},
		{in.BatchSize >= 1, "batch_size", in.BatchSize, "must be at least 1"},
		{in.TokenRenewEvery >= in.BatchSize, "token_renew_every", in.TokenRenewEvery, "must be at least batch_size"},
		{in.StallSeconds >= 1, "stall_seconds", in.StallSeconds, "must be at least 1"},
		{in.SegmentsPerRun >= 0, "segments_per_run", in.SegmentsPerRun, "must not be negative (0: the default)"},
		{in.State.Delivered >= 0 && in.State.Segments >= 0, "state", in.State.Delivered, "delivered and segment must not be negative"},
	})
}
