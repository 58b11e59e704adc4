// Package drills carries out the faults of drillapi on the local stack: it
// kills and stops the stack's processes through stackctl and sets the
// reference endpoint's per-run faults through its admin API. Only the drill
// worker (deploy/local/drillworker) registers it.
package drills

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.temporal.io/sdk/activity"

	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
)

// Faults holds what the faults need: the checkout's stackctl, which kills,
// stops and restarts the stack's processes, and clients of Kafka, Flink's
// REST API and the endpoint's fault API to pick targets and set faults.
type Faults struct {
	// Stackctl is the path of the checkout's bin/stackctl.
	Stackctl string
	// RepoDir is the checkout stackctl runs in: it finds deploy/ and builds
	// the worker from there.
	RepoDir  string
	Kafka    *kadm.Client
	Flink    *flinksql.JobManager
	Endpoint endpointapi.AdminClient
	// WorkerStopLimit is how long the stack's worker may take to exit after
	// SIGTERM: its stop timeout and the margin for closing its clients.
	WorkerStopLimit time.Duration
}

// heartbeatEvery is how often a fault heartbeats while it holds or waits for
// stackctl; the SDK sends at most one heartbeat per 80% of the heartbeat
// timeout whatever the rate.
const heartbeatEvery = 5 * time.Second

// liftTimeout bounds the lift that still runs after the activity was
// cancelled or timed out during the hold, so that the stack is left whole.
const liftTimeout = 10 * time.Minute

// injection is what a fault did. It is the activity's heartbeat detail from
// the moment before the fault is injected, so that a retried ApplyFault
// finds it, does not inject a second time, and only holds what is left of
// the hold and lifts (every lift is safe to repeat).
type injection struct {
	Target     string    `json:"target"`
	InjectedAt time.Time `json:"injected_at"`
	// Process is the stack's process that was signalled, Component what
	// `stackctl up --only` starts again; both empty for endpoint faults.
	Process   string   `json:"process,omitempty"`
	Component string   `json:"component,omitempty"`
	Detail    string   `json:"detail,omitempty"`
	Problems  []string `json:"problems,omitempty"`
}

func (inj injection) injected() bool { return !inj.InjectedAt.IsZero() }

// fault is one kind of fault: pick chooses what to hit without touching
// it, inject hits it, lift undoes it once the hold is over.
type fault struct {
	pick   func(ctx context.Context, f *Faults, req drillapi.FaultRequest) (injection, error)
	inject func(ctx context.Context, f *Faults, req drillapi.FaultRequest, inj *injection) error
	lift   func(ctx context.Context, f *Faults, req drillapi.FaultRequest, inj *injection) error
}

// ApplyFault injects req.Fault into the local stack, holds it for
// req.HoldSeconds while heartbeating, lifts it and reports what it hit and
// when. Invalid input fails for good (errtype.InvalidInput), as does a run
// with nothing to hit (errtype.NoFaultTarget); other errors may be retried:
// a retry that finds the injection in the heartbeat details does not inject
// again but holds for the rest of the time and lifts. If the activity is
// cancelled during the hold, the fault is still lifted before it returns.
func (f *Faults) ApplyFault(ctx context.Context, req drillapi.FaultRequest) (drillapi.FaultReport, error) {
	kind, err := validate(req)
	if err != nil {
		return drillapi.FaultReport{}, err
	}
	logger := activity.GetLogger(ctx)
	var inj injection
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &inj); err != nil {
			logger.Warn("heartbeat details of an earlier attempt unreadable; injecting afresh", "Error", err)
			inj = injection{}
		}
	}
	if inj.injected() {
		logger.Info("fault injected by an earlier attempt; holding and lifting it, not injecting again",
			"Fault", req.Fault, "Target", inj.Target, "InjectedAt", inj.InjectedAt)
	} else if inj, err = f.inject(ctx, kind, req); err != nil {
		return drillapi.FaultReport{}, err
	}

	holdErr := hold(ctx, inj, inj.InjectedAt.Add(time.Duration(req.HoldSeconds)*time.Second))
	liftCtx := ctx
	if holdErr != nil {
		// Cancelled or timed out: the stack is still left whole.
		var cancel context.CancelFunc
		liftCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), liftTimeout)
		defer cancel()
	}
	if err := kind.lift(liftCtx, f, req, &inj); err != nil {
		return drillapi.FaultReport{}, errors.Join(holdErr, fmt.Errorf("lift %s of %s: %w", req.Fault, inj.Target, err))
	}
	if holdErr != nil {
		return drillapi.FaultReport{}, fmt.Errorf("%s of %s lifted early: %w", req.Fault, inj.Target, holdErr)
	}
	report := drillapi.FaultReport{
		Fault: req.Fault, Target: inj.Target, InjectedAt: inj.InjectedAt, LiftedAt: time.Now(),
		Detail: inj.Detail, Problems: inj.Problems,
	}
	logger.Info("fault lifted", "Fault", req.Fault, "Target", inj.Target, "Detail", inj.Detail, "Problems", inj.Problems)
	return report, nil
}

