package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/redact"
)

func install(ctx context.Context, s *stack) error {
	for _, c := range components(s) {
		start := time.Now()
		if err := c.install(ctx, s); err != nil {
			return fmt.Errorf("install %s: %w", c.name(), err)
		}
		logf("%s installed (%s)", c.name(), time.Since(start).Round(time.Second))
	}
	return nil
}

func up(ctx context.Context, s *stack, stdout io.Writer) error {
	began := time.Now()
	if s.opts.taskManagers < 1 {
		return fmt.Errorf("--taskmanagers must be at least 1, got %d", s.opts.taskManagers)
	}
	for _, dir := range []string{"data", "logs", "run"} {
		if err := os.MkdirAll(filepath.Join(s.dir, dir), 0o755); err != nil {
			return err
		}
	}
	if err := s.claimDataProfile(); err != nil {
		return err
	}
	if err := s.saveOptions(); err != nil {
		return err
	}
	if s.secure() {
		if err := s.certs().ensure(); err != nil {
			return fmt.Errorf("the secure profile's certificates: %w", err)
		}
	}
	if err := install(ctx, s); err != nil {
		return err
	}
	// Components start in order and each must be ready before the next starts:
	// Flink's jobs and Temporal's workers need Kafka and Temporal up first.
	for _, c := range components(s) {
		if err := c.start(ctx, s); err != nil {
			return fmt.Errorf("start %s: %w (logs: %s)", c.name(), err, strings.Join(logPaths(s, c), ", "))
		}
		if err := waitReady(ctx, s, c); err != nil {
			return err
		}
	}
	logf("stack ready in %s", time.Since(began).Round(time.Second))
	printSummary(s, stdout)
	return nil
}

