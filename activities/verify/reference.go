package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/flowproof/flowproof/internal/endpointapi"
)

// referenceTimeout bounds the stats request; the endpoint counts a
// million messages in about a second.
const referenceTimeout = 30 * time.Second

// referenceEndpoint asks the reference endpoint for its own count of a run.
type referenceEndpoint struct {
	base   *url.URL
	client *http.Client
}

func newReferenceEndpoint(endpointURL string) (*referenceEndpoint, error) {
	base, err := url.Parse(endpointURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("reference endpoint URL %q is not an http(s) URL", redactedURL(endpointURL))
	}
	return &referenceEndpoint{base: base, client: &http.Client{Timeout: referenceTimeout}}, nil
}

// ownCount is the endpoint's count of runID as a hop. An endpoint that
// cannot answer (no stats route, unreachable) gives a skipped hop that says
// so: the cross-check is extra evidence, not a condition of the verdict.
func (r *referenceEndpoint) ownCount(ctx context.Context, runID string, expected int64) HopCount {
	statsURL := endpointapi.RunStatsURL(r.base.String(), runID)
	hop := HopCount{Hop: HopEndpointOwnCount, Source: redactedURL(statsURL)}
	stats, err := r.stats(ctx, statsURL)
	if err != nil {
		hop.Skipped, hop.Note = true, "not available: "+err.Error()
		return hop
	}
	hop.Records, hop.Unique = stats.AcceptedMessages, stats.UniqueSeqs
	hop.Missing = max(0, expected-stats.UniqueSeqs)
	hop.Duplicated = stats.AcceptedMessages - stats.UniqueSeqs
	hop.Note = fmt.Sprintf("%d batches, %d seqs accepted more than once", stats.Batches, stats.DuplicatedSeqs)
	if !stats.Complete {
		hop.Skipped = true
		hop.Note += "; not judged: the endpoint's figures leave some of the run's seqs uncounted"
	}
	return hop
}

// errNoStatsRoute means the endpoint is not one with per-run counts.
var errNoStatsRoute = errors.New("the endpoint has no per-run stats route")

func (r *referenceEndpoint) stats(ctx context.Context, statsURL string) (endpointapi.RunStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statsURL, nil)
	if err != nil {
		return endpointapi.RunStats{}, fmt.Errorf("build request: %w", err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) { // its message repeats the URL, which may hold credentials
			err = urlErr.Err
		}
		return endpointapi.RunStats{}, fmt.Errorf("GET stats: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end or given up; nothing to report
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return endpointapi.RunStats{}, errNoStatsRoute
	case resp.StatusCode != http.StatusOK:
		return endpointapi.RunStats{}, fmt.Errorf("GET stats: HTTP %d", resp.StatusCode)
	}
	var stats endpointapi.RunStats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&stats); err != nil {
		return endpointapi.RunStats{}, fmt.Errorf("GET stats: answer is not run stats: %w", err)
	}
	return stats, nil
}

// redactedURL hides a password in raw.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
