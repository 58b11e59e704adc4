package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/internal/kafkaconn"
)

func TestReadyzFollowsTheWorkersState(t *testing.T) {
	ready := newReadiness("flowproof")
	server, err := startMetricsServer("127.0.0.1:0", []prometheus.Collector{newSDKMetrics()}, ready, false, zap.NewNop())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() { _ = server.Shutdown(t.Context()) }()
	base := strings.TrimSuffix(server.URL(), "/metrics")

	for _, step := range []struct {
		state      int32
		readyz     int
		readyzBody string
	}{
		{stateStarting, http.StatusServiceUnavailable, "starting"},
		{statePolling, http.StatusOK, "polling task queue flowproof"},
		{stateStopping, http.StatusServiceUnavailable, "stopping"},
	} {
		ready.set(step.state)
		code, body := get(t, base+"/readyz")
		if code != step.readyz || !strings.Contains(body, step.readyzBody) {
			t.Errorf("state %d: /readyz = %d %q, want %d %q", step.state, code, body, step.readyz, step.readyzBody)
		}
		// Liveness does not follow: a restart cures no Temporal outage.
		if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
			t.Errorf("state %d: /healthz = %d, want 200", step.state, code)
		}
	}
}

// fakeWorker is the part of worker.Worker runWorker drives.
type fakeWorker struct {
	worker.Worker
	startErr error
	stopped  chan struct{}
}

func (f *fakeWorker) Start() error { return f.startErr }
func (f *fakeWorker) Stop()        { close(f.stopped) }

func TestRunWorkerIsReadyFromStartToSignal(t *testing.T) {
	ready := newReadiness("q")
	w := &fakeWorker{stopped: make(chan struct{})}
	interrupt, fatal := make(chan any, 1), make(chan error, 1)
	done := make(chan error, 1)
	go func() { done <- runWorker(w, interrupt, fatal, ready) }()
	waitFor(t, func() bool { return ready.state.Load() == statePolling })
	interrupt <- "SIGTERM"
	if err := <-done; err != nil {
		t.Fatalf("runWorker after a signal: %v", err)
	}
	<-w.stopped
	if ready.state.Load() != stateStopping {
		t.Errorf("state after stop = %d, want stopping", ready.state.Load())
	}
}

func TestRunWorkerReturnsTheFatalError(t *testing.T) {
	ready := newReadiness("q")
	w := &fakeWorker{stopped: make(chan struct{})}
	fatal := make(chan error, 1)
	namespaceGone := errors.New("namespace not found")
	fatal <- namespaceGone
	if err := runWorker(w, make(chan any), fatal, ready); !errors.Is(err, namespaceGone) {
		t.Fatalf("runWorker = %v, want the fatal error", err)
	}
	<-w.stopped
}

func TestRunWorkerThatCannotStartIsNeverReady(t *testing.T) {
	ready := newReadiness("q")
	w := &fakeWorker{startErr: errors.New("no workflows registered"), stopped: make(chan struct{})}
	if err := runWorker(w, make(chan any), make(chan error), ready); err == nil || !strings.Contains(err.Error(), "start worker") {
		t.Fatalf("runWorker = %v, want the start error", err)
	}
	if ready.state.Load() != stateStarting {
		t.Errorf("state = %d, want starting", ready.state.Load())
	}
}

// TestHelpNamesEveryVariableTheWorkerReads keeps -help, which deployment
// manifests are checked against (deploy/cluster), complete: every variable
// parseConfig asks for, on every branch, is named in it.
func TestHelpNamesEveryVariableTheWorkerReads(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, envMap(nil), &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseConfig(-h) = %v", err)
	}
	asked := map[string]bool{}
	env := map[string]string{
		kafkaconn.EnvTLS: "1", kafkaconn.EnvSASLMechanism: "PLAIN", kafkaconn.EnvSASLUser: "u", kafkaconn.EnvSASLPassword: "p",
		envMaxActivities: "4", envPprof: "1", envMetricsAddr: "127.0.0.1:0",
	}
	record := func(key string) string { asked[key] = true; return env[key] }
	if _, err := parseConfig(nil, record, io.Discard); err != nil {
		t.Fatalf("parseConfig with every branch's variables: %v", err)
	}
	if len(asked) < len(env) {
		t.Fatalf("recorded only %d variables: %v", len(asked), asked)
	}
	for key := range asked {
		if !strings.Contains(help.String(), key) {
			t.Errorf("-help does not name %s, which the worker reads", key)
		}
	}
	for _, key := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_KEY_PATH"} {
		if !strings.Contains(help.String(), key) {
			t.Errorf("-help does not name Temporal's %s", key)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
