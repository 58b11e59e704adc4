package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func testStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"run", "logs", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &stack{dir: dir, cacheDir: t.TempDir(), repoDir: t.TempDir(), opts: defaultOptions()}
}

// startUnrelated starts a process the stack knows nothing about, as a pid
// reused by the system would be; it is killed when the test ends.
func startUnrelated(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// alive checks a child of the test: signal 0 reaches it and it has not
// become a zombie.
func alive(t *testing.T, pid int) bool {
	t.Helper()
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := procStat(pid)
	return err == nil && stat.State != "Z"
}

func TestStopLeavesAProcessWithAnotherStartTimeAlone(t *testing.T) {
	s := testStack(t)
	victim := startUnrelated(t)
	pid := victim.Process.Pid
	stat, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	// The pid file of a stack process that exited, whose pid the system
	// then gave to victim.
	writeFile(t, s.pidFile("kafka-1"), fmt.Sprintf("%d %d\n", pid, stat.Starttime-1))

	if _, ok := s.running("kafka-1"); ok {
		t.Error("running: a process with another start time counts as the stack's")
	}
	if err := s.stop("kafka-1", time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !alive(t, pid) {
		t.Fatal("stop signalled a process that the pid file did not record")
	}
	if _, err := os.Stat(s.pidFile("kafka-1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale pid file still there (stat: %v)", err)
	}
}

func TestStopLeavesAProcessStartedLongBeforeALegacyPidFileAlone(t *testing.T) {
	s := testStack(t)
	victim := startUnrelated(t)
	pid := victim.Process.Pid
	// A pid file without start time, written an hour after victim started:
	// its own process has exited since and victim only holds the pid now.
	path := s.pidFile("temporal")
	writeFile(t, path, strconv.Itoa(pid)+"\n")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}

	if _, ok := s.running("temporal"); ok {
		t.Error("running: a process started long before the legacy pid file counts as the stack's")
	}
	if err := s.stop("temporal", time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !alive(t, pid) {
		t.Fatal("stop signalled a process that the legacy pid file did not record")
	}
}

func TestLegacyPidFileWrittenRightAfterItsProcessStartedCounts(t *testing.T) {
	s := testStack(t)
	cmd := startUnrelated(t)
	writeFile(t, s.pidFile("endpoint"), strconv.Itoa(cmd.Process.Pid)+"\n")
	if pid, ok := s.running("endpoint"); !ok || pid != cmd.Process.Pid {
		t.Fatalf("running = %d, %v; want %d, true", pid, ok, cmd.Process.Pid)
	}
}

func TestStartRecordsStartTimeAndStopEndsTheProcessGroup(t *testing.T) {
	s := testStack(t)
	// A shell whose child would outlive it if only the shell were signalled.
	p := process{name: "token-service", argv: []string{"sh", "-c", "sleep 60 & wait"}}
	if err := s.start(p); err != nil {
		t.Fatal(err)
	}
	pid, ok := s.running(p.name)
	if !ok {
		t.Fatal("not running after start")
	}
	rec, err := readPidFile(s.pidFile(p.name))
	if err != nil {
		t.Fatal(err)
	}
	stat, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if rec.pid != pid || rec.startTicks != stat.Starttime {
		t.Errorf("pid file = %+v; want pid %d, start %d", rec, pid, stat.Starttime)
	}
	if stat.PGRP != pid {
		t.Errorf("process group %d; want its own (%d)", stat.PGRP, pid)
	}

	if err := s.start(p); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.running(p.name); again != pid {
		t.Errorf("second start replaced pid %d by %d; want it left alone", pid, again)
	}

	if err := s.stop(p.name, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The shell's child got the same SIGTERM; it may take a moment to be
	// reaped by init.
	deadline := time.Now().Add(5 * time.Second)
	for err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH); err = syscall.Kill(-pid, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has members after stop (kill 0: %v)", pid, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(s.pidFile(p.name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there after stop (stat: %v)", err)
	}
}

func TestStopKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	s := testStack(t)
	p := process{name: "stubborn", argv: []string{"sh", "-c", `trap "" TERM; echo ready; sleep 60 & wait`}}
	if err := s.start(p); err != nil {
		t.Fatal(err)
	}
	// The log's header line quotes the command, "echo ready" included.
	waitForLog(t, s.logFile(p.name), "\nready\n")
	began := time.Now()
	if err := s.stop(p.name, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("stop took %s; want it to wait the grace period before SIGKILL", took)
	}
	if _, ok := s.running(p.name); ok {
		t.Error("still running after stop")
	}
}

func TestZombieAndMissingPidFileAreNotRunning(t *testing.T) {
	s := testStack(t)
	if _, ok := s.running("nothing"); ok {
		t.Error("running without a pid file")
	}
	if err := s.stop("nothing", time.Second); err != nil {
		t.Errorf("stop without a pid file: %v", err)
	}

	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	if err := writePidFile(s.pidFile("zombie"), cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := procStat(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if stat.State == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never became a zombie (state %s)", stat.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := s.running("zombie"); ok {
		t.Error("a zombie counts as running")
	}
}

func TestMalformedPidFileIsNotRunningAndIsRemovedByStop(t *testing.T) {
	s := testStack(t)
	for _, content := range []string{"", "abc\n", "12 34 56\n", "-4\n", "12 x\n"} {
		writeFile(t, s.pidFile("bad"), content)
		if _, ok := s.running("bad"); ok {
			t.Errorf("pid file %q: running", content)
		}
		if err := s.stop("bad", time.Second); err != nil {
			t.Errorf("pid file %q: stop: %v", content, err)
		}
		if _, err := os.Stat(s.pidFile("bad")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file %q: still there after stop", content)
		}
	}
}

func TestRSSOfARunningProcess(t *testing.T) {
	s := testStack(t)
	cmd := startUnrelated(t)
	if err := writePidFile(s.pidFile("sleeper"), cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.rssMiB("sleeper"); !ok {
		t.Error("no RSS for a running process")
	}
	if _, ok := s.rssMiB("absent"); ok {
		t.Error("RSS for a process without pid file")
	}
}

func TestListensOnFindsTheSocketOfThisProcess(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	port := l.Addr().(*net.TCPAddr).Port
	if !listensOn(os.Getpid(), port) {
		t.Errorf("listensOn(self, %d) = false; want true", port)
	}
	other := startUnrelated(t)
	if listensOn(other.Process.Pid, port) {
		t.Errorf("listensOn(another process, %d) = true; want false", port)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitForLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if raw, err := os.ReadFile(path); err == nil && strings.Contains(string(raw), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never logged %q", path, want)
}

func TestProcessLogRedactsURLsOnTheCommandLine(t *testing.T) {
	s := testStack(t)
	p := process{name: "redact-probe", argv: []string{"sh", "-c", "sleep 30", "probe", "http://u:s3cret@127.0.0.1:1/?token=t0k"}}
	if err := s.start(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.stop(p.name, time.Second) })
	raw, err := os.ReadFile(s.logFile(p.name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "s3cret") || strings.Contains(string(raw), "t0k") || !strings.Contains(string(raw), "127.0.0.1:1") {
		t.Errorf("process log header %q: want the URL's credentials redacted", raw)
	}
}

func TestHTTPGetErrorsCarryNoCredentials(t *testing.T) {
	_, _, err := httpGet(t.Context(), "http://u:s3cret@127.0.0.1:1/-/ready?token=t0k")
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "t0k") {
		t.Errorf("httpGet error %v: want a failure without the credentials", err)
	}
}
