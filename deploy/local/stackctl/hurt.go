package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flowproof/flowproof/internal/localstack"
)

// kill and stop hurt single processes of the stack, for fault drills: kill
// as a crash would (SIGKILL, the pid file stays as a crash leaves it), stop
// as an operator would (SIGTERM, SIGKILL after the grace, the pid file
// removed as down does). Either acts only on the process its pid file
// recorded, and fails for a process that is not running: a drill whose
// fault hit nothing must not pass. `up --only COMPONENT` starts what they
// ended.

// killExitWait bounds the wait for a process to vanish after SIGKILL.
const killExitWait = 5 * time.Second

func setupKill(fs *flag.FlagSet, s *stack, stdout io.Writer) func(context.Context, []string) error {
	asJSON := fs.Bool("json", false, "print a JSON array, one object per process")
	return func(_ context.Context, args []string) error {
		names, err := processArgs(fs, s, args)
		if err != nil {
			return err
		}
		return report(hurt(s, names, syscall.SIGKILL, nil), *asJSON, stdout)
	}
}

func setupStop(fs *flag.FlagSet, s *stack, stdout io.Writer) func(context.Context, []string) error {
	asJSON := fs.Bool("json", false, "print a JSON array, one object per process")
	grace := fs.Duration("grace", 0, "time between SIGTERM and SIGKILL (default: the process's own, as down uses)")
	return func(_ context.Context, args []string) error {
		names, err := processArgs(fs, s, args)
		if err != nil {
			return err
		}
		if *grace < 0 {
			return usageError{fmt.Errorf("--grace must not be negative, got %s", *grace)}
		}
		graceOf := func(name string) time.Duration {
			if *grace > 0 {
				return *grace
			}
			return processGrace(s, name)
		}
		return report(hurt(s, names, syscall.SIGTERM, graceOf), *asJSON, stdout)
	}
}

// processArgs takes the process names from args, with flags allowed among
// them (`stop worker --grace 1m`), and checks each is a process of the stack.
func processArgs(fs *flag.FlagSet, s *stack, args []string) ([]string, error) {
	var names []string
	for len(args) > 0 {
		if strings.HasPrefix(args[0], "-") {
			if err := fs.Parse(args); err != nil {
				return nil, usageError{err}
			}
			args = fs.Args()
			continue
		}
		names = append(names, args[0])
		args = args[1:]
	}
	if len(names) == 0 {
		return nil, usageError{errors.New("want at least one process name, e.g. kafka-2 or " + workerProcess)}
	}
	known := allProcesses(s)
	for _, name := range names {
		if !slices.Contains(known, name) {
			return nil, usageError{fmt.Errorf("unknown process %q; the stack's processes are %s", name, strings.Join(known, ", "))}
		}
	}
	return names, nil
}

// allProcesses names every process the stack may run, optional ones included.
func allProcesses(s *stack) []string {
	var names []string
	for _, c := range append(coreComponents(s), optionalComponents()...) {
		names = append(names, c.processes(s)...)
	}
	return names
}

// processGrace is the grace down gives the process's component.
func processGrace(s *stack, name string) time.Duration {
	for _, c := range append(coreComponents(s), optionalComponents()...) {
		if slices.Contains(c.processes(s), name) {
			return stopGrace(c)
		}
	}
	return defaultStopGrace
}

// hurtResult is one process's outcome: what was done, or why nothing was.
type hurtResult struct {
	localstack.ProcessSignal
	err error
}

// hurt sends sig to each named process in turn and waits for it to exit;
// for SIGTERM, graceOf says how long before SIGKILL follows.
func hurt(s *stack, names []string, sig syscall.Signal, graceOf func(string) time.Duration) []hurtResult {
	var results []hurtResult
	for _, name := range names {
		stat, err := findProcess(s.pidFile(name))
		if err != nil {
			results = append(results, hurtResult{
				ProcessSignal: localstack.ProcessSignal{Process: name},
				err:           fmt.Errorf("%s: %w; nothing to signal", name, err),
			})
			continue
		}
		res := hurtResult{ProcessSignal: localstack.ProcessSignal{Process: name, PID: stat.PID, Signal: signalName(sig), SentAt: time.Now()}}
		signalProcess(stat, sig)
		wait := killExitWait
		if sig != syscall.SIGKILL {
			wait = graceOf(name)
		}
		if !waitExit(stat, wait) && sig != syscall.SIGKILL {
			res.KilledAfterMillis = time.Since(res.SentAt).Milliseconds()
			signalProcess(stat, syscall.SIGKILL)
			wait = killExitWait
			_ = waitExit(stat, wait)
		}
		res.ExitedAfterMillis = time.Since(res.SentAt).Milliseconds()
		if sameProcess(stat) {
			res.err = fmt.Errorf("%s (pid %d) is still running %s after %s", name, stat.PID, time.Since(res.SentAt).Round(time.Millisecond), res.Signal)
		} else if sig != syscall.SIGKILL {
			res.err = removeIfExists(s.pidFile(name))
		}
		results = append(results, res)
	}
	return results
}

func signalName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}

// report prints what hurt did and returns its errors.
func report(results []hurtResult, asJSON bool, stdout io.Writer) error {
	var errs []error
	done := []localstack.ProcessSignal{}
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
		}
		if r.PID == 0 {
			continue
		}
		done = append(done, r.ProcessSignal)
		if !asJSON {
			fmt.Fprintln(stdout, describeSignal(r.ProcessSignal))
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(done); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func describeSignal(p localstack.ProcessSignal) string {
	exited := time.Duration(p.ExitedAfterMillis) * time.Millisecond
	if p.KilledAfterMillis > 0 {
		killed := time.Duration(p.KilledAfterMillis) * time.Millisecond
		return fmt.Sprintf("%s (pid %d): still running %s after %s, SIGKILL; gone after %s", p.Process, p.PID, killed, p.Signal, exited)
	}
	return fmt.Sprintf("%s (pid %d): %s, exited after %s", p.Process, p.PID, p.Signal, exited)
}
