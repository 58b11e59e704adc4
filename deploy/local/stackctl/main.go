// Command stackctl runs flowproof's local stack from real components: a
// 3-node Kafka cluster, a Flink session cluster with its SQL Gateway, the
// Temporal dev server with its UI, and the reference token service and HTTP
// endpoint.
//
//	stackctl up [--taskmanagers N] [--with-prometheus]   install, start, wait until ready
//	stackctl down                                        stop every process of the stack
//	stackctl status [--json]                             up/down per component
//	stackctl logs [component]                            log file paths, or one log's tail
//
// Everything binds to 127.0.0.1; data, logs and pid files live under
// FLOWPROOF_STACK_DIR, caches under FLOWPROOF_CACHE_DIR (see internal/localstack).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// component is one part of the stack. Components start in the order of
// components() and stop in reverse.
type component interface {
	name() string
	// install fetches or builds what the component needs into the cache; it is
	// a no-op when the cache already has it.
	install(ctx context.Context, s *stack) error
	// start writes configuration and starts the component's processes; those
	// already running are left alone.
	start(ctx context.Context, s *stack) error
	// check asks the running component whether it is really ready.
	check(ctx context.Context, s *stack) health.Result
	// processes names the component's OS processes (for down, status, memory).
	processes(s *stack) []string
}

func components(s *stack) []component {
	list := []component{
		kafka{},
		flink{},
		temporal{},
		refServices{},
	}
	if len(s.opts.only) == 0 {
		if s.opts.withPrometheus {
			list = append(list, prometheus{})
		}
		return list
	}
	// Naming a component selects it, Prometheus included.
	var picked []component
	for _, c := range append(list, prometheus{}) {
		for _, name := range s.opts.only {
			if c.name() == name {
				picked = append(picked, c)
			}
		}
	}
	return picked
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	s, err := newStack()
	if err != nil {
		fatal(err)
	}
	cmd, args := os.Args[1], os.Args[2:]
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	switch cmd {
	case "up":
		fs := flag.NewFlagSet("up", flag.ExitOnError)
		fs.IntVar(&s.opts.taskManagers, "taskmanagers", 3, "number of Flink TaskManagers")
		withPrometheus := fs.Bool("with-prometheus", false, "also run Prometheus (Debian package) scraping the stack; remembered by later commands")
		fs.DurationVar(&s.opts.readyTimeout, "timeout", 5*time.Minute, "how long to wait for each component to be ready")
		only := fs.String("only", "", "comma-separated components to act on (kafka,flink,temporal,refsvc,prometheus); all when empty")
		_ = fs.Parse(args)
		s.opts.only = splitNames(*only)
		s.opts.withPrometheus = s.opts.withPrometheus || *withPrometheus
		err = up(ctx, s)
	case "down":
		fs := flag.NewFlagSet("down", flag.ExitOnError)
		only := fs.String("only", "", "comma-separated components to stop; all when empty")
		_ = fs.Parse(args)
		s.opts.only = splitNames(*only)
		err = down(s)
	case "status":
		fs := flag.NewFlagSet("status", flag.ExitOnError)
		asJSON := fs.Bool("json", false, "print one JSON object keyed by component")
		only := fs.String("only", "", "comma-separated components to check; all when empty")
		_ = fs.Parse(args)
		s.opts.only = splitNames(*only)
		err = status(ctx, s, *asJSON)
	case "logs":
		err = logs(s, args)
	case "install":
		err = install(ctx, s)
	case "kafka-class":
		err = kafkaClass(ctx, s, args)
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fatal(err)
	}
}

func splitNames(s string) []string {
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: stackctl up [--taskmanagers N] [--with-prometheus] | down | status [--json] | logs [component] | install")
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "stackctl: %v\n", err)
	os.Exit(1)
}

func newStack() (*stack, error) {
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	s := &stack{
		dir:      localstack.StackDir(),
		cacheDir: localstack.CacheDir(),
		repoDir:  repo,
		opts:     defaultOptions(),
	}
	// status and down must see the options up was given (TaskManager count,
	// Prometheus), so up records them.
	if raw, err := os.ReadFile(filepath.Join(s.dir, "run", "options.json")); err == nil {
		var saved savedOptions
		if json.Unmarshal(raw, &saved) == nil {
			s.opts.taskManagers, s.opts.withPrometheus = saved.TaskManagers, saved.WithPrometheus
		}
	}
	return s, nil
}

