package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// flinkHTTPClient bounds each request even when the caller's context has no
// deadline; it is shared so that checks run every second reuse connections.
var flinkHTTPClient = &http.Client{Timeout: 10 * time.Second}

// flinkOverview is the part of the JobManager's GET /overview we read.
type flinkOverview struct {
	FlinkVersion   string `json:"flink-version"`
	TaskManagers   int    `json:"taskmanagers"`
	SlotsTotal     int    `json:"slots-total"`
	SlotsAvailable int    `json:"slots-available"`
	JobsRunning    int    `json:"jobs-running"`
}

// flinkTaskManagers is the part of GET /taskmanagers we read.
type flinkTaskManagers struct {
	TaskManagers []struct {
		ID          string `json:"id"`
		SlotsNumber int    `json:"slotsNumber"`
		FreeSlots   int    `json:"freeSlots"`
	} `json:"taskmanagers"`
}

// FlinkJobManager asks the JobManager's REST API at baseURL for its overview
// and its registered TaskManagers. It is healthy when at least
// wantTaskManagers TaskManagers are registered and some slot is free, i.e.
// when a new job could be scheduled, e.g.
// "flink 2.2.0, 3 TaskManagers, 12/12 slots free, 0 jobs running".
//
// The TaskManager list is read as well as the overview because the overview
// counts TaskManagers that the ResourceManager knows, and the list shows
// which ones they are when too few have registered.
func FlinkJobManager(ctx context.Context, baseURL string, wantTaskManagers int) Result {
	return run(ctx, "flink-jobmanager", []string{baseURL}, func(ctx context.Context) (string, error) {
		if wantTaskManagers < 1 {
			return "", fmt.Errorf("wantTaskManagers must be at least 1, got %d", wantTaskManagers)
		}
		var overview flinkOverview
		if err := flinkGetJSON(ctx, baseURL, "/overview", &overview); err != nil {
			return "", err
		}
		var tms flinkTaskManagers
		if err := flinkGetJSON(ctx, baseURL, "/taskmanagers", &tms); err != nil {
			return "", err
		}
		free, total := 0, 0
		ids := make([]string, 0, len(tms.TaskManagers))
		for _, tm := range tms.TaskManagers {
			free += tm.FreeSlots
			total += tm.SlotsNumber
			ids = append(ids, tm.ID)
		}
		slices.Sort(ids)
		seen := fmt.Sprintf("flink %s, %d TaskManagers, %d/%d slots free, %d jobs running",
			overview.FlinkVersion, len(tms.TaskManagers), free, total, overview.JobsRunning)
		if len(tms.TaskManagers) < wantTaskManagers {
			return "", fmt.Errorf("%s: want at least %d TaskManagers, registered: [%s]", seen, wantTaskManagers, strings.Join(ids, ", "))
		}
		if free == 0 {
			return "", fmt.Errorf("%s: no free slot for a new job", seen)
		}
		return seen, nil
	})
}

// SQLGateway asks the Flink SQL Gateway's REST API at baseURL which API
// versions it serves and then, on the newest, for its product name and
// version, e.g. "Apache Flink 2.2.0 SQL Gateway, REST API v1-v4".
func SQLGateway(ctx context.Context, baseURL string) Result {
	return run(ctx, "sql-gateway", []string{baseURL}, func(ctx context.Context) (string, error) {
		var versions struct {
			Versions []string `json:"versions"`
		}
		if err := flinkGetJSON(ctx, baseURL, "/api_versions", &versions); err != nil {
			return "", err
		}
		if len(versions.Versions) == 0 {
			return "", fmt.Errorf("sql gateway at %s lists no REST API versions", baseURL)
		}
		// The gateway lists its versions oldest first.
		newest := versions.Versions[len(versions.Versions)-1]
		var info struct {
			ProductName string `json:"productName"`
			Version     string `json:"version"`
		}
		if err := flinkGetJSON(ctx, baseURL, "/"+url.PathEscape(strings.ToLower(newest))+"/info", &info); err != nil {
			return "", err
		}
		if info.ProductName == "" || info.Version == "" {
			return "", fmt.Errorf("sql gateway at %s: info has no product name or version", baseURL)
		}
		return fmt.Sprintf("%s %s SQL Gateway, REST API %s-%s",
			info.ProductName, info.Version, strings.ToLower(versions.Versions[0]), strings.ToLower(newest)), nil
	})
}

// flinkGetJSON fetches baseURL+path and decodes a 200 answer into out.
func flinkGetJSON(ctx context.Context, baseURL, path string, out any) error {
	if baseURL == "" {
		return errors.New("base URL is empty; want e.g. http://127.0.0.1:8081")
	}
	endpoint := strings.TrimRight(baseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := flinkHTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %s: %s", endpoint, resp.Status, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode %s: %w", endpoint, err)
	}
	return nil
}
