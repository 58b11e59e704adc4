package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
)

// Defaults of PipelineInput: the standard nightly test. LagResume defaults
// to half of LagThreshold and RunID to the workflow id (see WithDefaults).
const (
	DefaultMessages          = 1_000_000
	DefaultLogicalQueues     = 1_000
	DefaultPartitions        = 100
	DefaultDerivedPartitions = 12
	DefaultPayloadBytes      = 128
	DefaultChunkSize         = 10_000
	DefaultChunkConcurrency  = 2
	DefaultRatePerSecond     = 50_000
	DefaultRatePerQueue      = 100
	// DefaultWarmupMessages at DefaultWarmupRatePerSecond take 12.5 s, about
	// as long as a fresh run's Flink jobs took to drain at speed
	// (docs/performance.md, "A slow start").
	DefaultWarmupMessages      = 150_000
	DefaultWarmupRatePerSecond = 12_000
	DefaultBatchSize           = 100
	DefaultTokenRenewEvery     = 10_000
	// DefaultLagThreshold is what holds a fresh run first, before the
	// groups' drain rates count, and the messages queued then are the
	// run's slowest: on fresh 2-core stacks 150,000 instead of 200,000
	// lowered the p99 latency in eighteen pairs of nineteen, in four
	// sittings, by 1.1 to 7.1 s. It costs wall time at some hours (2 to 24
	// s in seven pairs of the last eight, none the night before), within
	// the 90-second target in every run; 120,000 held longer for no lower
	// p99 (docs/performance.md, "A lower threshold in messages, read
	// every 2 s").
	DefaultLagThreshold = 150_000
	// DefaultLagPollEverySeconds is how often the lag is read. Production
	// at the cap queues up to 100,000 messages between two reads 2 s apart
	// (250,000 at 5 s), and those queued before a hold are a run's
	// slowest. On fresh 2-core stacks reading every 2 s instead of 5 cost
	// no wall time or CPU; it lowered the p99 latency in seven pairs of
	// fourteen, and at the 150,000 threshold kept it within 8.9–10.3 s
	// where every 5 s ranged from 7.9 to 13.6 s (docs/performance.md, "A
	// slow start" and "A lower threshold in messages, read every 2 s").
	DefaultLagPollEverySeconds = 2
	// DefaultLagThresholdSeconds is the seed's "lag threshold 5 s": with
	// resume at half of it, the slowest consumer has 2.5 to 5 s of work
	// queued while production runs, enough never to idle it between
	// polls, and little against a p99 latency target of 15 s.
	DefaultLagThresholdSeconds = 5
	// DefaultFlinkParallelism is one subtask per job. One enrich subtask
	// drains a default run with room to spare (up to 43,000/s on two
	// cores); each subtask less is one Kafka consumer and one
	// transactional producer less, and a run needs half the slots. On
	// fresh 2-core stacks it cost no wall time or CPU and lowered the p99
	// latency in five pairs of eight (docs/performance.md, "Flink
	// parallelism 1"). A larger pipeline sets flink_parallelism.
	DefaultFlinkParallelism          = 1
	DefaultCheckpointIntervalSeconds = 5
	DefaultReplicationFactor         = 3
	DefaultTaskManagers              = 1
	DefaultVerifyIdleSeconds         = 120
	DefaultFlinkWatchSeconds         = 10
	DefaultMaxFlinkRestarts          = 3
	// DefaultMinInsyncReplicas lets one broker of three be down while
	// every write still reaches two; with fewer replicas the default is 1.
	DefaultMinInsyncReplicas = 2
)

const (
	// maxBatchSize is what the reference endpoint accepts in one request.
	maxBatchSize = 1_000
	// maxLagThresholdSeconds is a day of lag, past any run's deadline: a
	// value that leaves only the threshold in messages.
	maxLagThresholdSeconds = 24 * 3600
	// maxTimeoutSeconds is a week: no run of any size needs longer.
	maxTimeoutSeconds = 7 * 24 * 3600
	// maxRunIDLength is the longest run id whose longest derived name, the
	// enrich job's transactional id prefix flowproof.<run>.enrich.txn,
	// fits flinksql.MaxNameLength; TestLongestRunIDFitsEveryName checks it.
	maxRunIDLength = flinksql.MaxNameLength - len("flowproof.") - len(".enrich.txn")
	// runIDHashBytes of SHA-256 tell apart workflow ids that sanitizeRunID
	// had to change: 64 bits, no collision in any realistic number of runs.
	runIDHashBytes = 8
)

