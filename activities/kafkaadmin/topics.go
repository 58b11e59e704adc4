// Package kafkaadmin manages what a run owns on the Kafka cluster: it
// creates the run's topics, reads its consumer groups' lag, and cleans up
// after the run (its Flink jobs too, since they hold the groups).
package kafkaadmin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// Activities holds the shared Kafka connection and, for cleanup, the Flink
// JobManager client (nil when the worker has no Flink address).
type Activities struct {
	kafka *kafkaeos.Conn
	jobs  *flinksql.JobManager
}

// New returns the Kafka administration activities.
func New(kafka *kafkaeos.Conn, jobs *flinksql.JobManager) *Activities {
	return &Activities{kafka: kafka, jobs: jobs}
}

// PrepareTopicsInput creates the run's topics.
type PrepareTopicsInput struct {
	Names             activities.RunNames `json:"names"`
	Partitions        int                 `json:"partitions"`
	ReplicationFactor int                 `json:"replication_factor"`
}

// PrepareTopicsResult says which topics were created and which existed.
type PrepareTopicsResult struct {
	Created []string `json:"created"`
	Existed []string `json:"existed"`
	Brokers int      `json:"brokers"`
}

// Limits of PrepareTopicsInput.
const (
	maxPartitions        = 10_000
	maxReplicationFactor = 32

	// topicsReadyTimeout bounds the wait for new topics to have a leader
	// for every partition in every broker's metadata.
	topicsReadyTimeout = 30 * time.Second
)

// topicSpec is how one topic of a run is created.
type topicSpec struct {
	name       string
	partitions int32
	configs    map[string]*string
}

// runTopicSpecs describes the topics of a run. The ledger holds one record
// per chunk and is read whole, so one compacted partition suits it; the
// final topic stamps records on arrival, which is what latency is measured
// against.
func runTopicSpecs(in PrepareTopicsInput) []topicSpec {
	data := func(extra map[string]string) map[string]*string {
		configs := map[string]*string{}
		// With three replicas, acks=all only means "on two brokers at
		// least" if the topic says so; Kafka's default is one.
		if in.ReplicationFactor >= 3 {
			configs["min.insync.replicas"] = ptr("2")
		}
		for k, v := range extra {
			configs[k] = ptr(v)
		}
		return configs
	}
	partitions := int32(in.Partitions)
	return []topicSpec{
		{name: in.Names.RawTopic, partitions: partitions, configs: data(nil)},
		{name: in.Names.EnrichedTopic, partitions: partitions, configs: data(nil)},
		{name: in.Names.ResponsesTopic, partitions: partitions, configs: data(nil)},
		{name: in.Names.FinalTopic, partitions: partitions, configs: data(map[string]string{"message.timestamp.type": "LogAppendTime"})},
		{name: in.Names.LedgerTopic, partitions: 1, configs: data(map[string]string{"cleanup.policy": "compact"})},
	}
}

func ptr(s string) *string { return &s }

// ValidatePrepareTopicsInput is PrepareTopics' own check of its input,
// which the workflows' input checks are tested against.
func ValidatePrepareTopicsInput(in PrepareTopicsInput) error { return validatePrepareTopics(in) }

func validatePrepareTopics(in PrepareTopicsInput) error {
	fields := []struct{ field, value string }{
		{"names.raw_topic", in.Names.RawTopic},
		{"names.enriched_topic", in.Names.EnrichedTopic},
		{"names.responses_topic", in.Names.ResponsesTopic},
		{"names.final_topic", in.Names.FinalTopic},
		{"names.ledger_topic", in.Names.LedgerTopic},
	}
	seen := map[string]string{}
	for _, f := range fields {
		if f.value == "" {
			return errtype.InvalidInputf("%s is empty", f.field)
		}
		if other, dup := seen[f.value]; dup {
			return errtype.InvalidInputf("%s and %s are both %q; every topic of a run needs its own name", other, f.field, f.value)
		}
		seen[f.value] = f.field
	}
	if in.Partitions < 1 || in.Partitions > maxPartitions {
		return errtype.InvalidInputf("partitions is %d; want 1 to %d", in.Partitions, maxPartitions)
	}
	if in.ReplicationFactor < 1 || in.ReplicationFactor > maxReplicationFactor {
		return errtype.InvalidInputf("replication_factor is %d; want 1 to %d", in.ReplicationFactor, maxReplicationFactor)
	}
	return nil
}

// PrepareTopics creates the run's topics. It is idempotent: a topic that
// already exists with the wanted partition count is reported as existed, so
// a retried attempt (or a rerun with the same run id) goes through; one with
// another partition count is an error, because the run's guarantees (a
// logical queue stays in one partition, the ledger is one partition) rest on
// it.
func (a *Activities) PrepareTopics(ctx context.Context, in PrepareTopicsInput) (PrepareTopicsResult, error) {
	return CreateRunTopics(ctx, a.kafka, in, activity.GetLogger(ctx))
}

