package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// worker is flowproof's own worker (bin/worker, built from this checkout)
// polling the task queue "flowproof", run as a process of the stack by
// `up --with-worker`. It is opt-in and never remembered: the integration
// tests run their own workers on their own task queues against the same
// stack.
type worker struct{}

const (
	workerProcess = "worker"
	// workerStopTimeout is the worker's -stop-timeout: how long its running
	// activities get to finish after SIGTERM. down waits that long and
	// workerExitMargin more (closing clients) before SIGKILL.
	workerStopTimeout = localstack.WorkerStopTimeout
	workerExitMargin  = localstack.WorkerExitMargin
)

func (worker) name() string { return "worker" }

func workerBinary(s *stack) string { return filepath.Join(s.repoDir, "bin", "worker") }

func workerMetricsAddr() string {
	return localstack.Host + ":" + strconv.Itoa(localstack.WorkerMetricsPort)
}

func workerTaskQueue() string { return localstack.TaskQueue }

func (worker) install(ctx context.Context, s *stack) error {
	return goBuild(ctx, s, workerBinary(s), "./worker")
}

// start passes the settings check relies on as flags, so that the
// environment cannot move them elsewhere.
func (worker) start(_ context.Context, s *stack) error {
	p, err := workerProcessSpec(s)
	if err != nil {
		return err
	}
	return s.start(p)
}

// workerProcessSpec gets the client settings of the stack's profile
// (Kafka's TLS and SASL with its password in the secure one) through the
// environment, never the command line.
func workerProcessSpec(s *stack) (process, error) {
	env, err := clientEnv(s)
	if err != nil {
		return process{}, err
	}
	return process{
		name: workerProcess,
		argv: []string{workerBinary(s),
			"-task-queue", workerTaskQueue(),
			"-metrics-addr", workerMetricsAddr(),
			"-stop-timeout", workerStopTimeout.String(),
			// The stack's endpoint is the reference one: verification
			// cross-checks its own count of each run.
			"-reference-endpoint-url", localstack.FromEnv().EndpointURL,
			// Failure notices (with FLOWPROOF_WEBHOOK_URL) link the stack's UI.
			"-temporal-ui-url", localstack.FromEnv().TemporalUIURL,
		},
		// Its own settings (addresses, the token client's credentials,
		// Kafka's TLS and SASL), Temporal's client profile and where that
		// profile and the worker's caches live.
		inherit:  []string{"FLOWPROOF_*", "TEMPORAL_*", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"},
		withhold: withheldClientEnv(s),
		env:      slices.Concat(envAssignments(env), lessGCEnvironment, []string{workerMemoryLimit}),
	}, nil
}

func (worker) stopGrace() time.Duration { return workerStopTimeout + workerExitMargin }

func (worker) processes(*stack) []string { return []string{workerProcess} }

// check wants the stack's worker process alive, serving its metrics, and
// the SDK's worker-start counter for the task queue among them: the SDK
// counts a start only once the worker's pollers run.
func (worker) check(ctx context.Context, s *stack) (res health.Result) {
	metricsURL := "http://" + workerMetricsAddr() + "/metrics"
	res = health.Result{Component: "worker", Addresses: []string{metricsURL}}
	began := time.Now()
	defer func() { res.LatencyMillis = time.Since(began).Milliseconds() }()
	pid, ok := s.running(workerProcess)
	if !ok {
		res.Detail = fmt.Sprintf("worker process of this stack is not running (see %s)", s.logFile(workerProcess))
		return res
	}
	if !listensOn(pid, localstack.WorkerMetricsPort) {
		res.Detail = fmt.Sprintf("worker (pid %d) does not serve metrics on port %d (yet); see %s", pid, localstack.WorkerMetricsPort, s.logFile(workerProcess))
		return res
	}
	status, body, err := httpGet(ctx, metricsURL)
	switch {
	case err != nil:
		res.Detail = err.Error()
	case status != http.StatusOK:
		res.Detail = fmt.Sprintf("GET %s: status %d, want 200", metricsURL, status)
	case !workerStarted(string(body), workerTaskQueue()):
		res.Detail = fmt.Sprintf("worker (pid %d) has not started polling task queue %s (yet); see %s", pid, workerTaskQueue(), s.logFile(workerProcess))
	default:
		res.Healthy = true
		res.Detail = fmt.Sprintf("pid %d polling task queue %s", pid, workerTaskQueue())
	}
	return res
}

// workerStarted looks for the SDK's temporal_worker_start counter of
// taskQueue in a Prometheus text exposition.
func workerStarted(metrics, taskQueue string) bool {
	label := `task_queue="` + taskQueue + `"`
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "temporal_worker_start_total{") && strings.Contains(line, label) {
			return true
		}
	}
	return false
}
