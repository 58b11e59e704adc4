package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/redact"
)

// process is one OS process of a component (a Kafka node, a TaskManager, ...).
type process struct {
	name string   // unique in stack: "kafka-1", "flink-taskmanager-2"
	argv []string // argv[0] is looked up in PATH
	// env is the process's own variables. Of stackctl's environment it
	// gets only baseEnvironment and the variables inherit names.
	env     []string
	inherit []string // names, or prefixes ending in "*"
	// withhold are names inherit would pass on that the process must not
	// get: another profile's client settings left in stackctl's shell.
	withhold []string
	dir      string // working directory; the stack dir when empty
	// user runs the process as another system user (PostgreSQL refuses
	// to run as root); stackctl's own user when nil.
	user *syscall.Credential
}

// baseEnvironment is what every process of the stack gets from stackctl's
// environment: where programs are, the home and temp dirs, the locale and
// time zone, and the JVM to use. Anything else (a developer's tokens,
// cloud credentials, another tool's settings) stays out.
var baseEnvironment = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "JAVA_HOME"}

// environment builds p's environment from parent (stackctl's): the base,
// what p inherits, then p's own variables, which win. The endpoint's admin
// token is never inherited: only the endpoint gets it, as its own.
func (p process) environment(parent []string) []string {
	var env []string
	for _, kv := range parent {
		name, _, _ := strings.Cut(kv, "=")
		if name == endpointapi.EnvAdminToken || slices.Contains(p.withhold, name) {
			continue
		}
		if slices.Contains(baseEnvironment, name) || p.inherits(name) {
			env = append(env, kv)
		}
	}
	return append(env, p.env...)
}

func (p process) inherits(name string) bool {
	for _, pattern := range p.inherit {
		if prefix, ok := strings.CutSuffix(pattern, "*"); (ok && strings.HasPrefix(name, prefix)) || pattern == name {
			return true
		}
	}
	return false
}

// start launches p in its own session, detached from stackctl, with stdout and
// stderr appended to its log file. A process that is already running (by its
// pid file) is left alone, which makes `up` idempotent.
func (s *stack) start(p process) error {
	stat, err := findProcess(s.pidFile(p.name))
	if err == nil {
		logf("%s already running (pid %d)", p.name, stat.PID)
		return nil
	}
	if !errors.Is(err, errNotRunning) {
		logf("%s: %v; starting a new one", p.name, err)
	}
	for _, dir := range []string{filepath.Dir(s.logFile(p.name)), filepath.Dir(s.pidFile(p.name))} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	logOut, err := os.OpenFile(s.logFile(p.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.name, err)
	}
	// The child holds its own copy of the descriptor.
	defer func() { _ = logOut.Close() }()
	fmt.Fprintf(logOut, "\n==== %s starting %s: %s\n", time.Now().Format(time.RFC3339), p.name, redact.Text(strings.Join(p.argv, " ")))

	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = p.environment(os.Environ())
	cmd.Dir = p.dir
	if cmd.Dir == "" {
		cmd.Dir = s.dir
	}
	cmd.Stdout, cmd.Stderr = logOut, logOut
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: p.user}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start %s: %w (log: %s)", p.name, p.argv[0], err, s.logFile(p.name))
	}
	pid := cmd.Process.Pid
	if err := writePidFile(s.pidFile(p.name), pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	// Reap the child if it exits while stackctl still runs, so that a process
	// that dies at once shows as not running instead of as a zombie.
	go func() { _ = cmd.Wait() }()
	logf("%s started (pid %d, log %s)", p.name, pid, s.logFile(p.name))
	return nil
}

// running reports the pid of a process of the stack that is alive and is
// the one its pid file recorded.
func (s *stack) running(name string) (int, bool) {
	stat, err := findProcess(s.pidFile(name))
	if err != nil {
		return 0, false
	}
	return stat.PID, true
}

// stop ends a process of the stack: SIGTERM, then SIGKILL after grace. Only
// the process its pid file recorded is signalled; a pid that now belongs
// to another process is left alone and the stale pid file removed.
func (s *stack) stop(name string, grace time.Duration) error {
	stat, err := findProcess(s.pidFile(name))
	if err != nil {
		if !errors.Is(err, errNotRunning) {
			logf("%s: %v; not signalling it", name, err)
		}
		return removeIfExists(s.pidFile(name))
	}
	signalProcess(stat, syscall.SIGTERM)
	if !waitExit(stat, grace) {
		logf("%s did not stop within %s; killing", name, grace)
		signalProcess(stat, syscall.SIGKILL)
		if !waitExit(stat, 5*time.Second) {
			return fmt.Errorf("%s (pid %d) is still running", name, stat.PID)
		}
	}
	logf("%s stopped", name)
	return removeIfExists(s.pidFile(name))
}