func defaultOptions() options {
	return options{taskManagers: 3, readyTimeout: 5 * time.Minute}
}

type savedOptions struct {
	TaskManagers   int  `json:"taskmanagers"`
	WithPrometheus bool `json:"with_prometheus"`
}

// repoRoot finds the flowproof checkout from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "deploy", "local", "stackctl")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run stackctl inside the flowproof checkout (no deploy/local/stackctl above %s)", dir)
		}
	}
}

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

func up(ctx context.Context, s *stack) error {
	began := time.Now()
	if s.opts.taskManagers < 1 {
		return fmt.Errorf("--taskmanagers must be at least 1, got %d", s.opts.taskManagers)
	}
	for _, dir := range []string{"data", "logs", "run"} {
		if err := os.MkdirAll(filepath.Join(s.dir, dir), 0o755); err != nil {
			return err
		}
	}
	saved, _ := json.Marshal(savedOptions{TaskManagers: s.opts.taskManagers, WithPrometheus: s.opts.withPrometheus})
	if err := os.WriteFile(filepath.Join(s.dir, "run", "options.json"), saved, 0o644); err != nil {
		return err
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
	return printSummary(s)
}

func waitReady(ctx context.Context, s *stack, c component) error {
	deadline := time.Now().Add(s.opts.readyTimeout)
	var last health.Result
	for {
		checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last = c.check(checkCtx, s)
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

func down(s *stack) error {
	list := components(s)
	// Prometheus may have been started by an earlier up even if options were lost.
	if !s.opts.withPrometheus && len(s.opts.only) == 0 {
		list = append(list, prometheus{})
	}
	var errs []error
	for i := len(list) - 1; i >= 0; i-- {
		procs := list[i].processes(s)
		for j := len(procs) - 1; j >= 0; j-- {
			if err := s.stop(procs[j], 30*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// TaskManagers beyond the recorded count, from an earlier up with a larger count.
	stray, _ := filepath.Glob(filepath.Join(s.dir, "run", "*.pid"))
	if len(s.opts.only) > 0 {
		stray = nil
	}
	for _, pidFile := range stray {
		if err := s.stop(strings.TrimSuffix(filepath.Base(pidFile), ".pid"), 30*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(s.opts.only) == 0 {
		// A full down forgets the options, so the next up starts from its flags.
		_ = os.Remove(filepath.Join(s.dir, "run", "options.json"))
		logf("stack stopped")
	}
	return nil
}

// componentStatus is one entry of `status --json`.
type componentStatus struct {
	health.Result
	State     string         `json:"state"` // "up" or "down"
	Processes map[string]int `json:"rss_mib,omitempty"`
}

func status(ctx context.Context, s *stack, asJSON bool) error {
	out := map[string]componentStatus{}
	allUp := true
	for _, c := range components(s) {
		checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res := c.check(checkCtx, s)
		cancel()
		st := componentStatus{Result: res, State: "down", Processes: map[string]int{}}
		if res.Healthy {
			st.State = "up"
		} else {
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
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, c := range components(s) {
			st := out[c.name()]
			total := 0
			for _, rss := range st.Processes {
				total += rss
			}
			fmt.Printf("%-14s %-4s %6d MiB  %s\n", c.name(), st.State, total, st.Detail)
		}
	}
	if !allUp {
		return errors.New("some components are down")
	}
	return nil
}

func printSummary(s *stack) error {
	a := localstack.Default()
	fmt.Printf(`
flowproof local stack is ready (%s, %d CPUs)
  Kafka bootstrap     %s
  Flink UI / REST     %s
  Flink SQL Gateway   %s
  Temporal            %s (namespace %s)
  Temporal UI         %s
  Token service       %s
  HTTP endpoint       %s
  Data and logs       %s
`, runtime.GOOS, runtime.NumCPU(), strings.Join(a.KafkaBrokers, ","), a.FlinkURL, a.SQLGatewayURL,
		a.TemporalAddress, a.TemporalNamespace, a.TemporalUIURL, a.TokenURL, a.EndpointURL, s.dir)
	if s.opts.withPrometheus {
		fmt.Printf("  Prometheus          http://127.0.0.1:%d\n", localstack.PrometheusPort)
	}
	return nil
}

func logs(s *stack, args []string) error {
	if len(args) == 0 {
		matches, _ := filepath.Glob(filepath.Join(s.dir, "logs", "*.log"))
		for _, m := range matches {
			fmt.Println(m)
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
	_, err = os.Stdout.Write(raw)
	return err
}
