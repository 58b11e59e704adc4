package endpointapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// RunStatsPath is GET: the endpoint's own count of what it accepted for one
// run, read-only and without secrets. The run is the one whose batch ids
// are "<run>-p<partition>-o<first offset>-<last offset>" (see
// docs/message-contract.md).
const RunStatsPath = "/runs/{run_id}/stats"

// RunStatsURL is the stats URL of runID at the endpoint at base.
func RunStatsURL(base, runID string) string {
	return strings.TrimSuffix(base, "/") + strings.Replace(RunStatsPath, "{run_id}", url.PathEscape(runID), 1)
}

// RunStats is the answer of RunStatsPath.
type RunStats struct {
	RunID string `json:"run_id"`
	// Batches are the distinct batch ids of the run the endpoint accepted.
	Batches int64 `json:"batches"`
	// AcceptedMessages counts every message accepted, a message accepted in
	// two batches twice; replays of a batch id add nothing.
	AcceptedMessages int64 `json:"accepted_messages"`
	UniqueSeqs       int64 `json:"unique_seqs"`
	// DuplicatedSeqs counts the seqs accepted more than once.
	DuplicatedSeqs int64 `json:"duplicated_seqs"`
	// Complete is false when the figures leave some of the run's accepted
	// seqs uncounted (the reference endpoint counts seqs below 2^25). The
	// endpoint keeps a run's figures until WindowSeconds after the run's
	// last accepted batch, across its own restarts.
	Complete      bool  `json:"complete"`
	WindowSeconds int64 `json:"window_seconds"`
}

// ErrNoStatsRoute means the endpoint is not one with per-run counts.
var ErrNoStatsRoute = errors.New("the endpoint has no per-run stats route")

// FetchRunStats GETs statsURL (RunStatsURL). Its errors never repeat the
// URL, which may hold credentials.
func FetchRunStats(ctx context.Context, client *http.Client, statsURL string) (RunStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statsURL, http.NoBody)
	if err != nil {
		return RunStats{}, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return RunStats{}, fmt.Errorf("GET stats: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end or given up; nothing to report
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return RunStats{}, ErrNoStatsRoute
	case resp.StatusCode != http.StatusOK:
		return RunStats{}, fmt.Errorf("GET stats: HTTP %d", resp.StatusCode)
	}
	var stats RunStats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&stats); err != nil {
		return RunStats{}, fmt.Errorf("GET stats: answer is not run stats: %w", err)
	}
	return stats, nil
}
