//go:build integration

package results

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// The store on the real brokers: no topic reads as no results; Put creates
// the topic compacted and one record per run id wins, the newest.
func TestStoreKeepsTheNewestResultPerRun(t *testing.T) {
	kafka := activitytest.EnvConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	topic := fmt.Sprintf("flowproof.it-results-%d", time.Now().UnixNano())
	defer func() { _, _ = kafka.Admin.DeleteTopic(context.Background(), topic) }()
	store := NewStore(kafka, topic)
	none, err := store.All(ctx)
	require.NoError(t, err, "a topic nobody created yet")
	require.Empty(t, none)

	started := time.Now().UTC().Truncate(time.Millisecond)
	put := func(runID, status string, at time.Time) {
		t.Helper()
		require.NoError(t, store.Put(ctx, Record{
			RunID: runID, WorkflowID: runID, Status: status, StartedAt: at, InputHash: "h",
			Result: json.RawMessage(`{"Status":"` + status + `"}`),
		}, 3, 2))
	}
	put("b", "Failed", started.Add(time.Minute))
	put("a", "Succeeded", started)
	put("b", "Succeeded", started.Add(time.Minute))

	all, err := store.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, []string{"a", "b"}, []string{all[0].RunID, all[1].RunID}, "oldest first")
	require.Equal(t, "Succeeded", all[1].Status, "the newest record of run b")
	require.JSONEq(t, `{"Status":"Succeeded"}`, string(all[1].Result))
	require.True(t, all[0].StartedAt.Equal(started))

	configs, err := kafka.Admin.DescribeTopicConfigs(ctx, topic)
	require.NoError(t, err)
	rc, err := configs.On(topic, nil)
	require.NoError(t, err)
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	require.Equal(t, "compact", got["cleanup.policy"])
	require.Equal(t, "2", got["min.insync.replicas"])
	details, err := kafka.Admin.ListTopics(ctx, topic)
	require.NoError(t, err)
	require.Len(t, details[topic].Partitions, 1)
	require.Len(t, details[topic].Partitions[0].Replicas, 3)
}
