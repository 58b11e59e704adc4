package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

// Temporal dials the frontend with opts (address, namespace, TLS, API key:
// the caller's own client configuration) and describes the namespace: only
// a server whose persistence works and that knows the namespace answers
// that, whereas an open port or the gRPC health service would pass earlier.
func Temporal(ctx context.Context, opts client.Options) Result {
	hostPort, namespace := opts.HostPort, opts.Namespace
	return run(ctx, "temporal", []string{hostPort}, func(ctx context.Context) (string, error) {
		if namespace == "" {
			return "", fmt.Errorf("temporal check: namespace is empty")
		}
		// Checks run every second while the stack starts; the SDK's default
		// logger would print a line for each dial.
		opts.Logger = log.NewStructuredLogger(slog.New(slog.DiscardHandler))
		opts.MetricsHandler = nil
		c, err := client.DialContext(ctx, opts)
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

// TemporalUI wants the Temporal Web UI at uiURL to serve its front page and
// its settings API. The front page alone would not do: the UI is a single-page
// app whose server answers 200 with index.html for any path, whereas the
// settings carry the UI's version.
func TemporalUI(ctx context.Context, uiURL string) Result {
	return run(ctx, "temporal-ui", []string{uiURL}, func(ctx context.Context) (string, error) {
		base, err := url.Parse(uiURL)
		if err != nil || base.Scheme == "" || base.Host == "" {
			return "", fmt.Errorf("temporal ui url %q is not an absolute http(s) URL", uiURL)
		}
		httpClient := http.Client{Timeout: 10 * time.Second}
		if _, err := getOK(ctx, &httpClient, base.String()); err != nil {
			return "", fmt.Errorf("temporal ui front page: %w", err)
		}
		settingsURL := base.JoinPath("api", "v1", "settings").String()
		body, err := getOK(ctx, &httpClient, settingsURL)
		if err != nil {
			return "", fmt.Errorf("temporal ui settings: %w", err)
		}
		var settings struct {
			Version string `json:"Version"`
		}
		if err := json.Unmarshal(body, &settings); err != nil || settings.Version == "" {
			return "", fmt.Errorf("temporal ui settings at %s carry no version; not a Temporal UI?", settingsURL)
		}
		return fmt.Sprintf("ui %s at %s", settings.Version, uiURL), nil
	})
}

// getOK fetches url and returns its body if the status is 200.
func getOK(ctx context.Context, httpClient *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	// The front page and the settings are a few KiB; the cap only guards
	// against a wrong URL that streams.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: status %s, want 200 OK", url, resp.Status)
	}
	return body, nil
}
