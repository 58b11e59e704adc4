//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/wiring"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/searchattr"
	"github.com/flowproof/flowproof/internal/temporalclient"
	"github.com/flowproof/flowproof/workflows"
)

// historyWorker runs flowproof's worker in this process on a task queue of
// its own, against the real local stack.
func historyWorker(t *testing.T, c client.Client) string {
	t.Helper()
	addrs := localstack.FromEnv()
	security, err := kafkaconn.FromEnv(os.Getenv)
	require.NoError(t, err)
	kafkaOptions, err := security.ClientOptions()
	require.NoError(t, err)
	flinkKafka, err := flink.KafkaFromEnv(os.Getenv, security, addrs.KafkaBrokers)
	require.NoError(t, err)
	clientOpts, err := temporalclient.Options(temporalclient.Overrides{}, temporalclient.Logger(zap.NewNop()))
	require.NoError(t, err)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	acts, err := wiring.New(wiring.Config{
		KafkaBrokers: addrs.KafkaBrokers, KafkaOptions: kafkaOptions, KafkaSecurity: security, FlinkKafka: flinkKafka,
		FlinkURL: addrs.FlinkURL, SQLGatewayURL: addrs.SQLGatewayURL, Temporal: clientOpts,
		EndpointURL: addrs.EndpointURL, ReferenceEndpointURL: addrs.EndpointURL, TokenURL: addrs.TokenURL,
		TokenClientID: "flowproof", TokenClientSecret: localstack.TokenClientSecret, TokenKey: key,
	})
	require.NoError(t, err)
	taskQueue := uniqueName("flowproof-it-history")
	w := worker.New(c, taskQueue, worker.Options{})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(func() {
		w.Stop()
		acts.Close()
	})
	return taskQueue
}

