//go:build integration

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// On a namespace without flowproof's search attributes the worker refuses
// to start and names them; after `starter setup` it starts.
func TestWorkerNeedsSearchAttributesThatSetupRegisters(t *testing.T) {
	h := newStopHarness(t)
	starterBin := filepath.Join(h.dir, "starter")
	out, err := exec.Command("go", "build", "-o", starterBin, "../starter").CombinedOutput()
	require.NoError(t, err, "build starter: %s", out)

	// A namespace of its own: the dev server registers the attributes only
	// on the namespaces it starts with.
	ns := fmt.Sprintf("worker-setup-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = h.client.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = h.client.OperatorService().DeleteNamespace(context.Background(), &operatorservice.DeleteNamespaceRequest{Namespace: ns})
	})
	require.Eventually(t, func() bool {
		_, err := h.client.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		return err == nil
	}, 30*time.Second, 250*time.Millisecond, "namespace %s not served", ns)

	// The worker takes its namespace from Temporal's own variable, as a
	// deployment would set it.
	t.Setenv("TEMPORAL_NAMESPACE", ns)
	// A worker that does not refuse would run until killed.
	refuseCtx, cancelRefuse := context.WithTimeout(ctx, 45*time.Second)
	defer cancelRefuse()
	refused, err := exec.CommandContext(refuseCtx, h.bin, "-task-queue", h.taskQueue, "-token-key-file", h.keyFile,
		"-metrics-addr", "", "-log-format", "console").CombinedOutput()
	t.Logf("worker on the bare namespace (%v):\n%s", err, tail(refused, 2<<10))
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, string(refused), "namespace "+ns+" lacks flowproof's search attributes FlowproofStage (Keyword), FlowproofStatus (Keyword), FlowproofMessageCount (Int), FlowproofInputHash (Keyword)")
	require.Contains(t, string(refused), "run 'starter setup'")

	setup := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, starterBin, append([]string{"--namespace", ns, "--task-queue", h.taskQueue, "setup"}, args...)...).CombinedOutput()
		return string(out), err
	}
	setupOut, err := setup("--check-pollers=false")
	t.Logf("starter setup:\n%s", setupOut)
	require.NoError(t, err)

	// Now it starts, and setup finds it polling.
	w := h.startWorker(t, "worker", 10*time.Second)
	require.Eventually(t, func() bool {
		setupOut, err = setup()
		return err == nil
	}, 60*time.Second, time.Second, "setup never saw the worker (log %s)", w.logPath)
	t.Logf("starter setup with the worker running:\n%s", setupOut)
	require.Contains(t, setupOut, "namespace "+ns+" is ready for flowproof")
	w.stop(t)
}
