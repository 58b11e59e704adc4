package endpointapi

import (
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