// TestHistoryAndCompareAcrossRealRuns runs three small pipelines of the
// same input on the real stack, the third slowed down by the endpoint
// (every batch of that run answered 8 s late, as a slow night's endpoint
// would): history lists all three from visibility and from the results
// store alone; compare passes the second against the first, and says the
// third regressed against the median of the first two, naming the
// figures, with exit code 1 and a JUnit file that fails those figures.
func TestHistoryAndCompareAcrossRealRuns(t *testing.T) {
	c := dialForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// A namespace from before FlowproofInputHash lacks it; setup adds it.
	_, err := searchattr.Register(ctx, c.OperatorService(), localstack.TemporalNamespace)
	require.NoError(t, err)
	taskQueue := historyWorker(t, c)

	endpoint := endpointapi.AdminClient{BaseURL: localstack.FromEnv().EndpointURL}
	endpoint.Token, err = endpointapi.LoadAdminToken(localstack.StackDir())
	require.NoError(t, err)

	input := workflows.PipelineInput{Messages: 10_000, Partitions: 12, LogicalQueues: 100}
	stamp := time.Now().UTC().Format("150405")
	ids := []string{"history-" + stamp + "-a", "history-" + stamp + "-b", "history-" + stamp + "-slow"}
	for i, id := range ids {
		in := input
		in.RunID = id
		if i == 2 {
			_, err := endpoint.SetFaults(ctx, endpointapi.Faults{LatencyMillis: 8000, RunIDs: []string{id}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = endpoint.Reset(context.Background(), id) })
		}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, workflows.PipelineWorkflow, in)
		require.NoError(t, err)
		var result workflows.PipelineResult
		require.NoError(t, run.Get(ctx, &result), id)
		require.Equal(t, workflows.StatusSucceeded, result.Status, id)
		require.Empty(t, result.Metrics.ResultNotStored, id)
		t.Logf("%s: %d ms, %.0f msg/s end to end, p99 %.0f ms", id, result.Metrics.TotalMillis, result.Metrics.EndToEndPerSecond, result.Metrics.Latency.P99)
	}

	// history, from visibility (which trails the runs' ends by a moment).
	var rows []historyRow
	eventually(t, 30*time.Second, "history lists the three runs", func() error {
		code, out, errOut := starter(t, "--task-queue", taskQueue, "history", "--json")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		rows = nil
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return err
		}
		if len(rows) != 3 || rows[0].InputHash == "" {
			return fmt.Errorf("history: %s", out)
		}
		return nil
	})
	for i, row := range rows { // newest first
		require.Equal(t, ids[2-i], row.WorkflowID)
		require.Equal(t, "Succeeded", row.Status)
		require.Equal(t, sourceVisibility, row.Source)
		require.NotNil(t, row.Verified, "a succeeded run's figures are all measured")
		require.NotNil(t, row.EndToEndPerSecond)
		require.Equal(t, int64(10_000), *row.Verified)
		require.Positive(t, *row.EndToEndPerSecond)
		require.Equal(t, rows[0].InputHash, row.InputHash, "one input")
	}
	code, table, _ := starter(t, "--task-queue", taskQueue, "history")
	require.Equal(t, 0, code)
	t.Logf("starter history:\n%s", table)
	require.Contains(t, table, "E2E MSG/S")
	require.Contains(t, table, ids[2])

	// The same runs from the results store alone, as after retention.
	code, out, errOut := starter(t, "--task-queue", taskQueue, "history", "--visibility=false", "--json")
	require.Equal(t, 0, code, errOut)
	var stored []historyRow
	require.NoError(t, json.Unmarshal([]byte(out), &stored))
	require.Len(t, stored, 3)
	for i, row := range stored {
		require.Equal(t, sourceStore, row.Source)
		require.Equal(t, rows[i].WorkflowID, row.WorkflowID)
		require.NotNil(t, row.EndToEndPerSecond)
		require.Equal(t, *rows[i].EndToEndPerSecond, *row.EndToEndPerSecond, "the whole result is stored")
	}

	// compare: the first has no baseline, the second passes against the
	// first, the slow one regresses against both. Two runs' noise on a
	// 10,000-message run on a shared machine is large (seen: duration
	// -22% and +65%, throughput -25% and -41%, p99 +40% and +68%), so the
	// tolerances are wide; the slow run's delivery waits 200 s more, about
	// four times a normal run's duration.
	tolerance := "--tolerance=duration=150%,throughput=75%,all=150%"
	code, out, _ = starter(t, "--task-queue", taskQueue, "compare", ids[0], tolerance)
	t.Logf("compare %s (exit %d):\n%s", ids[0], code, out)
	require.Equal(t, 0, code)
	require.Contains(t, out, "baseline: none")

	code, out, _ = starter(t, "--task-queue", taskQueue, "compare", ids[1], tolerance)
	t.Logf("compare %s (exit %d):\n%s", ids[1], code, out)
	require.Equal(t, 0, code)
	require.Contains(t, out, "baseline: median of 1 run(s): ["+ids[0]+"]")
	require.Contains(t, out, "verdict: PASS")

	junit := filepath.Join(t.TempDir(), "compare.xml")
	code, out, _ = starter(t, "--task-queue", taskQueue, "compare", ids[2], tolerance, "--junit", junit)
	t.Logf("compare %s (exit %d):\n%s", ids[2], code, out)
	require.Equal(t, 1, code, "a regression fails the exit code")
	require.Contains(t, out, "baseline: median of 2 run(s): ["+ids[1]+" "+ids[0]+"]")
	require.Regexp(t, `end-to-end throughput .* REGRESSED`, out)
	require.Regexp(t, `run duration .* REGRESSED`, out)
	require.Contains(t, out, "verdict: FAIL: regressed: ")

	raw, err := os.ReadFile(junit)
	require.NoError(t, err)
	var doc struct {
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
		} `xml:"testsuite>testcase"`
	}
	require.NoError(t, xml.Unmarshal(raw, &doc), string(raw))
	var failed []string
	for _, tc := range doc.Cases {
		if tc.Failure != nil {
			failed = append(failed, tc.Name)
		}
	}
	require.Contains(t, failed, "figure throughput")
	require.Contains(t, failed, "figure duration")
	require.NotContains(t, failed, "status")
	require.Equal(t, len(failed), doc.Failures)

	// compare works from the store alone.
	code, out, _ = starter(t, "--task-queue", taskQueue, "compare", ids[2], tolerance, "--visibility=false", "--json")
	require.Equal(t, 1, code, out)
	var fromStore struct {
		BaselineRuns []string `json:"baseline_runs"`
		Regressed    []string `json:"regressed"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &fromStore))
	require.Equal(t, []string{ids[1], ids[0]}, fromStore.BaselineRuns)
	require.Contains(t, fromStore.Regressed, "throughput")
}
