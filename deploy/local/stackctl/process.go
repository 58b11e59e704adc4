package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stack is the on-disk layout of one local stack: every component keeps its
// data under data/<name>, its log in logs/<name>.log and its pid in
// run/<name>.pid.
type stack struct {
	dir      string // FLOWPROOF_STACK_DIR
	cacheDir string // FLOWPROOF_CACHE_DIR
	repoDir  string // the flowproof checkout (for deploy/ files and go builds)
	opts     options
}

type options struct {
	taskManagers   int
	withPrometheus bool
	readyTimeout   time.Duration
	only           []string // component names; all when empty
}

func (s *stack) dataDir(name string) string { return filepath.Join(s.dir, "data", name) }
func (s *stack) logFile(name string) string { return filepath.Join(s.dir, "logs", name+".log") }
func (s *stack) pidFile(name string) string { return filepath.Join(s.dir, "run", name+".pid") }

// process is one OS process of a component (a Kafka node, a TaskManager, ...).
type process struct {
	name string   // unique in the stack: "kafka-1", "flink-taskmanager-2"
	argv []string // argv[0] is looked up in PATH
	env  []string // added to the inherited environment
	dir  string   // working directory; the stack dir when empty
}

// start launches p in its own session, detached from stackctl, with stdout and
// stderr appended to its log file. A process that is already running (by its
// pid file) is left alone, which makes `up` idempotent.
func (s *stack) start(p process) error {
	if pid, ok := s.running(p.name); ok {
		logf("%s already running (pid %d)", p.name, pid)
		return nil
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
	defer logOut.Close()
	fmt.Fprintf(logOut, "\n==== %s starting %s: %s\n", time.Now().Format(time.RFC3339), p.name, strings.Join(p.argv, " "))

	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Dir = p.dir
	if cmd.Dir == "" {
		cmd.Dir = s.dir
	}
	cmd.Stdout, cmd.Stderr = logOut, logOut
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start %s: %w (log: %s)", p.name, p.argv[0], err, s.logFile(p.name))
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(s.pidFile(p.name), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("%s: write pid file: %w", p.name, err)
	}
	// Reap the child if it exits while stackctl still runs, so that a process
	// that dies at once shows as not running instead of as a zombie.
	go func() { _ = cmd.Wait() }()
	logf("%s started (pid %d, log %s)", p.name, pid, s.logFile(p.name))
	return nil
}

// running reports the pid of a process of the stack that is alive.
func (s *stack) running(name string) (int, bool) {
	raw, err := os.ReadFile(s.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, alive(pid)
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie answers kill(0) but is gone for every purpose of ours.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// stop ends a process by its recorded pid: SIGTERM to its process group, then
// SIGKILL after grace. Only processes whose pid file this stack wrote are
// touched.
func (s *stack) stop(name string, grace time.Duration) error {
	pid, ok := s.running(name)
	if !ok {
		_ = os.Remove(s.pidFile(name))
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM) // the whole session: JVMs fork nothing, but scripts might
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if alive(pid) {
		logf("%s did not stop within %s; killing", name, grace)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(200 * time.Millisecond)
	}
	if alive(pid) {
		return fmt.Errorf("%s (pid %d) is still running", name, pid)
	}
	logf("%s stopped", name)
	return os.Remove(s.pidFile(name))
}

// rssMiB reads the resident memory of a running process of the stack.
func (s *stack) rssMiB(name string) (int, bool) {
	pid, ok := s.running(name)
	if !ok {
		return 0, false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, found := strings.CutPrefix(line, "VmRSS:"); found {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				return 0, false
			}
			return kb / 1024, true
		}
	}
	return 0, false
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stackctl: "+format+"\n", args...)
}