var topicAlphabet = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// WithDefaults returns in with every zero field set to its default, the
// input a run of in actually uses. RunID defaults to workflowID, with the
// characters Kafka does not accept in topic names replaced; an empty
// workflowID leaves an empty RunID empty.
func (in PipelineInput) WithDefaults(workflowID string) PipelineInput {
	if in.RunID == "" {
		in.RunID = sanitizeRunID(workflowID)
	}
	setDefault(&in.Messages, DefaultMessages)
	setDefault(&in.LogicalQueues, DefaultLogicalQueues)
	setDefault(&in.Partitions, DefaultPartitions)
	setDefault(&in.DerivedPartitions, min(in.Partitions, DefaultDerivedPartitions))
	setDefault(&in.PayloadBytes, DefaultPayloadBytes)
	setDefault(&in.ChunkSize, DefaultChunkSize)
	setDefault(&in.ChunkConcurrency, DefaultChunkConcurrency)
	setDefault(&in.RatePerSecond, DefaultRatePerSecond)
	setDefault(&in.RatePerQueue, DefaultRatePerQueue)
	setDefault(&in.WarmupMessages, DefaultWarmupMessages)
	setDefault(&in.WarmupRatePerSecond, DefaultWarmupRatePerSecond)
	setDefault(&in.BatchSize, DefaultBatchSize)
	setDefault(&in.TokenRenewEvery, DefaultTokenRenewEvery)
	setDefault(&in.LagThreshold, DefaultLagThreshold)
	setDefault(&in.LagResume, in.LagThreshold/2)
	setDefault(&in.LagPollEverySeconds, DefaultLagPollEverySeconds)
	setDefault(&in.LagThresholdSeconds, DefaultLagThresholdSeconds)
	setDefault(&in.LagResumeSeconds, in.LagThresholdSeconds/2)
	setDefault(&in.FlinkParallelism, DefaultFlinkParallelism)
	setDefault(&in.CheckpointIntervalSeconds, DefaultCheckpointIntervalSeconds)
	setDefault(&in.ReplicationFactor, DefaultReplicationFactor)
	if in.ReplicationFactor >= 3 {
		setDefault(&in.MinInsyncReplicas, DefaultMinInsyncReplicas)
	}
	setDefault(&in.MinInsyncReplicas, 1)
	setDefault(&in.Brokers, in.ReplicationFactor)
	setDefault(&in.TaskManagers, DefaultTaskManagers)
	setDefault(&in.VerifyIdleSeconds, DefaultVerifyIdleSeconds)
	setDefault(&in.FlinkWatchSeconds, DefaultFlinkWatchSeconds)
	setDefault(&in.MaxFlinkRestarts, DefaultMaxFlinkRestarts)
	setDefault(&in.TimeoutSeconds, defaultTimeoutSeconds(in.Messages, in.productionRate(), in.VerifyIdleSeconds))
	return in
}

// defaultTimeoutSeconds allows set-up time plus production at a rate far
// below what a healthy stack reaches (1,000 messages a second, or half the
// run's own rate cap when that is lower) plus the time verification may
// wait for stragglers; at most the longest deadline allowed.
func defaultTimeoutSeconds(messages int64, rate float64, verifyIdleSeconds int) int {
	const setupSeconds, floorRatePerSecond = 15 * 60, 1_000
	production := float64(messages) / min(floorRatePerSecond, rate/2)
	return int(min(setupSeconds+production+float64(verifyIdleSeconds), maxTimeoutSeconds))
}

// timeout is the run's deadline.
func (in PipelineInput) timeout() time.Duration {
	return time.Duration(in.TimeoutSeconds) * time.Second
}

// ExecutionTimeout is the Temporal execution timeout that starters set
// beyond the run's own deadline (with its defaults applied): the run ends
// itself at its deadline with its figures, and the execution timeout ends
// it even when no worker is left to do so.
func (in PipelineInput) ExecutionTimeout() time.Duration {
	const cleanupAllowance = 15 * time.Minute
	return in.timeout() + cleanupAllowance
}

// withDefaults is what PipelineWorkflow runs on: the input with its
// defaults, RunID named after the workflow, and checked.
func (in PipelineInput) withDefaults(workflowID string) (PipelineInput, error) {
	in = in.WithDefaults(workflowID)
	return in, in.Validate()
}

func setDefault[T int | int64 | float64](field *T, def T) {
	if *field == 0 {
		*field = def
	}
}

