// Package httpx holds what both reference services share: request metrics and
// logs, the health and metrics routes, JSON answers, and a server that shuts
// down gracefully.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/internal/refsvcapi"
)

// NewRegistry returns a registry with the Go runtime and process collectors,
// so each service exposes its own metrics and nothing global.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	WriteJSONBytes(w, status, body)
}

// WriteJSONBytes answers with status and an already encoded JSON body.
func WriteJSONBytes(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte{'\n'})
}

// WriteError answers with status and a refsvcapi.ErrorResponse.
func WriteError(w http.ResponseWriter, status int, code, description string) {
	WriteJSON(w, status, refsvcapi.ErrorResponse{Error: code, ErrorDescription: description})
}

// Dependency is something a service needs to do its work; Check says how
// it answered, or why not. Its detail and error must name no credential.
type Dependency struct {
	Name  string
	Check func(ctx context.Context) (detail string, err error)
}

// dependencyCheckTimeout bounds each dependency's check, so that a health
// request is answered even when a dependency hangs.
const dependencyCheckTimeout = 3 * time.Second

// HandleHealth adds GET /healthz: 200 while the process serves and every
// dependency answers, 503 (status "degraded") when one does not, each
// dependency's answer in the body.
func HandleHealth(mux *http.ServeMux, service string, started time.Time, deps ...Dependency) {
	mux.HandleFunc("GET "+refsvcapi.HealthPath, func(w http.ResponseWriter, r *http.Request) {
		health := refsvcapi.Health{
			Status:        "ok",
			Service:       service,
			UptimeSeconds: int64(time.Since(started).Seconds()),
		}
		status := http.StatusOK
		for _, dep := range deps {
			answer := checkDependency(r.Context(), dep)
			if !answer.Healthy {
				health.Status, status = "degraded", http.StatusServiceUnavailable
			}
			health.Dependencies = append(health.Dependencies, answer)
		}
		WriteJSON(w, status, health)
	})
}

func checkDependency(ctx context.Context, dep Dependency) refsvcapi.DependencyHealth {
	ctx, cancel := context.WithTimeout(ctx, dependencyCheckTimeout)
	defer cancel()
	start := time.Now()
	detail, err := dep.Check(ctx)
	answer := refsvcapi.DependencyHealth{Name: dep.Name, Healthy: err == nil, Detail: detail, LatencyMillis: time.Since(start).Milliseconds()}
	if err != nil {
		answer.Detail = err.Error()
	}
	return answer
}

// HandleMetrics adds GET /metrics for reg.
func HandleMetrics(mux *http.ServeMux, reg *prometheus.Registry) {
	mux.Handle("GET "+refsvcapi.MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// Instrument counts and times every request by route (the ServeMux pattern,
// so the label set stays bounded) and status code, and logs it at debug
// level. Only method, path, status and duration are logged: never headers,
// which carry credentials.
func Instrument(next *http.ServeMux, reg prometheus.Registerer, log *zap.Logger) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "refsvc_http_requests_total",
		Help: "HTTP requests handled, by route and status code.",
	}, []string{"route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "refsvc_http_request_duration_seconds",
		Help:    "Time to handle an HTTP request, by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})
	reg.MustRegister(requests, duration)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		// ServeMux records the matched pattern on the request it was given.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		duration.WithLabelValues(route).Observe(elapsed.Seconds())
		if ce := log.Check(zap.DebugLevel, "request"); ce != nil {
			ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.Int("status", rec.status), zap.Duration("duration", elapsed))
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Serve listens on addr and serves handler until ctx ends, then stops taking
// requests and waits up to grace for those in flight.
func Serve(ctx context.Context, addr string, handler http.Handler, grace time.Duration, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", zap.String("address", ln.Addr().String()))

	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.Duration("grace", grace))
	// ctx has ended; the grace period needs a context of its own.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", addr, err)
	}
	log.Info("stopped")
	return nil
}
