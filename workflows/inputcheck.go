package workflows

import (
	"fmt"
	"time"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/produce"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
)

// verifyTimeout is the Verify activity's StartToClose timeout; the longest
// idle wait Verify accepts (verify.MaxIdleTimeout) leaves most of it to
// reading the final topic.
const verifyTimeout = 30 * time.Minute

// checkAcrossFields refuses an input whose fields are each in range but
// together would fail the run later, on a healthy stack, for a reason of
// the input. Each limit is the one the activity or child workflow that
// would fail enforces, exported from its package.
func (in PipelineInput) checkAcrossFields() error {
	rate := in.productionRate()
	// The rates ProduceWorkflow gives a chunk past the warmup and within
	// it, ChunkConcurrency chunks in flight at each; only the rates are
	// read, so the run's names are left out.
	prod := in.produceInput("", activities.RunNames{})
	chunkRate, warmupChunkRate := prod.chunkRate(in.WarmupMessages), prod.chunkRate(0)
	inFlight := float64(in.ChunkConcurrency)
	chunkSeconds := float64(in.ChunkSize) / chunkRate
	warmupMessages := min(in.WarmupMessages, in.Messages)
	warmupChunkSeconds := 0.0
	if warmupMessages > 0 {
		warmupChunkSeconds = float64(in.ChunkSize) / warmupChunkRate
	}
	productionSeconds := float64(warmupMessages)/(warmupChunkRate*inFlight) +
		float64(in.Messages-warmupMessages)/(chunkRate*inFlight)
	checks := []struct {
		ok    bool
		field string
		value any
		rule  string
	}{
		{chunkSeconds <= produce.MaxChunkDuration.Seconds(), "chunk_size", in.ChunkSize, fmt.Sprintf(
			"a chunk takes %.0fs at %.4g messages/s (the rate cap %.4g over chunk_concurrency %d), longer than a Kafka transaction may stay open (%s); use smaller chunks or a higher rate",
			chunkSeconds, chunkRate, rate, in.ChunkConcurrency, produce.MaxChunkDuration)},
		{warmupChunkSeconds <= produce.MaxChunkDuration.Seconds(), "warmup_rate_per_second", in.WarmupRatePerSecond, fmt.Sprintf(
			"a chunk of the warmup takes %.0fs at %.4g messages/s (the warmup rate over chunk_concurrency %d), longer than a Kafka transaction may stay open (%s); use a higher warmup rate or smaller chunks",
			warmupChunkSeconds, warmupChunkRate, in.ChunkConcurrency, produce.MaxChunkDuration)},
		{productionSeconds < float64(in.TimeoutSeconds), "timeout_seconds", in.TimeoutSeconds, fmt.Sprintf(
			"production alone takes %.0fs at the rate cap %.4g (min of rate_per_second and rate_per_queue*logical_queues; the warmup at warmup_rate_per_second); raise timeout_seconds or the rate",
			productionSeconds, rate)},
		// A transactional topic read to its end still shows a lag of up to
		// one commit marker per partition (see kafkaadmin.PollLag), so a
		// lower resume mark could hold production for good.
		{in.LagResume >= int64(in.Partitions), "lag_resume", in.LagResume, fmt.Sprintf(
			"must be at least partitions (%d): a fully consumed topic still shows a lag of up to one per partition", in.Partitions)},
	}
	for _, c := range checks {
		if !c.ok {
			return errtype.InvalidInputf("%s %v: %s", c.field, c.value, c.rule)
		}
	}
	return in.checkDerivedNames()
}

// checkDerivedNames checks the names the run derives from its run id
// against the limits of Kafka and Flink: the topics and groups, the Flink
// job names and their sinks' transactional id prefixes.
func (in PipelineInput) checkDerivedNames() error {
	names := in.runNames()
	jobs := activities.FlinkJobsOf(names)
	type limited struct {
		what, name string
		limit      int
	}
	var all []limited
	for _, topic := range names.Topics() {
		all = append(all, limited{"topic", topic, flinksql.MaxTopicLength})
	}
	for _, group := range names.Groups() {
		all = append(all, limited{"consumer group", group, flinksql.MaxTopicLength})
	}
	for _, job := range []string{jobs.EnrichJobName, jobs.SplitJobName} {
		all = append(all,
			limited{"Flink job name", job, flinksql.MaxNameLength},
			limited{"transactional id prefix", flink.TransactionalIDPrefix(job), flinksql.MaxNameLength})
	}
	for _, n := range all {
		if len(n.name) > n.limit {
			return errtype.InvalidInputf("run_id %q: is %d characters too long: it makes the %s %q, longer than %d characters",
				in.RunID, len(n.name)-n.limit, n.what, n.name, n.limit)
		}
	}
	return nil
}
