package endpoint

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/flowproof/flowproof/deploy/refsvc/internal/httpx"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// handleRunStats serves GET endpointapi.RunStatsPath: the endpoint's own
// count of a run's accepted messages, so that a verification can check its
// figures against the endpoint's and not only against its own records.
func (e *Endpoint) handleRunStats(w http.ResponseWriter, r *http.Request) {
	runID := r.PathValue("run_id")
	if strings.TrimSpace(runID) == "" {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", "run id is empty")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, e.runStats(runID))
}

// runStats counts from the idempotency store, which keeps the answer
// (batch id and seqs) to every batch accepted within its window, also
// across restarts when the endpoint has a journal.
func (e *Endpoint) runStats(runID string) endpointapi.RunStats {
	answers, full := e.idempotency.answersOf(func(key string) bool {
		_, batchID, _ := strings.Cut(key, "\x00")
		return batchOfRun(batchID, runID)
	})
	stats := endpointapi.RunStats{
		RunID: runID, Batches: int64(len(answers)), Complete: !full,
		WindowSeconds: int64(e.cfg.IdempotencyTTL.Seconds()),
	}
	var seqs []int64
	var answer struct {
		Results []struct {
			Seq int64 `json:"seq"`
		} `json:"results"`
	}
	for _, body := range answers {
		answer.Results = answer.Results[:0]
		if err := json.Unmarshal(body, &answer); err != nil {
			continue // the endpoint encoded it itself; unreachable
		}
		for _, result := range answer.Results {
			seqs = append(seqs, result.Seq)
		}
	}
	slices.Sort(seqs)
	stats.AcceptedMessages = int64(len(seqs))
	for i, seq := range seqs {
		switch {
		case i == 0 || seq != seqs[i-1]:
			stats.UniqueSeqs++
		case i == 1 || seq != seqs[i-2]:
			stats.DuplicatedSeqs++ // the second occurrence, counted once per seq
		}
	}
	return stats
}

// batchOfRun is true when batchID is "<runID>-p<partition>-o<first>-<last>".
func batchOfRun(batchID, runID string) bool {
	rest, ok := strings.CutPrefix(batchID, runID+"-p")
	if !ok {
		return false
	}
	partition, rest, ok := strings.Cut(rest, "-o")
	if !ok || !allDigits(partition) {
		return false
	}
	first, last, ok := strings.Cut(rest, "-")
	return ok && allDigits(first) && allDigits(last)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// answersOf returns the stored answers of the keys match accepts, and
// whether the store is full, in which case older answers may have been
// evicted. The answers are never modified once stored, so they are read
// outside the lock.
func (s *idempotencyStore) answersOf(match func(key string) bool) (answers [][]byte, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, entry := range s.entries {
		if entry.response != nil && match(key) {
			answers = append(answers, entry.response)
		}
	}
	return answers, s.order.Len() >= s.maxEntries
}
