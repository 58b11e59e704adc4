// Package kafkaadmin manages what a run owns on the Kafka cluster: it
// creates the run's topics, reads its consumer groups' lag, and cleans up
// after the run (its Flink jobs too, since they hold the groups).
package kafkaadmin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
	Names activities.RunNames `json:"names"`
	// Partitions is the raw topic's partition count; DerivedPartitions
	// that of the enriched, responses, final and accepted topics (0: the
	// same as Partitions, as runs recorded before it existed had).
	Partitions        int `json:"partitions"`
	DerivedPartitions int `json:"derived_partitions,omitempty"`
	ReplicationFactor int `json:"replication_factor"`
	// MinInsyncReplicas is every topic's min.insync.replicas, the replicas
	// a write with acks=all (every producer of a run: they are
	// transactional) must reach. 0, as runs recorded before it existed
	// have, means 2 with three replicas or more, else the brokers' default.
	MinInsyncReplicas int `json:"min_insync_replicas,omitempty"`
	// TopicConfigs are more configs for every topic of the run (say
	// retention.ms or compression.type). Those flowproof owns are refused
	// (see CheckTopicConfigs), and the run's own per-topic settings win:
	// the ledger stays compacted.
	TopicConfigs map[string]string `json:"topic_configs,omitempty"`
	// Owner is the workflow the run belongs to; the ledger records it. A
	// caller outside Temporal (the benchmark) leaves it empty, which the
	// leftover sweep never touches.
	Owner Owner `json:"owner,omitzero"`
}

// PrepareTopicsResult says which topics were created and which existed
// (because an earlier attempt of the same run created them).
type PrepareTopicsResult struct {
	Created []string `json:"created"`
	Existed []string `json:"existed"`
	Brokers int      `json:"brokers"`
	// ResetFromRunID is, when the workflow was reset after it had prepared
	// its topics, the Temporal run that prepared them.
	ResetFromRunID string `json:"reset_from_run_id,omitempty"`
}

// Limits of PrepareTopicsInput.
const (
	maxPartitions = 10_000
	// MaxReplicationFactor is the highest replication factor accepted.
	MaxReplicationFactor = 32

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
		for k, v := range in.TopicConfigs {
			configs[k] = ptr(v)
		}
		// acks=all only means "on N brokers at least" if the topic says
		// so; Kafka's default is one.
		switch {
		case in.MinInsyncReplicas > 0:
			configs["min.insync.replicas"] = ptr(strconv.Itoa(in.MinInsyncReplicas))
		case in.ReplicationFactor >= 3:
			configs["min.insync.replicas"] = ptr("2")
		}
		for k, v := range extra {
			configs[k] = ptr(v)
		}
		return configs
	}
	derived := int32(in.Partitions)
	if in.DerivedPartitions > 0 {
		derived = int32(in.DerivedPartitions)
	}
	specs := []topicSpec{
		{name: in.Names.RawTopic, partitions: int32(in.Partitions), configs: data(nil)},
		{name: in.Names.EnrichedTopic, partitions: derived, configs: data(nil)},
		{name: in.Names.ResponsesTopic, partitions: derived, configs: data(nil)},
		{name: in.Names.FinalTopic, partitions: derived, configs: data(map[string]string{"message.timestamp.type": "LogAppendTime"})},
		{name: in.Names.LedgerTopic, partitions: 1, configs: data(map[string]string{"cleanup.policy": "compact"})},
	}
	if in.Names.AcceptedTopic != "" { // runs recorded before the endpoint's hop was counted had none
		specs = append(specs, topicSpec{name: in.Names.AcceptedTopic, partitions: derived, configs: data(nil)})
	}
	return specs
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
		{"names.accepted_topic", in.Names.AcceptedTopic},
	}
	seen := map[string]string{}
	for _, f := range fields {
		if f.value == "" && f.field == "names.accepted_topic" {
			continue // optional: runs recorded before it existed have none
		}
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
	if in.DerivedPartitions < 0 || in.DerivedPartitions > maxPartitions {
		return errtype.InvalidInputf("derived_partitions is %d; want 1 to %d, or 0 for partitions", in.DerivedPartitions, maxPartitions)
	}
	if in.ReplicationFactor < 1 || in.ReplicationFactor > MaxReplicationFactor {
		return errtype.InvalidInputf("replication_factor is %d; want 1 to %d", in.ReplicationFactor, MaxReplicationFactor)
	}
	if in.MinInsyncReplicas < 0 || in.MinInsyncReplicas > in.ReplicationFactor {
		return errtype.InvalidInputf("min_insync_replicas is %d; want 1 to replication_factor %d (or 0 for the default)", in.MinInsyncReplicas, in.ReplicationFactor)
	}
	return CheckTopicConfigs(in.TopicConfigs)
}

// ownedTopicConfigs are the topic configs flowproof sets itself: the
// replicas in sync come from their own setting, and the final topic's
// arrival timestamps are what end-to-end latency is measured against.
var ownedTopicConfigs = map[string]string{
	"min.insync.replicas":    "it is min_insync_replicas",
	"message.timestamp.type": "the final topic's LogAppendTime is what latency is measured against",
}

// maxTopicConfigs bounds topic_configs to what a person would set.
const maxTopicConfigs = 100

// CheckTopicConfigs refuses topic configs that cannot be a run's:
// malformed names, empty values and the configs flowproof owns, each with
// the non-retryable errtype.InvalidInput naming the config.
func CheckTopicConfigs(configs map[string]string) error {
	if len(configs) > maxTopicConfigs {
		return errtype.InvalidInputf("topic_configs has %d entries; at most %d", len(configs), maxTopicConfigs)
	}
	names := slices.Sorted(maps.Keys(configs))
	for _, name := range names {
		if !topicConfigName.MatchString(name) {
			return errtype.InvalidInputf("topic_configs %q: a Kafka topic config name is lower-case letters, digits, '.', '_' and '-'", name)
		}
		if why, owned := ownedTopicConfigs[name]; owned {
			return errtype.InvalidInputf("topic_configs %s: set by flowproof: %s", name, why)
		}
		if configs[name] == "" {
			return errtype.InvalidInputf("topic_configs %s: the value is empty; leave the config out for the brokers' default", name)
		}
	}
	return nil
}

var topicConfigName = regexp.MustCompile(`^[a-z0-9._-]{1,249}$`)

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
