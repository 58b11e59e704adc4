package kafkaadmin

import (
	"context"
	"strconv"

	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// resultsMaxMessageBytes lets one run's result (with its series and
// latency histogram) exceed the brokers' 1 MiB default.
const resultsMaxMessageBytes = 8 << 20

// EnsureResultsTopic creates topic, the store of every run's result, when
// it does not exist yet: one partition (results are few and read whole),
// compacted so that each run keeps its newest result for good, with the
// run's replication factor and min.insync.replicas. An existing topic is
// left as it is.
func EnsureResultsTopic(ctx context.Context, kafka *kafkaeos.Conn, topic string, replicationFactor, minInsyncReplicas int) error {
	configs := map[string]*string{
		"cleanup.policy":    ptr("compact"),
		"max.message.bytes": ptr(strconv.Itoa(resultsMaxMessageBytes)),
	}
	if minInsyncReplicas > 0 {
		configs["min.insync.replicas"] = ptr(strconv.Itoa(minInsyncReplicas))
	}
	_, err := createTopic(ctx, kafka, topicSpec{name: topic, partitions: 1, configs: configs}, int16(replicationFactor))
	return err
}
