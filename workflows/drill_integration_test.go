//go:build integration

package workflows_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/workflows"
)

// drillsInTest are the drills `make test` runs, one fault on each side of
// the verdict: a Kafka broker lost mid-run, and a SIGKILLed worker, which
// must be invisible in the result. `make drills` runs them all (the
// TaskManager kill and the graceful worker stop among them); each drill is a
// full pipeline run, which make test's time budget cannot afford for all.
var drillsInTest = []string{drillapi.KillBroker, drillapi.KillWorker}

// drillMessages keeps each drill near a minute and a half on two cores,
// long enough to measure the rate before and after the fault.
const drillMessages = 100_000

// TestDrills runs drills on the real local stack through the stack's own
// worker and drill worker (test.sh starts them: stackctl up --with-worker
// --with-drills), as `make drills` does: each must pass, which means its run
// Succeeded with every hop exact after the fault was injected and lifted.
func TestDrills(t *testing.T) {
	status := exec.Command("../bin/stackctl", "status", "--only", "worker,drill-worker")
	out, err := status.CombinedOutput()
	require.NoError(t, err, "the stack's worker and drill worker must be up (bin/stackctl up --with-worker --with-drills):\n%s", out)

	addrs := localstack.FromEnv()
	c, err := client.Dial(client.Options{HostPort: addrs.TemporalAddress, Namespace: addrs.TemporalNamespace, Logger: quietLogger()})
	require.NoError(t, err)
	defer c.Close()

	for _, name := range drillsInTest {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			id := fmt.Sprintf("it-drill-%s-%d", name, time.Now().Unix())
			in := workflows.DrillInput{Drill: name, Pipeline: workflows.PipelineInput{Messages: drillMessages}}
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: id, TaskQueue: drillapi.TaskQueue, WorkflowExecutionTimeout: in.ExecutionTimeout(),
				StaticSummary: "flowproof drill test: " + name,
			}, workflows.DrillWorkflow, in)
			require.NoError(t, err)
			t.Logf("started %s: %s/namespaces/default/workflows/%s/%s/history", id, addrs.TemporalUIURL, id, run.GetRunID())

			var res workflows.DrillResult
			err = run.Get(ctx, &res)
			if ended, ok := workflows.DrillResultOfEnding(err); ok {
				res, err = ended, nil
			}
			require.NoError(t, err, "drill %s ended without a result", name)
			for _, f := range res.Metrics.Faults {
				t.Logf("%s: target %s, injected after %.1f s, baseline %.0f/s, recovered %v after %.1f s; %s %s",
					f.Fault, f.Target, f.InjectedAfterSeconds, f.BaselinePerSecond, f.Recovered, f.RecoverySeconds, f.Detail, strings.Join(f.Problems, "; "))
			}
			require.Equal(t, workflows.DrillPassed, res.Status, res.Metrics.Verdict)
			require.Len(t, res.Metrics.Faults, 1)
			fault := res.Metrics.Faults[0]
			require.True(t, fault.Reached, "the fault was never injected")
			require.NotEmpty(t, fault.Target)
			require.False(t, fault.LiftedAt.Before(fault.InjectedAt.Add(time.Duration(fault.HoldSeconds)*time.Second)), "lifted before the hold was over")
			require.Equal(t, workflows.StatusSucceeded, res.Metrics.Run.Status)
			for _, hop := range res.Metrics.Run.Metrics.Hops {
				require.True(t, hop.Exact(drillMessages), "hop %s: %s", hop.Hop, hop.Verdict(drillMessages))
			}
		})
	}
}
