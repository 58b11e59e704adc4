package kafkaeos

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FreshTopicDetails asks a broker for the metadata of topics. kadm's
// ListTopics answers from the client's metadata cache, which keeps a topic
// "unknown" (or a leader stale) for up to five seconds after it changed;
// right after creating topics, and when a partition's leader moved, only a
// fresh answer will do.
//
// from is a client (any broker answers, and the client caches the answer)
// or one broker (nothing is cached).
func FreshTopicDetails(ctx context.Context, from kmsg.Requestor, topics ...string) (kadm.TopicDetails, error) {
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

// PartitionCounts returns the partition count of every topic, from fresh
// metadata.
func PartitionCounts(ctx context.Context, from kmsg.Requestor, topics ...string) (map[string]int, error) {
	details, err := FreshTopicDetails(ctx, from, topics...)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(topics))
	for _, topic := range topics {
		detail := details[topic]
		if detail.Err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, detail.Err)
		}
		if len(detail.Partitions) == 0 {
			return nil, fmt.Errorf("metadata of %s: no partitions (does the topic exist?)", topic)
		}
		counts[topic] = len(detail.Partitions)
	}
	return counts, nil
}