// inject picks the target, records the injection as the heartbeat detail,
// then hits it. A failed hit clears the detail again, so that a retry picks
// and hits afresh.
func (f *Faults) inject(ctx context.Context, kind fault, req drillapi.FaultRequest) (injection, error) {
	inj, err := kind.pick(ctx, f, req)
	if err != nil {
		return injection{}, err
	}
	inj.InjectedAt = time.Now()
	activity.RecordHeartbeat(ctx, inj)
	if err := kind.inject(ctx, f, req, &inj); err != nil {
		activity.RecordHeartbeat(ctx, injection{})
		return injection{}, fmt.Errorf("inject %s into %s: %w", req.Fault, inj.Target, err)
	}
	activity.RecordHeartbeat(ctx, inj)
	activity.GetLogger(ctx).Info("fault injected", "Fault", req.Fault, "Target", inj.Target, "Detail", inj.Detail)
	return inj, nil
}

// validate returns the fault req names, or the non-retryable error of
// input that can never succeed.
func validate(req drillapi.FaultRequest) (fault, error) {
	kind, ok := faults[req.Fault]
	switch {
	case !ok:
		return fault{}, errtype.InvalidInputf("fault %q is none of %v", req.Fault, drillapi.Faults)
	case req.RunID == "":
		return fault{}, errtype.InvalidInputf("run_id is empty: a fault aims at one run")
	case req.HoldSeconds < 0:
		return fault{}, errtype.InvalidInputf("hold_seconds is %d; want 0 or more", req.HoldSeconds)
	}
	return kind, nil
}

// hold waits until the fault is due to be lifted, heartbeating the
// injection meanwhile.
func hold(ctx context.Context, inj injection, until time.Time) error {
	ticker := time.NewTicker(heartbeatEvery)
	defer ticker.Stop()
	for {
		left := time.Until(until)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(left):
			return nil
		case <-ticker.C:
			activity.RecordHeartbeat(ctx, inj)
		}
	}
}

// faults maps every fault of drillapi to what carries it out.
var faults = map[string]fault{
	drillapi.KillBroker:       {pick: pickBroker, inject: kill, lift: restartBroker},
	drillapi.KillTaskManager:  {pick: pickTaskManager, inject: kill, lift: restart},
	drillapi.KillJobManager:   {pick: fixedProcess("flink-jobmanager", "flink"), inject: kill, lift: restart},
	drillapi.KillEndpoint:     {pick: fixedProcess("endpoint", "refsvc"), inject: kill, lift: restart},
	drillapi.StopTokenService: {pick: fixedProcess("token-service", "refsvc"), inject: stop, lift: restart},
	drillapi.StopTemporal:     {pick: fixedProcess("temporal", "temporal"), inject: stop, lift: restart},
	drillapi.KillWorker:       {pick: fixedProcess("worker", "worker"), inject: kill, lift: restart},
	drillapi.StopWorker:       {pick: fixedProcess("worker", "worker"), inject: stopWorker, lift: restart},
	drillapi.EndpointErrors:   endpointFault(endpointErrors),
	drillapi.EndpointThrottle: endpointFault(endpointThrottle),
	drillapi.EndpointLatency:  endpointFault(endpointLatency),
}
