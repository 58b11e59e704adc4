package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/internal/httpx"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// Bounds of a fault setting, so that a typo cannot hang the endpoint.
const (
	maxLatencyMillis     = 30_000
	maxRetryAfterSeconds = 3600
)

// NormalizeFaults fills the defaults of f (error status 503, Retry-After 1 s)
// and checks every field, naming the one that is wrong.
func NormalizeFaults(f endpointapi.Faults) (endpointapi.Faults, error) {
	var errs []error
	for _, rate := range []struct {
		name  string
		value float64
	}{{"error_rate", f.ErrorRate}, {"throttle_rate", f.ThrottleRate}, {"lost_response_rate", f.LostResponseRate}} {
		if !(rate.value >= 0 && rate.value <= 1) {
			errs = append(errs, fmt.Errorf("%s must be between 0 and 1, got %v", rate.name, rate.value))
		}
	}
	// One uniform draw picks at most one fault per request, so the rates
	// share the unit interval.
	if sum := f.ErrorRate + f.ThrottleRate + f.LostResponseRate; sum > 1 {
		errs = append(errs, fmt.Errorf("error_rate + throttle_rate + lost_response_rate must not exceed 1, got %v", sum))
	}
	if f.ErrorStatus == 0 {
		f.ErrorStatus = 503
	}
	if f.ErrorStatus < 400 || f.ErrorStatus > 599 {
		errs = append(errs, fmt.Errorf("error_status must be a 4xx or 5xx code, got %d", f.ErrorStatus))
	}
	if f.RetryAfterSeconds == 0 {
		f.RetryAfterSeconds = 1
	}
	if f.RetryAfterSeconds < 1 || f.RetryAfterSeconds > maxRetryAfterSeconds {
		errs = append(errs, fmt.Errorf("retry_after_seconds must be between 1 and %d, got %d", maxRetryAfterSeconds, f.RetryAfterSeconds))
	}
	if f.LatencyMillis < 0 || f.LatencyMillis > maxLatencyMillis {
		errs = append(errs, fmt.Errorf("latency_ms must be between 0 and %d, got %d", maxLatencyMillis, f.LatencyMillis))
	}
	return f, errors.Join(errs...)
}

// faultKind is what one request drew.
type faultKind int

const (
	noFault faultKind = iota
	throttleFault
	errorFault
	lostResponseFault
)

// Bounds of the run-scoped settings, so that a client cannot grow the
// endpoint's memory without end.
const (
	maxRunIDsPerSetting = 100
	maxRunsWithFaults   = 1000
	maxRunIDLen         = 255
)

// faultInjector holds the start-time setting, which applies to every batch
// of a run without a setting of its own, and the settings the admin route
// made for named runs.
type faultInjector struct {
	mu     sync.RWMutex
	base   endpointapi.Faults
	runs   map[string]endpointapi.Faults // RunIDs left empty
	random func() float64
}

func newFaultInjector(base endpointapi.Faults, random func() float64) *faultInjector {
	base.RunIDs = nil
	return &faultInjector{base: base, runs: map[string]endpointapi.Faults{}, random: random}
}

// forRun is the setting a batch of runID gets.
func (fi *faultInjector) forRun(runID string) endpointapi.Faults {
	fi.mu.RLock()
	defer fi.mu.RUnlock()
	if f, ok := fi.runs[runID]; ok && runID != "" {
		return f
	}
	return fi.base
}

// setRuns gives every run f names the setting f, replacing its earlier one.
func (fi *faultInjector) setRuns(f endpointapi.Faults) error {
	setting := f
	setting.RunIDs = nil
	fi.mu.Lock()
	defer fi.mu.Unlock()
	added := 0
	for _, id := range f.RunIDs {
		if _, ok := fi.runs[id]; !ok {
			added++
		}
	}
	if len(fi.runs)+added > maxRunsWithFaults {
		return fmt.Errorf("at most %d runs may have fault settings at once; %d have; DELETE %s?%s=<run> those that are done",
			maxRunsWithFaults, len(fi.runs), endpointapi.FaultsPath, endpointapi.RunIDQuery)
	}
	for _, id := range f.RunIDs {
		fi.runs[id] = setting
	}
	return nil
}

