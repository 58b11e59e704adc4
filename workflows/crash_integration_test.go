//go:build integration

package workflows_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/workflows"
)

// TestWorkerCrashMidRun kills the worker process (SIGKILL, no goodbye) while
// chunks are being produced and segments delivered, starts another one, and
// requires the run to end verified with every message exactly once: the
// chunk transactions, the ledger, the segment transactions and the offsets
// kept in the workflow must make a crash invisible in the result.
func TestWorkerCrashMidRun(t *testing.T) {
	dir := t.TempDir()
	workerBin := filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-o", workerBin, "../worker")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build worker: %s", out)

	// Both workers must unseal the tokens the other one sealed.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(dir, "token.key")
	require.NoError(t, os.WriteFile(keyFile, key, 0o600))
	taskQueue := fmt.Sprintf("flowproof-crash-%d", time.Now().UnixNano())
	startWorkerProcess := func(name string) *exec.Cmd {
		cmd := exec.Command(workerBin, "--task-queue", taskQueue, "--token-key-file", keyFile, "--metrics-addr", "", "--log-format", "console",
			"--reference-endpoint-url", localstack.FromEnv().EndpointURL)
		logFile, err := os.Create(filepath.Join(dir, name+".log"))
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
		return cmd
	}

	addrs := localstack.FromEnv()
	c, err := client.Dial(client.Options{HostPort: addrs.TemporalAddress, Namespace: addrs.TemporalNamespace, Logger: quietLogger()})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	first := startWorkerProcess("worker-1")
	id := "e2e-crash-" + time.Now().UTC().Format("150405")
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue},
		"PipelineWorkflow", workflows.PipelineInput{Messages: 100_000, Partitions: 12, LogicalQueues: 100})
	require.NoError(t, err)

	var progress workflows.Progress
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, id, run.GetRunID(), workflows.ProgressQuery)
		if err != nil || v.Get(&progress) != nil {
			return false
		}
		return progress.Produced >= 30_000 && progress.Delivered > 0
	}, 10*time.Minute, 500*time.Millisecond, "the run should be producing and delivering")
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	t.Logf("killed worker 1 at produced %d, delivered %d", progress.Produced, progress.Delivered)

	startWorkerProcess("worker-2")
	var res workflows.PipelineResult
	require.NoError(t, run.Get(ctx, &res))
	m := res.Metrics
	t.Logf("after the crash: status %s, produced %d, delivered %d, verified %d, duplicates %d, missing %d, chunks resumed %d, total %d ms",
		res.Status, m.Produced, m.Delivered, m.Verified, m.Verification.Duplicates, m.Verification.Missing, m.ChunksResumed, m.TotalMillis)
	require.Equal(t, workflows.StatusSucceeded, res.Status, m.FailureMessage)
	require.Equal(t, int64(100_000), m.Verified)
	require.Equal(t, int64(0), m.Verification.Duplicates)
	require.Equal(t, int64(0), m.Verification.Missing)
}