// signalProcess sends sig to the process stat describes, if it is still
// that process, and to its whole process group when it leads one (start
// runs every process in a session of its own, so that scripts' children go
// with it).
func signalProcess(stat procfs.ProcStat, sig syscall.Signal) {
	if !sameProcess(stat) {
		return
	}
	if stat.PGRP == stat.PID {
		_ = syscall.Kill(-stat.PID, sig)
		return
	}
	_ = syscall.Kill(stat.PID, sig)
}

// waitExit reports whether the process stat describes exits within timeout.
func waitExit(stat procfs.ProcStat, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for sameProcess(stat) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// rssMiB reads the resident memory of a running process of the stack.
func (s *stack) rssMiB(name string) (int, bool) {
	stat, err := findProcess(s.pidFile(name))
	if err != nil {
		return 0, false
	}
	return stat.ResidentMemory() >> 20, true
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stackctl: "+format+"\n", args...)
}

// quickJITOptions compile with C1 alone, the JIT compiler that compiles
// fast, not C2, the one that makes the fastest code but takes long to:
// the local stack's JVMs start cold for each make demo, make test and
// drill and live for minutes. In a fresh 1,000,000-message run each
// broker's C2 thread took 18 of its 45 CPU s (80 of the stack's 260 CPU s
// went to C2), while its request handlers took 13; side by side on fresh
// stacks, C1 alone cut Kafka from 179-253 to 112-158 CPU s a run
// (docs/performance.md, "JIT compilation on a fresh stack"). The
// TaskManagers keep C2 (at hotC2Options' thresholds): their per-record
// code runs long enough for it to pay (Flink took 96-101 CPU s with C1
// alone against 69-79 with C2).
var quickJITOptions = []string{"-XX:TieredStopAtLevel=1"}

// hotC2Options leave to C2 only methods three times as hot as HotSpot's
// defaults ask (invocations and loop iterations counted while they run as
// C1 code); the rest stays C1 code. The TaskManager's per-record code
// reaches those counts within a second of a run and still gets C2's code,
// while the code each job runs a few thousand times (deployment,
// checkpoints, the connectors' per-batch paths) is no longer compiled
// twice. On fresh stacks, side by side, it cut the TaskManager's compiler
// threads from 16-20 to 11-12 CPU s and Flink from 50-58 to 46-49 CPU s
// a run; ten times the defaults compiled less but ran slower code, no
// better in all (docs/performance.md, "JIT compilation on a fresh stack").
// The brokers keep C1 alone: with C2 even at ten times the defaults their
// compiler threads took 33-44 CPU s a run.
var hotC2Options = []string{
	"-XX:Tier4InvocationThreshold=15000", "-XX:Tier4MinInvocationThreshold=1800",
	"-XX:Tier4CompileThreshold=45000", "-XX:Tier4BackEdgeThreshold=120000",
}

// throughputGCOptions collect garbage with the parallel collector, in
// short stop-the-world pauses, instead of G1, HotSpot's default on a
// machine with 2 CPUs, whose concurrent marking, refinement threads and
// write barriers cost CPU all the time the JVM runs. On the local stack
// the CPU is what is scarce and a pause of a few milliseconds does not
// matter: on fresh stacks, side by side, the brokers on it took 77-97
// CPU s a 1,000,000-message run against G1's 90-109, less in each of six
// pairs, and Flink 49-50 against 51-66 with the TaskManager on it too
// (docs/performance.md, "Garbage collection: the parallel collector").
// The JobManager and the SQL Gateway keep G1: they idle most of a run.
var throughputGCOptions = []string{"-XX:+UseParallelGC"}

// lessGCEnvironment lets the stack's Go servers (Temporal's dev server and
// the worker) grow their heaps to five times what is live before each
// collection instead of twice (GOGC=400): fewer collections, less CPU,
// more memory. On fresh stacks, side by side, the worker took 21.4 CPU s a
// 1,000,000-message run against 24.4-27.4 and Temporal 12.7-14.1 against
// 14.7-16.6, while their peak RSS rose from 1.1-1.3 GiB to 2.0-2.9 GiB and
// from 187 to 312 MiB (docs/performance.md, "Garbage collection: the
// parallel collector"). The worker's soft memory limit bounds that peak,
// which Verify sets: as the heap nears it, the collector runs as often as
// it must.
var lessGCEnvironment = []string{"GOGC=400"}

// workerMemoryLimit is the worker's soft memory limit (GOMEMLIMIT).
const workerMemoryLimit = "GOMEMLIMIT=1536MiB"
