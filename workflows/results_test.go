package workflows

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPipelineStoresItsWholeResultLast(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	in := smallRun()
	in.ReplicationFactor, in.MinInsyncReplicas = 1, 1
	env.ExecuteWorkflow(PipelineWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	var res PipelineResult
	require.NoError(t, env.GetWorkflowResult(&res))

	require.Len(t, f.stored, 1)
	stored := f.stored[0]
	require.Equal(t, 1, stored.ReplicationFactor, "the run's cluster settings create the topic")
	require.Equal(t, 1, stored.MinInsyncReplicas)
	rec := stored.Record
	require.Equal(t, "unit", rec.RunID)
	require.Equal(t, "Succeeded", rec.Status)
	require.Equal(t, "default-test-run-id", rec.TemporalRunID)
	require.False(t, rec.StartedAt.IsZero() || rec.EndedAt.Before(rec.StartedAt), "started %v, ended %v", rec.StartedAt, rec.EndedAt)
	var storedResult PipelineResult
	require.NoError(t, json.Unmarshal(rec.Result, &storedResult))
	require.Equal(t, res, storedResult, "the whole result, as the workflow returns it")
	withDefaults, err := in.withDefaults("")
	require.NoError(t, err)
	require.Equal(t, InputHash(withDefaults), rec.InputHash)

}

// A store that stays down after the retries leaves the run Succeeded and
// says so in the result.
func TestAResultNotStoredKeepsTheStatusAndSaysWhy(t *testing.T) {
	f := &fakeStack{storeErr: errors.New("brokers unreachable")}
	env := newEnv(t, f)
	res := runToSuccess(t, env, smallRun())
	require.Len(t, f.stored, 5, "tried as often as the retry policy allows")
	require.Contains(t, res.Metrics.ResultNotStored, "brokers unreachable")
}

func TestInputHashIgnoresOnlyWhatDoesNotShapeTheRun(t *testing.T) {
	base, err := PipelineInput{Messages: 10_000}.withDefaults("a")
	require.NoError(t, err)
	hash := InputHash(base)
	require.Len(t, hash, 24)

	same := base
	same.RunID, same.KeepTopics, same.TimeoutSeconds = "other-run", true, 600
	same.Topics.Raw = "elsewhere"
	same.Thresholds.MaxDurationSeconds = 60
	require.Equal(t, hash, InputHash(same), "run id, topic names, keep_topics, timeout and thresholds do not change what is measured")

	for name, change := range map[string]func(*PipelineInput){
		"messages":      func(in *PipelineInput) { in.Messages++ },
		"rate":          func(in *PipelineInput) { in.RatePerSecond /= 2 },
		"partitions":    func(in *PipelineInput) { in.Partitions++ },
		"replication":   func(in *PipelineInput) { in.ReplicationFactor = 1 },
		"topic configs": func(in *PipelineInput) { in.TopicConfigs = map[string]string{"compression.type": "zstd"} },
		"batch size":    func(in *PipelineInput) { in.BatchSize++ },
	} {
		other := base
		change(&other)
		require.NotEqual(t, hash, InputHash(other), name)
	}
}
