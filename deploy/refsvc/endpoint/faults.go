package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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

// faultInjector holds the current setting, which the admin route replaces at
// run time.
type faultInjector struct {
	mu     sync.RWMutex
	faults endpointapi.Faults
	random func() float64
}

func (fi *faultInjector) get() endpointapi.Faults {
	fi.mu.RLock()
	defer fi.mu.RUnlock()
	return fi.faults
}

func (fi *faultInjector) set(f endpointapi.Faults) {
	fi.mu.Lock()
	fi.faults = f
	fi.mu.Unlock()
}

// draw picks this request's fault from the current setting.
func (fi *faultInjector) draw() (endpointapi.Faults, faultKind) {
	f := fi.get()
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

// Faults returns the current fault setting.
func (e *Endpoint) Faults() endpointapi.Faults { return e.faults.get() }

func (e *Endpoint) handleGetFaults(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, e.faults.get())
}

// handleSetFaults replaces the whole setting: fields left out become zero,
// so `{}` turns every fault off.
func (e *Endpoint) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	var f endpointapi.Faults
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields() // a misspelt field would otherwise silently mean "off"
	if err := dec.Decode(&f); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", "fault setting is not valid JSON: "+err.Error())
		return
	}
	normalized, err := NormalizeFaults(f)
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	e.faults.set(normalized)
	e.log.Info("faults set", zap.Float64("error_rate", normalized.ErrorRate), zap.Int("error_status", normalized.ErrorStatus),
		zap.Float64("throttle_rate", normalized.ThrottleRate), zap.Int("retry_after_seconds", normalized.RetryAfterSeconds),
		zap.Int("latency_ms", normalized.LatencyMillis), zap.Float64("lost_response_rate", normalized.LostResponseRate))
	httpx.WriteJSON(w, http.StatusOK, normalized)
}

func (e *Endpoint) handleResetFaults(w http.ResponseWriter, r *http.Request) {
	normalized, _ := NormalizeFaults(endpointapi.Faults{})
	e.faults.set(normalized)
	e.log.Info("faults reset")
	httpx.WriteJSON(w, http.StatusOK, normalized)
}
