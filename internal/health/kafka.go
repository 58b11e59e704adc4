package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaMetadataTopic is the KRaft metadata log, whose Raft leader is the
// active controller.
const kafkaMetadataTopic = "__cluster_metadata"

// BrokerNeed is how many brokers a Kafka check wants and, for the message
// when the cluster has fewer, what needs them ("replication_factor 3").
type BrokerNeed struct {
	Min int
	By  string
}

// Kafka asks the cluster behind brokers for its metadata and for its KRaft
// quorum. It is healthy when at least need.Min brokers are registered and
// the quorum has a leader (the active controller), e.g.
// "3 brokers (1,2,3), controller 2 (quorum epoch 4, voters 1,2,3, max lag 0)";
// with fewer brokers the detail says what needs them: "replication_factor
// 3 needs 3 brokers; the cluster has 1 (1), controller 1 (...)".
//
// security are the client options that reach a secured cluster (TLS,
// SASL), as every other client of the worker has them.
//
// The quorum is asked through the brokers (DescribeQuorum is forwarded to
// the active controller), so this needs a KRaft cluster, which every Kafka
// since 4.0 is.
func Kafka(ctx context.Context, brokers []string, need BrokerNeed, security ...kgo.Opt) Result {
	wantBrokers := need.Min
	return run(ctx, "kafka", brokers, func(ctx context.Context) (string, error) {
		if len(brokers) == 0 {
			return "", errors.New("brokers is empty; want at least one host:port")
		}
		if wantBrokers < 1 {
			return "", fmt.Errorf("want at least 1 broker, got %d", wantBrokers)
		}
		opts := append([]kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.DialTimeout(3 * time.Second),
			// A health check reports what it sees now; the caller decides
			// whether and when to ask again.
			kgo.RetryTimeout(3 * time.Second),
		}, security...)
		client, err := kgo.NewClient(opts...)
		if err != nil {
			return "", fmt.Errorf("client for %s: %w", strings.Join(brokers, ","), err)
		}
		defer client.Close()

		meta, err := kadm.NewClient(client).BrokerMetadata(ctx)
		if err != nil {
			return "", fmt.Errorf("metadata from %s: %w", strings.Join(brokers, ","), err)
		}
		ids := meta.Brokers.NodeIDs()
		seen := fmt.Sprintf("%d brokers (%s)", len(ids), joinIDs(ids))

		quorum, err := describeKRaftQuorum(ctx, client)
		if err != nil {
			return "", fmt.Errorf("%s; quorum: %w", seen, err)
		}
		detail := fmt.Sprintf("%s, controller %d (quorum epoch %d, voters %s, max lag %d)",
			seen, quorum.leader, quorum.epoch, joinIDs(quorum.voters), quorum.maxVoterLag)
		if len(ids) < wantBrokers && need.By != "" {
			return "", fmt.Errorf("%s needs %d brokers; the cluster has %d (%s), controller %d", need.By, wantBrokers, len(ids), joinIDs(ids), quorum.leader)
		}
		if len(ids) < wantBrokers {
			return "", fmt.Errorf("%s, want at least %d", detail, wantBrokers)
		}
		return detail, nil
	})
}

type kraftQuorum struct {
	leader      int32
	epoch       int32
	voters      []int32
	maxVoterLag int64 // records the furthest voter is behind the high watermark
}

func describeKRaftQuorum(ctx context.Context, client *kgo.Client) (kraftQuorum, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	topic := kmsg.NewDescribeQuorumRequestTopic()
	topic.Topic = kafkaMetadataTopic
	partition := kmsg.NewDescribeQuorumRequestTopicPartition()
	topic.Partitions = append(topic.Partitions, partition)
	req.Topics = append(req.Topics, topic)

	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return kraftQuorum{}, fmt.Errorf("describe quorum: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kraftQuorum{}, fmt.Errorf("describe quorum: %w%s", err, errorMessage(resp.ErrorMessage))
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kraftQuorum{}, fmt.Errorf("describe quorum: want 1 partition of %s in the answer, got %d topics", kafkaMetadataTopic, len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return kraftQuorum{}, fmt.Errorf("describe quorum of %s: %w%s", kafkaMetadataTopic, err, errorMessage(p.ErrorMessage))
	}
	q := kraftQuorum{leader: p.LeaderID, epoch: p.LeaderEpoch}
	for _, v := range p.CurrentVoters {
		q.voters = append(q.voters, v.ReplicaID)
		if lag := p.HighWatermark - v.LogEndOffset; v.LogEndOffset >= 0 && lag > q.maxVoterLag {
			q.maxVoterLag = lag
		}
	}
	slices.Sort(q.voters)
	if q.leader < 0 {
		return q, fmt.Errorf("no active controller (voters %s, epoch %d)", joinIDs(q.voters), q.epoch)
	}
	return q, nil
}

func errorMessage(msg *string) string {
	if msg == nil || *msg == "" {
		return ""
	}
	return ": " + *msg
}

func joinIDs(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ",")
}