// Validate checks an input whose defaults are applied (WithDefaults). The
// error is the non-retryable errtype.InvalidInput, naming the JSON field
// first: "invalid input: batch_size 5000: must be between 1 and 1000".
func (in PipelineInput) Validate() error {
	if err := in.CheckFields(); err != nil {
		return err
	}
	checks := []struct {
		ok    bool
		field string
		rule  string
		value any
	}{
		{in.Messages >= 1 && in.Messages <= verify.MaxMessages, "messages", fmt.Sprintf("must be between 1 and %d, the most one verification checks", verify.MaxMessages), in.Messages},
		{in.LogicalQueues >= 1 && in.LogicalQueues <= 10_000, "logical_queues", "must be between 1 and 10,000", in.LogicalQueues},
		{in.Partitions >= 1 && in.Partitions <= 1_000, "partitions", "must be between 1 and 1,000", in.Partitions},
		{in.DerivedPartitions >= 1 && in.DerivedPartitions <= 1_000, "derived_partitions", "must be between 1 and 1,000", in.DerivedPartitions},
		{in.PayloadBytes >= 1 && in.PayloadBytes <= 100_000, "payload_bytes", "must be between 1 and 100,000", in.PayloadBytes},
		{in.ChunkSize >= 1 && in.ChunkSize <= 1_000_000, "chunk_size", "must be between 1 and 1,000,000", in.ChunkSize},
		{in.ChunkConcurrency >= 1 && in.ChunkConcurrency <= 32, "chunk_concurrency", "must be between 1 and 32", in.ChunkConcurrency},
		{in.RatePerSecond > 0, "rate_per_second", "must be positive", in.RatePerSecond},
		{in.RatePerQueue > 0, "rate_per_queue", "must be positive", in.RatePerQueue},
		{in.WarmupMessages >= 0, "warmup_messages", "must be 0 or more", in.WarmupMessages},
		{in.WarmupRatePerSecond > 0, "warmup_rate_per_second", "must be positive", in.WarmupRatePerSecond},
		{in.BatchSize >= 1 && in.BatchSize <= maxBatchSize, "batch_size", fmt.Sprintf("must be between 1 and %d", maxBatchSize), in.BatchSize},
		{in.TokenRenewEvery >= in.BatchSize, "token_renew_every", "must be at least batch_size", in.TokenRenewEvery},
		{in.LagThreshold > 0, "lag_threshold", "must be positive", in.LagThreshold},
		{in.LagResume > 0 && in.LagResume <= in.LagThreshold, "lag_resume", "must be positive and at most lag_threshold", in.LagResume},
		{in.LagPollEverySeconds >= 1 && in.LagPollEverySeconds <= 300, "lag_poll_every_seconds", "must be between 1 and 300", in.LagPollEverySeconds},
		{in.LagThresholdSeconds > 0 && in.LagThresholdSeconds <= maxLagThresholdSeconds, "lag_threshold_seconds", fmt.Sprintf("must be positive and at most %d", maxLagThresholdSeconds), in.LagThresholdSeconds},
		{in.LagResumeSeconds > 0 && in.LagResumeSeconds <= in.LagThresholdSeconds, "lag_resume_seconds", "must be positive and at most lag_threshold_seconds", in.LagResumeSeconds},
		{in.FlinkParallelism >= 1 && in.FlinkParallelism <= 64, "flink_parallelism", "must be between 1 and 64", in.FlinkParallelism},
		{in.CheckpointIntervalSeconds >= 1 && in.CheckpointIntervalSeconds <= 600, "checkpoint_interval_seconds", "must be between 1 and 600", in.CheckpointIntervalSeconds},
		{in.ReplicationFactor >= 1 && in.ReplicationFactor <= kafkaadmin.MaxReplicationFactor, "replication_factor", fmt.Sprintf("must be between 1 and %d", kafkaadmin.MaxReplicationFactor), in.ReplicationFactor},
		{in.MinInsyncReplicas >= 1 && in.MinInsyncReplicas <= in.ReplicationFactor, "min_insync_replicas", fmt.Sprintf("must be between 1 and replication_factor %d", in.ReplicationFactor), in.MinInsyncReplicas},
		{in.Brokers >= in.ReplicationFactor, "brokers", fmt.Sprintf("must be at least replication_factor %d", in.ReplicationFactor), in.Brokers},
		{in.TaskManagers >= 1, "task_managers", "must be at least 1", in.TaskManagers},
		{in.VerifyIdleSeconds >= 1 && in.VerifyIdleSeconds <= int(verify.MaxIdleTimeout/time.Second), "verify_idle_seconds", fmt.Sprintf("must be between 1 and %.0f", verify.MaxIdleTimeout.Seconds()), in.VerifyIdleSeconds},
		{in.FlinkWatchSeconds >= 1 && in.FlinkWatchSeconds <= 300, "flink_watch_seconds", "must be between 1 and 300", in.FlinkWatchSeconds},
		{in.MaxFlinkRestarts >= 0 && in.MaxFlinkRestarts <= 1_000, "max_flink_restarts", "must be between 0 (default 3) and 1,000", in.MaxFlinkRestarts},
		{in.TimeoutSeconds >= 60 && in.TimeoutSeconds <= maxTimeoutSeconds, "timeout_seconds", fmt.Sprintf("must be between 60 and %d (7 days)", maxTimeoutSeconds), in.TimeoutSeconds},
		{in.RunID != "" && topicAlphabet.MatchString(in.RunID) && len(in.RunID) <= maxRunIDLength, "run_id", fmt.Sprintf("must be 1 to %d characters of [a-zA-Z0-9._-]", maxRunIDLength), in.RunID},
	}
	for _, c := range checks {
		if !c.ok {
			return errtype.InvalidInputf("%s %v: %s", c.field, c.value, c.rule)
		}
	}
	if err := in.validateTopics(); err != nil {
		return err
	}
	// CheckTopicConfigs reads the map's keys in sorted order, so which
	// config it refuses first does not depend on map iteration.
	//workflowcheck:ignore
	if err := kafkaadmin.CheckTopicConfigs(in.TopicConfigs); err != nil {
		return err
	}
	if err := in.Thresholds.validate(); err != nil {
		return err
	}
	return in.checkAcrossFields()
}

