//go:build integration

package workflows_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/workflows"
)

// A run with its own replication factor, min ISR and topic configs
// creates every topic with them (as Kafka describes the topics
// afterwards), and its transactional producers and Flink's exactly-once
// sinks deliver every message: with two replicas and one in sync, and
// with a single replica (the one-broker development cluster's setting).
func TestRunCreatesTopicsWithItsClusterSettings(t *testing.T) {
	e := startWorker(t)
	defer e.shutdown()
	for _, c := range []struct {
		name                      string
		replicas, minISR, wantISR int
	}{
		{"rf2", 2, 1, 1},
		{"rf1", 1, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			id := "e2e-" + c.name + "-" + time.Now().UTC().Format("150405")
			names := activities.RunNamesOf(id)
			admin := kafkaAdmin(t)
			t.Cleanup(func() { _, _ = admin.DeleteTopics(context.Background(), names.Topics()...) })

			run := e.start(t, ctx, id, workflows.PipelineInput{
				Messages: 5_000, Partitions: 4, LogicalQueues: 20, KeepTopics: true,
				ReplicationFactor: c.replicas, MinInsyncReplicas: c.minISR, TopicConfigs: map[string]string{"retention.ms": "7200000"},
			})
			var res workflows.PipelineResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, workflows.StatusSucceeded, res.Status, res.Metrics.FailureMessage)
			require.Equal(t, int64(5_000), res.Metrics.Verified)
			require.Zero(t, res.Metrics.Verification.Duplicates)
			require.Zero(t, res.Metrics.Verification.Missing)

			topics, err := admin.ListTopics(ctx, names.Topics()...)
			require.NoError(t, err)
			require.Len(t, topics, len(names.Topics()))
			for _, topic := range topics.Sorted() {
				require.NoError(t, topic.Err, topic.Topic)
				for _, p := range topic.Partitions.Sorted() {
					require.Len(t, p.Replicas, c.replicas, "replicas of %s/%d", topic.Topic, p.Partition)
				}
			}
			configs, err := admin.DescribeTopicConfigs(ctx, names.Topics()...)
			require.NoError(t, err)
			for _, rc := range configs {
				require.NoError(t, rc.Err, rc.Name)
				got := map[string]string{}
				for _, cfg := range rc.Configs {
					if cfg.Value != nil {
						got[cfg.Key] = *cfg.Value
					}
				}
				t.Logf("%s: replication factor %d, min.insync.replicas %s, retention.ms %s, cleanup.policy %s",
					rc.Name, c.replicas, got["min.insync.replicas"], got["retention.ms"], got["cleanup.policy"])
				require.Equal(t, strconv.Itoa(c.wantISR), got["min.insync.replicas"], rc.Name)
				require.Equal(t, strconv.Itoa(2*3600*1000), got["retention.ms"], rc.Name)
				if rc.Name == names.LedgerTopic {
					require.Equal(t, "compact", got["cleanup.policy"], "the ledger stays compacted")
				}
			}
		})
	}
}

// kafkaAdmin is an admin client of the stack's Kafka, connecting as the
// environment says.
func kafkaAdmin(t *testing.T) *kadm.Client {
	t.Helper()
	security, err := kafkaconn.FromEnv(os.Getenv)
	require.NoError(t, err)
	opts, err := security.ClientOptions()
	require.NoError(t, err)
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(localstack.FromEnv().KafkaBrokers...))...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}
