package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowproof/flowproof/internal/localstack"
)

func TestWrongKillAndStopCommandLinesExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"kill"},
		{"kill", "--json"},
		{"kill", "kafka-9"},
		{"kill", "kafka-1", "nope"},
		{"stop"},
		{"stop", "worker", "--grace"},
		{"stop", "worker", "--grace", "soon"},
		{"stop", "--grace", "-1s", "worker"},
		{"stop", "worker", "--bogus"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 {
			t.Errorf("%v: code %d; want 2 (stderr %q)", args, code, stderr)
		}
	}
}

// startStackProcess starts a process of the stack named name in the stack
// dir the command line will use.
func startStackProcess(t *testing.T, name, script string) *stack {
	t.Helper()
	s := testStack(t)
	t.Setenv(localstack.EnvStackDir, s.dir)
	p := process{name: name, argv: []string{"sh", "-c", script}}
	if err := s.start(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.stop(name, time.Second) })
	return s
}

// runHurt runs a kill or stop command line against the stack dir set by
// startStackProcess and decodes its --json output.
func runHurt(t *testing.T, args ...string) (code int, done []localstack.ProcessSignal, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	if err := json.Unmarshal(out.Bytes(), &done); err != nil {
		t.Fatalf("%v: stdout %q is no JSON array: %v (stderr %q)", args, out.String(), err, errOut.String())
	}
	return code, done, errOut.String()
}

func TestKillSIGKILLsTheProcessAndKeepsItsPidFile(t *testing.T) {
	// SIGTERM is ignored: only a SIGKILL ends it at once.
	s := startStackProcess(t, "kafka-2", `trap "" TERM; echo ready; sleep 60 & wait`)
	waitForLog(t, s.logFile("kafka-2"), "\nready\n")
	pid, _ := s.running("kafka-2")
	code, done, stderr := runHurt(t, "kill", "kafka-2", "--json")
	if code != 0 || len(done) != 1 {
		t.Fatalf("kill: code %d, %+v, stderr %q", code, done, stderr)
	}
	if got := done[0]; got.Process != "kafka-2" || got.PID != pid || got.Signal != "SIGKILL" || got.ExitedAfterMillis > 2000 {
		t.Errorf("kill reported %+v; want kafka-2, pid %d, SIGKILL, gone within 2s", got, pid)
	}
	if _, ok := s.running("kafka-2"); ok {
		t.Error("still running after kill")
	}
	if _, err := os.Stat(s.pidFile("kafka-2")); err != nil {
		t.Errorf("kill removed the pid file (%v); a crash leaves it", err)
	}
	// Killing it again finds nothing to kill: an error, not a silent pass.
	if code, done, _ := runHurt(t, "kill", "--json", "kafka-2"); code != 1 || len(done) != 0 {
		t.Errorf("second kill: code %d, %+v; want 1 and nothing killed", code, done)
	}
}

func TestStopReportsHowLongTheProcessTookToExit(t *testing.T) {
	// The process takes about half a second to exit after SIGTERM.
	s := startStackProcess(t, "worker", `trap "sleep 0.5; exit 0" TERM; echo ready; while :; do sleep 0.1; done`)
	waitForLog(t, s.logFile("worker"), "\nready\n")
	code, done, stderr := runHurt(t, "stop", "worker", "--grace", "10s", "--json")
	if code != 0 || len(done) != 1 {
		t.Fatalf("stop: code %d, %+v, stderr %q", code, done, stderr)
	}
	got := done[0]
	if got.Signal != "SIGTERM" || got.KilledAfterMillis != 0 || got.ExitedAfterMillis < 400 || got.ExitedAfterMillis > 5000 {
		t.Errorf("stop reported %+v; want SIGTERM, no SIGKILL, exit after about 500 ms", got)
	}
	if _, err := os.Stat(s.pidFile("worker")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there after stop (stat: %v)", err)
	}
}

func TestStopKillsAfterTheGraceAndSaysSo(t *testing.T) {
	s := startStackProcess(t, "endpoint", `trap "" TERM; echo ready; sleep 60 & wait`)
	waitForLog(t, s.logFile("endpoint"), "\nready\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"stop", "--grace", "300ms", "endpoint"}, &out, &errOut); code != 0 {
		t.Fatalf("stop: code %d, stderr %q", code, errOut.String())
	}
	if !strings.Contains(out.String(), "still running") || !strings.Contains(out.String(), "SIGKILL") {
		t.Errorf("stop printed %q; want it to say the grace ran out and SIGKILL followed", out.String())
	}
	if _, ok := s.running("endpoint"); ok {
		t.Error("still running after stop")
	}
}
