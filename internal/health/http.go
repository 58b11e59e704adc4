package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/flowproof/flowproof/internal/redact"
	"github.com/flowproof/flowproof/internal/refsvcapi"
)

// httpHealthClient is shared so checks reuse connections; each check's
// deadline comes from its context.
var httpHealthClient = &http.Client{Timeout: 10 * time.Second}

// HTTPService checks a service that answers GET <baseURL>/healthz with 200,
// as the reference token service and endpoint do, and returns its result
// followed by one per dependency its answer reports, named
// "<component>-<dependency>" (the reference endpoint's "endpoint-store"): a
// service that reports none, or answers with another body, gets its row
// only. The detail echoes the service's own status when its body is the
// usual JSON.
func HTTPService(ctx context.Context, component, baseURL string) []Result {
	healthURL := strings.TrimRight(baseURL, "/") + refsvcapi.HealthPath
	var answer refsvcapi.Health
	service := run(ctx, component, []string{baseURL}, func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
		if err != nil {
			return "", fmt.Errorf("build request for %s: %w", healthURL, err)
		}
		resp, err := httpHealthClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("GET %s: %w", healthURL, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		if err != nil {
			return "", fmt.Errorf("GET %s: read body: %w", healthURL, err)
		}
		parsed := json.Unmarshal(body, &answer) == nil && answer.Status != ""
		if resp.StatusCode != http.StatusOK {
			if parsed {
				return "", fmt.Errorf("GET %s: status %d: %s", healthURL, resp.StatusCode, answer.Status)
			}
			return "", fmt.Errorf("GET %s: status %d: %s", healthURL, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		if !parsed {
			return "healthy (200)", nil
		}
		detail := answer.Status
		if answer.Service != "" {
			detail = answer.Service + " " + detail
		}
		return fmt.Sprintf("%s, up %s", detail, (time.Duration(answer.UptimeSeconds) * time.Second).String()), nil
	})
	results := []Result{service}
	for _, dep := range answer.Dependencies {
		results = append(results, Result{
			Component:     component + "-" + dep.Name,
			Healthy:       dep.Healthy,
			Detail:        redact.Text(dep.Detail),
			LatencyMillis: dep.LatencyMillis,
		})
	}
	return results
}
