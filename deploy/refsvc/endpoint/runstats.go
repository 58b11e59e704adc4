package endpoint

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/internal/httpx"
)

// handleRunStats serves GET endpointapi.RunStatsPath: the endpoint's own
// count of a run's accepted messages, so that a verification can check its
// figures against the endpoint's and not only against its own records. The
// figures come from the store, which keeps them across restarts until
// IdempotencyTTL after the run's last batch.
func (e *Endpoint) handleRunStats(w http.ResponseWriter, r *http.Request) {
	runID := r.PathValue("run_id")
	if strings.TrimSpace(runID) == "" {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", "run id is empty")
		return
	}
	stats, err := e.store.runStats(r.Context(), runID)
	if err != nil {
		e.log.Error("store unavailable", zap.Error(err))
		httpx.WriteError(w, http.StatusServiceUnavailable, "store_unavailable", "the run's figures could not be read; retry")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, stats)
}
