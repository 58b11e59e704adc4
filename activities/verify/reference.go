package verify

import (
	"context"
	"fmt"
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
	stats, err := endpointapi.FetchRunStats(ctx, r.client, statsURL)
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

// redactedURL hides a password in raw.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
