package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/flowproof/flowproof/internal/refsvcapi"
)

// httpHealthClient is shared so checks reuse connections; each check's
// deadline comes from its context.
var httpHealthClient = &http.Client{Timeout: 10 * time.Second}

// HTTPService checks a service that answers GET <baseURL>/healthz with 200,
// as the reference token service and endpoint do. The detail echoes the
// service's own status when its body is the usual JSON.
func HTTPService(ctx context.Context, component, baseURL string) Result {
	healthURL := strings.TrimRight(baseURL, "/") + refsvcapi.HealthPath
	return run(ctx, component, []string{baseURL}, func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
		if err != nil {
			return "", fmt.Errorf("build request for %s: %w", healthURL, err)
		}
		resp, err := httpHealthClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("GET %s: %w", healthURL, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil {
			return "", fmt.Errorf("GET %s: read body: %w", healthURL, err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: status %d: %s", healthURL, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		var status refsvcapi.Health
		if json.Unmarshal(body, &status) != nil || status.Status == "" {
			return "healthy (200)", nil
		}
		detail := status.Status
		if status.Service != "" {
			detail = status.Service + " " + detail
		}
		return fmt.Sprintf("%s, up %s", detail, (time.Duration(status.UptimeSeconds) * time.Second).String()), nil
	})
}