func waitReady(ctx context.Context, s *stack, c component) error {
	deadline := time.Now().Add(s.opts.readyTimeout)
	for {
		checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last := c.check(checkCtx, s)
		cancel()
		if last.Healthy {
			logf("%s ready: %s", c.name(), last.Detail)
			return nil
		}
		for _, p := range c.processes(s) {
			if _, ok := s.running(p); !ok {
				return fmt.Errorf("%s: process %s exited; see %s", c.name(), p, s.logFile(p))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s; see %s", c.name(), s.opts.readyTimeout, last.Detail, strings.Join(logPaths(s, c), ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func logPaths(s *stack, c component) []string {
	var paths []string
	for _, p := range c.processes(s) {
		paths = append(paths, s.logFile(p))
	}
	return paths
}

// down stops the components in reverse start order: the worker first, so
// that its activities finish while Kafka, Flink and Temporal still run.
func down(s *stack) error {
	var errs []error
	for _, step := range stopPlan(s) {
		if err := s.stop(step.process, step.grace); err != nil {
			errs = append(errs, err)
		}
	}
	if len(s.opts.only) == 0 {
		// TaskManagers beyond the recorded count, from an earlier up with a larger count.
		stray, _ := filepath.Glob(filepath.Join(s.dir, "run", "*.pid"))
		for _, pidFile := range stray {
			if err := s.stop(strings.TrimSuffix(filepath.Base(pidFile), ".pid"), defaultStopGrace); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(s.opts.only) == 0 {
		// A full down forgets the options, so the next up starts from its flags.
		if err := removeIfExists(s.optionsFile()); err != nil {
			return err
		}
		logf("stack stopped")
	}
	return nil
}

// stopStep is one process for down to stop.
type stopStep struct {
	process string
	grace   time.Duration // between SIGTERM and SIGKILL
}

// stopPlan lists the processes down stops, in order.
func stopPlan(s *stack) []stopStep {
	list := components(s)
	if len(s.opts.only) == 0 {
		// An earlier up may have started these even if this command was not
		// told (options lost, or the worker, which is never remembered).
		for _, c := range optionalComponents() {
			if !containsComponent(list, c.name()) {
				list = append(list, c)
			}
		}
	}
	var plan []stopStep
	for i := len(list) - 1; i >= 0; i-- {
		procs := list[i].processes(s)
		for j := len(procs) - 1; j >= 0; j-- {
			plan = append(plan, stopStep{process: procs[j], grace: stopGrace(list[i])})
		}
	}
	return plan
}

func containsComponent(list []component, name string) bool {
	for _, c := range list {
		if c.name() == name {
			return true
		}
	}
	return false
}

// componentStatus is one entry of `status --json`.
type componentStatus struct {
	health.Result
	State     string         `json:"state"` // "up", "down" or "exposed"
	Processes map[string]int `json:"rss_mib,omitempty"`
	// Exposed lists the component's listeners bound beyond loopback; any
	// makes the state "exposed", since the stack has no authentication
	// of its own to stand between them and the network.
	Exposed []string `json:"non_loopback_listeners,omitempty"`
}

func status(ctx context.Context, s *stack, asJSON bool, stdout io.Writer) error {
	list := components(s)
	out := map[string]componentStatus{}
	allUp := true
	for _, c := range list {
		checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res := c.check(checkCtx, s)
		cancel()
		st := componentStatus{Result: res, State: "down", Processes: map[string]int{}}
		for _, l := range s.exposedListeners(c.processes(s)) {
			st.Exposed = append(st.Exposed, l.String())
		}
		switch {
		case len(st.Exposed) > 0:
			st.State = "exposed"
			st.Detail = "listens beyond loopback: " + strings.Join(st.Exposed, ", ") + "; " + st.Detail
			allUp = false
		case res.Healthy:
			st.State = "up"
		default:
			allUp = false
		}
		for _, p := range c.processes(s) {
			if rss, ok := s.rssMiB(p); ok {
				st.Processes[p] = rss
			}
		}
		out[c.name()] = st
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%-14s %s\n", "profile", s.opts.profile)
		for _, c := range list {
			st := out[c.name()]
			total := 0
			for _, rss := range st.Processes {
				total += rss
			}
			fmt.Fprintf(stdout, "%-14s %-7s %6d MiB  %s\n", c.name(), st.State, total, st.Detail)
		}
	}
	if !allUp {
		return errors.New("some components are down or listen beyond loopback")
	}
	return nil
}

func printSummary(s *stack, stdout io.Writer) {
	a := localstack.FromEnv()
	fmt.Fprintf(stdout, `
flowproof local stack is ready (%s, %d CPUs, profile %s)
  Kafka bootstrap     %s
  Flink UI / REST     %s
  Flink SQL Gateway   %s
  Temporal            %s (namespace %s)
  Temporal UI         %s
  Token service       %s
  HTTP endpoint       %s
  Redis (its store)   %s (password in %s)
  Data and logs       %s
`, runtime.GOOS, runtime.NumCPU(), s.opts.profile, strings.Join(a.KafkaBrokers, ","), redact.URL(a.FlinkURL), redact.URL(a.SQLGatewayURL),
		a.TemporalAddress, a.TemporalNamespace, redact.URL(a.TemporalUIURL), redact.URL(a.TokenURL), redact.URL(a.EndpointURL),
		redisAddr(), localstack.RedisPasswordFile(s.dir), s.dir)
	if s.secure() {
		fmt.Fprintf(stdout, "  Kafka security      SASL_SSL, SCRAM-SHA-512 as %s, CA %s\n", kafkaClientUser, s.certs().caCert())
		fmt.Fprintln(stdout, "  Client settings     eval \"$(bin/stackctl env)\"")
	}
	if s.opts.withPrometheus {
		fmt.Fprintf(stdout, "  Prometheus          http://127.0.0.1:%d\n", localstack.PrometheusPort)
	}
	if pid, ok := s.running(workerProcess); ok {
		fmt.Fprintf(stdout, "  Worker              pid %d on task queue %s, log %s\n", pid, localstack.TaskQueue, s.logFile(workerProcess))
	}
}

func logs(s *stack, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		matches, _ := filepath.Glob(filepath.Join(s.dir, "logs", "*.log"))
		for _, m := range matches {
			fmt.Fprintln(stdout, m)
		}
		return nil
	}
	raw, err := os.ReadFile(s.logFile(args[0]))
	if err != nil {
		return fmt.Errorf("no log for %q: %w", args[0], err)
	}
	const tail = 64 << 10
	if len(raw) > tail {
		raw = raw[len(raw)-tail:]
	}
	_, err = stdout.Write(raw)
	return err
}
