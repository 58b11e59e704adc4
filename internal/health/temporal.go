package health

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

// Temporal dials the frontend at hostPort and describes namespace: only a
// server whose persistence works and that knows the namespace answers that,
// whereas an open port or the gRPC health service would pass earlier.
func Temporal(ctx context.Context, hostPort, namespace string) Result {
	return run(ctx, "temporal", []string{hostPort}, func(ctx context.Context) (string, error) {
		if namespace == "" {
			return "", fmt.Errorf("temporal check: namespace is empty")
		}
		c, err := client.DialContext(ctx, client.Options{
			HostPort:  hostPort,
			Namespace: namespace,
			// Checks run every second while the stack starts; the SDK's default
			// logger would print a line for each dial.
			Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		})
		if err != nil {
			return "", fmt.Errorf("dial temporal at %s: %w", hostPort, err)
		}
		defer c.Close()
		described, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
		if err != nil {
			return "", fmt.Errorf("describe namespace %q at %s: %w", namespace, hostPort, err)
		}
		state := described.GetNamespaceInfo().GetState().String()
		// The version only enriches the detail; a server that cannot report it
		// is still serving the namespace.
		version := "unknown"
		if info, err := c.WorkflowService().GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); err == nil && info.GetServerVersion() != "" {
			version = info.GetServerVersion()
		}
		retention := described.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration()
		return fmt.Sprintf("namespace %s %s (retention %s), server %s", namespace, state, retention, version), nil
	})
}

// TemporalUI fetches the Temporal Web UI's front page at uiURL and wants 200.
func TemporalUI(ctx context.Context, uiURL string) Result {
	return run(ctx, "temporal-ui", []string{uiURL}, func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, uiURL, nil)
		if err != nil {
			return "", fmt.Errorf("temporal ui url %q: %w", uiURL, err)
		}
		client := http.Client{Timeout: 10 * time.Second}
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("get temporal ui %s: %w", uiURL, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("get temporal ui %s: status %s, want 200", uiURL, resp.Status)
		}
		return fmt.Sprintf("ui %s answers 200", uiURL), nil
	})
}
