package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// drillWorker is the drill worker (bin/drillworker, built from this
// checkout) on task queue drillapi.TaskQueue: the only process allowed to
// kill and restart the stack's processes, which it does through this
// stackctl. Opt-in (`up --with-drills`) and, like the worker, never
// remembered.
type drillWorker struct{}

const drillWorkerProcess = "drill-worker"

func (drillWorker) name() string { return drillWorkerProcess }

func drillWorkerBinary(s *stack) string { return filepath.Join(s.repoDir, "bin", "drillworker") }

func (drillWorker) install(ctx context.Context, s *stack) error {
	return goBuild(ctx, s, drillWorkerBinary(s), "./deploy/local/drillworker")
}

func (drillWorker) start(_ context.Context, s *stack) error {
	p, err := drillWorkerProcessSpec(s)
	if err != nil {
		return err
	}
	return s.start(p)
}

// drillWorkerProcessSpec runs the drill worker in the checkout with this
// very stackctl, so that its faults act on this stack dir.
func drillWorkerProcessSpec(s *stack) (process, error) {
	self, err := os.Executable()
	if err != nil {
		return process{}, fmt.Errorf("drill worker: path of stackctl: %w", err)
	}
	// The profile's client settings, as the worker gets them.
	env, err := clientEnv(s)
	if err != nil {
		return process{}, err
	}
	return process{
		name: drillWorkerProcess,
		argv: []string{drillWorkerBinary(s),
			"-repo-dir", s.repoDir,
			"-stackctl", self,
			"-stack-dir", s.dir,
			"-worker-stop-limit", (workerStopTimeout + workerExitMargin).String(),
		},
		dir: s.repoDir,
		// Its own settings and Temporal's, as the worker; and Go's, since
		// restarting the worker through stackctl builds it.
		inherit:  []string{"FLOWPROOF_*", "TEMPORAL_*", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "GO*"},
		withhold: withheldClientEnv(s),
		env:      envAssignments(env),
	}, nil
}

func (drillWorker) processes(*stack) []string { return []string{drillWorkerProcess} }

// check wants the stack's drill worker process alive and polling the drill
// task queue: Temporal lists a poller whose identity (the SDK's default,
// "<pid>@<host>@") names this process.
func (drillWorker) check(ctx context.Context, s *stack) health.Result {
	address := localstack.FromEnv().TemporalAddress
	res := health.Result{Component: drillWorkerProcess, Addresses: []string{address}}
	began := time.Now()
	defer func() { res.LatencyMillis = time.Since(began).Milliseconds() }()
	pid, ok := s.running(drillWorkerProcess)
	if !ok {
		res.Detail = fmt.Sprintf("drill worker process of this stack is not running (see %s)", s.logFile(drillWorkerProcess))
		return res
	}
	identities, err := activityPollers(ctx, address, localstack.FromEnv().TemporalNamespace, drillapi.TaskQueue)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	for _, id := range identities {
		if strings.HasPrefix(id, strconv.Itoa(pid)+"@") {
			res.Healthy = true
			res.Detail = fmt.Sprintf("pid %d polling task queue %s", pid, drillapi.TaskQueue)
			return res
		}
	}
	res.Detail = fmt.Sprintf("drill worker (pid %d) is not among the pollers of task queue %s (yet); see %s", pid, drillapi.TaskQueue, s.logFile(drillWorkerProcess))
	return res
}

// activityPollers lists the identities of the workers polling taskQueue
// for activities.
func activityPollers(ctx context.Context, address, namespace, taskQueue string) ([]string, error) {
	c, err := client.DialContext(ctx, client.Options{
		HostPort: address, Namespace: namespace,
		Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return nil, fmt.Errorf("dial temporal at %s: %w", address, err)
	}
	defer c.Close()
	described, err := c.DescribeTaskQueue(ctx, taskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return nil, fmt.Errorf("describe task queue %s: %w", taskQueue, err)
	}
	var identities []string
	for _, p := range described.GetPollers() {
		identities = append(identities, p.GetIdentity())
	}
	return identities, nil
}
