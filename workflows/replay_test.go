package workflows

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from a real
// 50,000-message run on the local stack (`temporal workflow show -o json`).
// A change that makes the workflows take a different path for the same
// events — a non-deterministic change — fails here instead of in running
// workflows. When a change is meant to alter the path, guard it with
// workflow.GetVersion and record new histories next to the old ones.
func TestReplayRecordedHistories(t *testing.T) {
	// The original workflow ids matter: children's ids derive from the
	// parent's.
	recorded := map[string]string{
		"history-50k-pipeline.json": "lead-50k-1",
		"history-50k-produce.json":  "lead-50k-1/produce",
		"history-50k-deliver.json":  "lead-50k-1/deliver",
		// Deliveries of 50,000-message runs with planned segments, sent
		// one after another, and with overlapped segments (the next
		// planned while one is sent).
		"history-50k-deliver-planned.json":    "e2e-50k-132006/deliver",
		"history-50k-deliver-overlapped.json": "e2e-50k-193803/deliver",
		// A kill-broker drill of 100,000 messages.
		"history-drill-kill-broker.json": "drill-kill-broker-20261201T161112Z",
		// A 20,000-message run that broke its thresholds and posted its
		// failure notice (TestTooTightThresholdsFailTheRun).
		"history-thresholds-notify.json": "e2e-thresholds-025120",
		// Production of a 200,000-message run whose lag samples carry the
		// oldest records' ages, held once by the deliver group's age
		// (--lag-threshold-seconds 1 --checkpoint-interval-seconds 2).
		"history-200k-produce-age-hold.json": "age-200k-1/produce",
		// Production of a default 1,000,000-message run on a warm stack,
		// held three times; no group's rate counted, and each hold ended
		// by what the group had left at its drain rate, not by its age
		// (held-at-drain-rate).
		"history-1m-produce-held-rate.json": "heldrate-1m-1/produce",
	}
	for file, workflowID := range recorded {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", file))
			require.NoError(t, err)
			defer func() { _ = f.Close() }()
			history, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			require.NoError(t, err)
			replayer := worker.NewWorkflowReplayer()
			RegisterWorkflows(replayer)
			RegisterDrill(replayer)
			require.NoError(t, replayer.ReplayWorkflowHistoryWithOptions(nil, history, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: workflowID},
			}))
		})
	}
}