// CreateRunTopics is PrepareTopics outside an activity (the benchmark): it
// logs to logger.
func CreateRunTopics(ctx context.Context, kafka *kafkaeos.Conn, in PrepareTopicsInput, logger log.Logger) (PrepareTopicsResult, error) {
	if err := validatePrepareTopics(in); err != nil {
		return PrepareTopicsResult{}, err
	}
	meta, err := kafka.Admin.BrokerMetadata(ctx)
	if err != nil {
		return PrepareTopicsResult{}, fmt.Errorf("broker metadata: %w", err)
	}
	result := PrepareTopicsResult{Brokers: len(meta.Brokers)}
	if in.ReplicationFactor > result.Brokers {
		// Not non-retryable: a broker that is restarting comes back.
		return result, fmt.Errorf("replication_factor is %d but only %d brokers are up", in.ReplicationFactor, result.Brokers)
	}

	specs := runTopicSpecs(in)
	for _, spec := range specs {
		created, err := ensureTopic(ctx, kafka, spec, int16(in.ReplicationFactor))
		if err != nil {
			return result, err
		}
		if created {
			result.Created = append(result.Created, spec.name)
		} else {
			result.Existed = append(result.Existed, spec.name)
		}
	}
	if err := waitTopicsReady(ctx, kafka.Client, specs, meta.Brokers.NodeIDs()); err != nil {
		return result, err
	}
	logger.Info("topics prepared", "Created", result.Created, "Existed", result.Existed, "Brokers", result.Brokers)
	return result, nil
}

// ensureTopic creates spec unless it exists, and reports whether it created
// it.
func ensureTopic(ctx context.Context, kafka *kafkaeos.Conn, spec topicSpec, replicationFactor int16) (bool, error) {
	exists, err := checkExistingTopic(ctx, kafka, spec)
	if err != nil || exists {
		return false, err
	}
	resp, err := kafka.Admin.CreateTopic(ctx, spec.partitions, replicationFactor, spec.configs, spec.name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		// Someone created it between the check and the create; it is
		// only ours to use if it has the right shape.
		_, err := checkExistingTopic(ctx, kafka, spec)
		return false, err
	default:
		return false, fmt.Errorf("create topic %s (%d partitions, replication factor %d): %w %s", spec.name, spec.partitions, replicationFactor, err, resp.ErrMessage)
	}
}

// checkExistingTopic reports whether spec's topic exists, and errors when it
// exists with another partition count.
func checkExistingTopic(ctx context.Context, kafka *kafkaeos.Conn, spec topicSpec) (bool, error) {
	details, err := kafkaeos.FreshTopicDetails(ctx, kafka.Client, spec.name)
	if err != nil {
		return false, fmt.Errorf("metadata of %s: %w", spec.name, err)
	}
	detail, ok := details[spec.name]
	if !ok || errors.Is(detail.Err, kerr.UnknownTopicOrPartition) {
		return false, nil
	}
	if detail.Err != nil {
		return false, fmt.Errorf("metadata of %s: %w", spec.name, detail.Err)
	}
	if got := int32(len(detail.Partitions)); got != spec.partitions {
		return true, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("topic %s exists with %d partitions, want %d; delete it or choose other topic names", spec.name, got, spec.partitions),
			errtype.TopicMismatch, nil)
	}
	return true, nil
}

// waitTopicsReady waits until every broker's metadata has every partition
// of specs with a leader. Brokers learn about new topics from the metadata
// log at their own pace; asking only one would let the producers and Flink
// jobs started next ask another that still says "unknown topic".
func waitTopicsReady(ctx context.Context, client *kgo.Client, specs []topicSpec, brokers []int32) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	deadline := time.Now().Add(topicsReadyTimeout)
	for {
		var notReady []string
		var lastErr error
		for _, broker := range brokers {
			details, err := kafkaeos.FreshTopicDetails(ctx, client.Broker(int(broker)), names...)
			if err != nil {
				lastErr = err
				notReady = append(notReady, fmt.Sprintf("broker %d: %v", broker, err))
				continue
			}
			for _, t := range topicsNotReady(details, specs) {
				notReady = append(notReady, fmt.Sprintf("broker %d: %s", broker, t))
			}
		}
		if len(notReady) == 0 {
			// Asked through the client, metadata also replaces what the
			// client cached before the topics existed ("unknown topic"),
			// which kadm would otherwise answer from for a few seconds.
			if _, err := kafkaeos.FreshTopicDetails(ctx, client, names...); err != nil {
				return err
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics not ready after %s: %v (last error: %w)", topicsReadyTimeout, notReady, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// topicsNotReady lists the topics of specs that lack a partition or a
// leader in details.
func topicsNotReady(details kadm.TopicDetails, specs []topicSpec) []string {
	var notReady []string
	for _, spec := range specs {
		detail, ok := details[spec.name]
		if !ok || detail.Err != nil || int32(len(detail.Partitions)) != spec.partitions {
			notReady = append(notReady, spec.name)
			continue
		}
		for _, p := range detail.Partitions {
			if p.Leader < 0 || p.Err != nil {
				notReady = append(notReady, spec.name+"/"+strconv.Itoa(int(p.Partition)))
				break
			}
		}
	}
	return notReady
}
