package main

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"go.temporal.io/sdk/worker"
)

// readiness is the worker's state as probes see it: /readyz answers 200
// only while the Temporal worker polls its task queue, so that a rolling
// update waits for the new worker to take tasks before it stops an old
// one, and a stopping worker is no longer counted as serving.
type readiness struct {
	taskQueue string
	state     atomic.Int32
}

const (
	stateStarting int32 = iota
	statePolling
	stateStopping
)

func newReadiness(taskQueue string) *readiness { return &readiness{taskQueue: taskQueue} }

func (r *readiness) set(state int32) { r.state.Store(state) }

// serveReady is /readyz.
func (r *readiness) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch r.state.Load() {
	case statePolling:
		_, _ = fmt.Fprintf(w, "polling task queue %s\n", r.taskQueue)
	case stateStopping:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "stopping")
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "starting: not polling yet")
	}
}

// serveHealthy is /healthz, for liveness: the process answers. It does not
// depend on Temporal, whose outage a restart would not cure.
func serveHealthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "ok")
}

// runWorker is worker.Run with the readiness kept: it starts w, reports
// polling, and stops w at the first interrupt or fatal error (fatal
// receives what worker.Options.OnFatalError is given).
func runWorker(w worker.Worker, interrupt <-chan any, fatal <-chan error, ready *readiness) error {
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	ready.set(statePolling)
	var err error
	select {
	case <-interrupt:
	case err = <-fatal:
	}
	ready.set(stateStopping)
	w.Stop()
	return err
}