// validateTopics checks the run's topic names, overridden or derived: Kafka
// must accept each, and no two stages may share one.
func (in PipelineInput) validateTopics() error {
	names := in.runNames()
	seen := map[string]string{}
	// The ledger and accepted topics are derived from the run id only;
	// an override must not take their names either.
	for _, t := range []struct{ field, topic string }{
		{"the run's ledger topic", names.LedgerTopic}, {"the run's accepted topic", names.AcceptedTopic},
		{"topics.raw", names.RawTopic}, {"topics.enriched", names.EnrichedTopic},
		{"topics.responses", names.ResponsesTopic}, {"topics.final", names.FinalTopic},
	} {
		field, topic := t.field, t.topic
		if len(topic) > flinksql.MaxTopicLength || !topicAlphabet.MatchString(topic) || topic == "." || topic == ".." {
			return errtype.InvalidInputf("%s %q: must be 1 to %d characters of [a-zA-Z0-9._-]", field, topic, flinksql.MaxTopicLength)
		}
		if other, dup := seen[topic]; dup {
			return errtype.InvalidInputf("%s %q: same topic as %s", field, topic, other)
		}
		seen[topic] = field
	}
	return nil
}

// sanitizeRunID turns a workflow id into a run id Kafka accepts in topic
// names, one to one: an id that is one already stays as it is (so its names
// stay the same), and an id whose characters had to be replaced or that
// had to be shortened gets a hash of the whole original id appended, so
// that two workflow ids never share a run's topics.
func sanitizeRunID(workflowID string) string {
	var b strings.Builder
	changed := false
	for _, r := range workflowID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
			changed = true
		}
	}
	id := b.String()
	if !changed && len(id) <= maxRunIDLength {
		return id
	}
	sum := sha256.Sum256([]byte(workflowID))
	suffix := "-" + hex.EncodeToString(sum[:runIDHashBytes])
	return id[:min(len(id), maxRunIDLength-len(suffix))] + suffix
}

// runNames derives the run's topics and groups (docs/message-contract.md).
func (in PipelineInput) runNames() activities.RunNames {
	names := activities.RunNamesOf(in.RunID)
	for _, override := range []struct {
		topic *string
		name  string
	}{
		{&names.RawTopic, in.Topics.Raw}, {&names.EnrichedTopic, in.Topics.Enriched},
		{&names.ResponsesTopic, in.Topics.Responses}, {&names.FinalTopic, in.Topics.Final},
	} {
		if override.name != "" {
			*override.topic = override.name
		}
	}
	return names
}

// productionRate is the overall cap: messages go round-robin over the
// queues, so a per-queue cap q over n queues allows n*q overall.
func (in PipelineInput) productionRate() float64 {
	return min(in.RatePerSecond, in.RatePerQueue*float64(in.LogicalQueues))
}
