package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
)

// Limits of PrepareTopicsInput.
const (
	maxPartitions        = 10_000
	maxReplicationFactor = 32

	// topicsReadyTimeout bounds the wait for new topics to have a leader
	// for every partition in every broker's metadata.
	topicsReadyTimeout = 30 * time.Second
)

// ErrTopicMismatch is the error type of PrepareTopics when a topic of the
// run exists with another partition count; retrying cannot fix that.
const ErrTopicMismatch = "TopicMismatch"

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
			return invalidInput(f.field + " is empty")
		}
		if other, dup := seen[f.value]; dup {
			return invalidInput(fmt.Sprintf("%s and %s are both %q; every topic of a run needs its own name", other, f.field, f.value))
		}
		seen[f.value] = f.field
	}
	if in.Partitions < 1 || in.Partitions > maxPartitions {
		return invalidInput(fmt.Sprintf("partitions is %d; want 1 to %d", in.Partitions, maxPartitions))
	}
	if in.ReplicationFactor < 1 || in.ReplicationFactor > maxReplicationFactor {
		return invalidInput(fmt.Sprintf("replication_factor is %d; want 1 to %d", in.ReplicationFactor, maxReplicationFactor))
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
	if err := validatePrepareTopics(in); err != nil {
		return PrepareTopicsResult{}, err
	}
	meta, err := a.admin.BrokerMetadata(ctx)
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
		created, err := a.ensureTopic(ctx, spec, int16(in.ReplicationFactor))
		if err != nil {
			return result, err
		}
		if created {
			result.Created = append(result.Created, spec.name)
		} else {
			result.Existed = append(result.Existed, spec.name)
		}
	}
	if err := a.waitTopicsReady(ctx, specs, meta.Brokers.NodeIDs()); err != nil {
		return result, err
	}
	a.log.Info("topics prepared", zap.Strings("created", result.Created), zap.Strings("existed", result.Existed), zap.Int("brokers", result.Brokers))
	return result, nil
}

// ensureTopic creates spec unless it exists, and reports whether it created
// it.
func (a *Activities) ensureTopic(ctx context.Context, spec topicSpec, replicationFactor int16) (bool, error) {
	exists, err := a.checkExistingTopic(ctx, spec)
	if err != nil || exists {
		return false, err
	}
	resp, err := a.admin.CreateTopic(ctx, spec.partitions, replicationFactor, spec.configs, spec.name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		// Someone created it between the check and the create; it is
		// only ours to use if it has the right shape.
		_, err := a.checkExistingTopic(ctx, spec)
		return false, err
	default:
		return false, fmt.Errorf("create topic %s (%d partitions, replication factor %d): %w %s", spec.name, spec.partitions, replicationFactor, err, resp.ErrMessage)
	}
}

// checkExistingTopic reports whether spec's topic exists, and errors when it
// exists with another partition count.
func (a *Activities) checkExistingTopic(ctx context.Context, spec topicSpec) (bool, error) {
	details, err := freshTopicDetails(ctx, a.kafka, spec.name)
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
			ErrTopicMismatch, nil)
	}
	return true, nil
}

// waitTopicsReady waits until every broker's metadata has every partition
// of specs with a leader. Brokers learn about new topics from the metadata
// log at their own pace; asking only one would let the producers and Flink
// jobs started next ask another that still says "unknown topic".
func (a *Activities) waitTopicsReady(ctx context.Context, specs []topicSpec, brokers []int32) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	deadline := time.Now().Add(topicsReadyTimeout)
	for {
		var notReady []string
		var lastErr error
		for _, broker := range brokers {
			details, err := freshTopicDetails(ctx, a.kafka.Broker(int(broker)), names...)
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
			if _, err := freshTopicDetails(ctx, a.kafka, names...); err != nil {
				return err
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics not ready after %s: %v (last error: %v)", topicsReadyTimeout, notReady, lastErr)
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

// freshTopicDetails asks a broker for the metadata of topics. kadm's
// ListTopics answers from the client's metadata cache, which keeps a topic
// "unknown" (or a leader stale) for up to five seconds after it changed;
// right after creating topics, and when a partition's leader moved, only a
// fresh answer will do.
//
// from is a client (any broker answers, and the client caches the answer)
// or one broker (nothing is cached).
func freshTopicDetails(ctx context.Context, from kmsg.Requestor, topics ...string) (kadm.TopicDetails, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("metadata of %v: %w", topics, err)
	}
	details := make(kadm.TopicDetails, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		detail := kadm.TopicDetail{
			Topic:      *t.Topic,
			ID:         t.TopicID,
			IsInternal: t.IsInternal,
			Partitions: make(kadm.PartitionDetails, len(t.Partitions)),
			Err:        kerr.ErrorForCode(t.ErrorCode),
		}
		for _, p := range t.Partitions {
			detail.Partitions[p.Partition] = kadm.PartitionDetail{
				Topic:           *t.Topic,
				Partition:       p.Partition,
				Leader:          p.Leader,
				LeaderEpoch:     p.LeaderEpoch,
				Replicas:        p.Replicas,
				ISR:             p.ISR,
				OfflineReplicas: p.OfflineReplicas,
				Err:             kerr.ErrorForCode(p.ErrorCode),
			}
		}
		details[*t.Topic] = detail
	}
	return details, nil
}
