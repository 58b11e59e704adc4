package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/localstack"
)

// fixedProcess picks the one process of component the fault always hits.
func fixedProcess(process, component string) func(context.Context, *Faults, drillapi.FaultRequest) (injection, error) {
	return func(context.Context, *Faults, drillapi.FaultRequest) (injection, error) {
		return injection{Target: process, Process: process, Component: component}, nil
	}
}

// kill SIGKILLs the injection's process.
func kill(ctx context.Context, f *Faults, _ drillapi.FaultRequest, inj *injection) error {
	done, err := f.signal(ctx, *inj, "kill", inj.Process)
	if err != nil {
		return err
	}
	inj.Detail = fmt.Sprintf("SIGKILL pid %d, gone after %s", done.PID, millis(done.ExitedAfterMillis))
	return nil
}

// stop SIGTERMs the injection's process and waits for it to exit (stackctl
// kills it after the process's own grace).
func stop(ctx context.Context, f *Faults, _ drillapi.FaultRequest, inj *injection) error {
	done, err := f.signal(ctx, *inj, "stop", inj.Process)
	if err != nil {
		return err
	}
	inj.Detail = describeStop(done)
	return nil
}

// stopWorker SIGTERMs the stack's worker and holds its exit time against
// WorkerStopLimit. The grace before SIGKILL is twice the limit, so that a
// slow exit is measured rather than cut short at the limit.
func stopWorker(ctx context.Context, f *Faults, _ drillapi.FaultRequest, inj *injection) error {
	grace := 2 * f.WorkerStopLimit
	done, err := f.signal(ctx, *inj, "stop", inj.Process, "--grace", grace.String())
	if err != nil {
		return err
	}
	inj.Detail = describeStop(done)
	if exited := time.Duration(done.ExitedAfterMillis) * time.Millisecond; exited > f.WorkerStopLimit || done.KilledAfterMillis > 0 {
		inj.Problems = append(inj.Problems, fmt.Sprintf("worker (pid %d) took %s to exit after SIGTERM; its limit is %s (stop timeout and exit margin)",
			done.PID, exitTime(done), f.WorkerStopLimit))
	}
	return nil
}

func describeStop(done localstack.ProcessSignal) string {
	return fmt.Sprintf("SIGTERM pid %d, %s", done.PID, exitTime(done))
}

func exitTime(done localstack.ProcessSignal) string {
	if done.KilledAfterMillis > 0 {
		return fmt.Sprintf("still running %s later, SIGKILL, gone after %s", millis(done.KilledAfterMillis), millis(done.ExitedAfterMillis))
	}
	return "exited after " + millis(done.ExitedAfterMillis)
}

// restart starts the injection's component's missing processes and waits
// until the component is ready again.
func restart(ctx context.Context, f *Faults, _ drillapi.FaultRequest, inj *injection) error {
	took, err := f.up(ctx, *inj, inj.Component)
	if err != nil {
		return err
	}
	inj.Detail += fmt.Sprintf("; %s ready again %s after the restart began", inj.Component, took.Round(time.Millisecond))
	return nil
}

func millis(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// signal runs `stackctl kill|stop --json PROCESS [flags]` and returns what
// it did to the process.
func (f *Faults) signal(ctx context.Context, inj injection, verb, process string, flags ...string) (localstack.ProcessSignal, error) {
	out, err := f.stackctl(ctx, inj, append([]string{verb, "--json", process}, flags...)...)
	if err != nil {
		return localstack.ProcessSignal{}, err
	}
	var done []localstack.ProcessSignal
	if err := json.Unmarshal(out, &done); err != nil || len(done) != 1 {
		return localstack.ProcessSignal{}, fmt.Errorf("stackctl %s %s: want one process in its JSON, got %q (%w)", verb, process, out, err)
	}
	return done[0], nil
}

// up runs `stackctl up --only component` and returns how long it took.
func (f *Faults) up(ctx context.Context, inj injection, component string) (time.Duration, error) {
	began := time.Now()
	_, err := f.stackctl(ctx, inj, "up", "--only", component)
	return time.Since(began), err
}

// stackctl runs the checkout's stackctl with args, heartbeating inj while
// it runs (starting a component waits until it is ready, which can take a
// minute), and returns its stdout.
func (f *Faults) stackctl(ctx context.Context, inj injection, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, f.Stackctl, args...)
	cmd.Dir = f.RepoDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", f.Stackctl, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ticker := time.NewTicker(heartbeatEvery)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return nil, fmt.Errorf("stackctl %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 5))
			}
			activity.GetLogger(ctx).Debug("stackctl done", "Args", args, "Log", lastLines(stderr.String(), 20))
			return stdout.Bytes(), nil
		case <-ticker.C:
			activity.RecordHeartbeat(ctx, inj)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