// reset removes the settings of runIDs, or every setting when none is named.
func (fi *faultInjector) reset(runIDs []string) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if len(runIDs) == 0 {
		fi.base, _ = NormalizeFaults(endpointapi.Faults{})
		clear(fi.runs)
		return
	}
	for _, id := range runIDs {
		delete(fi.runs, id)
	}
}

func (fi *faultInjector) state() endpointapi.FaultState {
	fi.mu.RLock()
	defer fi.mu.RUnlock()
	state := endpointapi.FaultState{Default: fi.base, Runs: make([]endpointapi.Faults, 0, len(fi.runs))}
	for _, id := range slices.Sorted(maps.Keys(fi.runs)) {
		f := fi.runs[id]
		f.RunIDs = []string{id}
		state.Runs = append(state.Runs, f)
	}
	return state
}

// draw picks the fault of one request of runID.
func (fi *faultInjector) draw(runID string) (endpointapi.Faults, faultKind) {
	f := fi.forRun(runID)
	if f.ThrottleRate == 0 && f.ErrorRate == 0 && f.LostResponseRate == 0 {
		return f, noFault
	}
	r := fi.random()
	switch {
	case r < f.ThrottleRate:
		return f, throttleFault
	case r < f.ThrottleRate+f.ErrorRate:
		return f, errorFault
	case r < f.ThrottleRate+f.ErrorRate+f.LostResponseRate:
		return f, lostResponseFault
	default:
		return f, noFault
	}
}

// validateRunIDs checks the runs a run-time setting names: it must name at
// least one, or it would apply to none.
func validateRunIDs(ids []string) error {
	if len(ids) == 0 {
		return errors.New("run_ids is required: a fault setting applies only to the runs it names")
	}
	if len(ids) > maxRunIDsPerSetting {
		return fmt.Errorf("run_ids has %d entries; at most %d are allowed", len(ids), maxRunIDsPerSetting)
	}
	for i, id := range ids {
		if strings.TrimSpace(id) == "" || len(id) > maxRunIDLen {
			return fmt.Errorf("run_ids[%d] must be 1 to %d bytes and not blank, got %q", i, maxRunIDLen, id)
		}
	}
	return nil
}

// delay waits d unless ctx ends first.
func delay(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Faults returns the setting a batch of runID gets.
func (e *Endpoint) Faults(runID string) endpointapi.Faults { return e.faults.forRun(runID) }

func (e *Endpoint) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, e.faults.state())
}

// handleSetFaults sets the faults of the runs the body names: fields left
// out become zero, so `{"run_ids": ["r"]}` turns every fault of run r off.
func (e *Endpoint) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "invalid_request",
			fmt.Sprintf("Content-Type must be application/json, got %q", ct))
		return
	}
	var f endpointapi.Faults
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields() // a misspelt field would otherwise silently mean "off"
	if err := dec.Decode(&f); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", "fault setting is not valid JSON: "+err.Error())
		return
	}
	if dec.More() {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", "fault setting must be a single JSON object")
		return
	}
	normalized, err := NormalizeFaults(f)
	if err == nil {
		err = validateRunIDs(normalized.RunIDs)
	}
	if err == nil {
		err = e.faults.setRuns(normalized)
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	e.log.Info("faults set", zap.Strings("run_ids", normalized.RunIDs),
		zap.Float64("error_rate", normalized.ErrorRate), zap.Int("error_status", normalized.ErrorStatus),
		zap.Float64("throttle_rate", normalized.ThrottleRate), zap.Int("retry_after_seconds", normalized.RetryAfterSeconds),
		zap.Int("latency_ms", normalized.LatencyMillis), zap.Float64("lost_response_rate", normalized.LostResponseRate))
	httpx.WriteJSON(w, http.StatusOK, normalized)
}

// handleResetFaults removes the settings of the runs named by run_id query
// parameters, or every setting, the start-time one included, without any.
func (e *Endpoint) handleResetFaults(w http.ResponseWriter, r *http.Request) {
	runIDs := r.URL.Query()[endpointapi.RunIDQuery]
	e.faults.reset(runIDs)
	e.log.Info("faults reset", zap.Strings("run_ids", runIDs))
	httpx.WriteJSON(w, http.StatusOK, e.faults.state())
}

func isJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == "application/json"
}
