package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/procfs"

	"github.com/flowproof/flowproof/internal/localstack"
)

// A pid alone does not name a process: once the process exits, the kernel
// may hand its pid to any later one. A pid file therefore also records the
// process's start time (field 22 of /proc/<pid>/stat, clock ticks after
// boot), and a process counts as the stack's only while both match.
//
// Pid files are "<pid> <start ticks>\n" (localstack.PIDFile). Files
// written before the start time was recorded hold only "<pid>\n"; for
// those the process must have started shortly before the file was written
// (legacyStartWindow).

// pidRecord is the content of a pid file.
type pidRecord struct {
	pid        int
	startTicks uint64    // 0 in a legacy file
	written    time.Time // the file's modification time
}

// legacyStartWindow bounds how long before a legacy pid file was written
// its process may have started: stackctl writes the file right after the
// fork, and the start time read back from /proc is exact to about a second.
const legacyStartWindow = 30 * time.Second

// errNotRunning means the pid file is missing or its process has exited.
var errNotRunning = errors.New("not running")

// staleError means the pid file's pid now belongs to another process.
type staleError struct {
	file   string
	pid    int
	reason string
}

func (e *staleError) Error() string {
	return fmt.Sprintf("stale pid file %s: pid %d is another process now (%s)", e.file, e.pid, e.reason)
}

// writePidFile records pid and its start time. The file appears whole
// (written aside, then renamed), so that a concurrent stackctl never reads
// half of it and takes it for a damaged one.
func writePidFile(path string, pid int) error {
	stat, err := procStat(pid)
	if err != nil {
		return fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	content := fmt.Sprintf("%d %d\n", pid, stat.Starttime)
	partial := path + ".partial"
	if err := os.WriteFile(partial, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(partial, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

func readPidFile(path string) (pidRecord, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return pidRecord{}, errNotRunning
	}
	if err != nil {
		return pidRecord{}, fmt.Errorf("read pid file: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return pidRecord{}, fmt.Errorf("stat pid file: %w", err)
	}
	f, err := localstack.ParsePIDFile(path, raw)
	if err != nil {
		return pidRecord{}, err
	}
	return pidRecord{pid: f.PID, startTicks: f.StartTicks, written: info.ModTime()}, nil
}

// findProcess returns the live process that the pid file at path names:
// errNotRunning when there is none, a *staleError when the pid belongs to
// a process other than the one that was recorded.
func findProcess(path string) (procfs.ProcStat, error) {
	rec, err := readPidFile(path)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	stat, err := procStat(rec.pid)
	if err != nil {
		return procfs.ProcStat{}, errNotRunning
	}
	// A zombie has exited; only its parent's wait is missing.
	if stat.State == "Z" {
		return procfs.ProcStat{}, errNotRunning
	}
	if reason := rec.mismatch(stat); reason != "" {
		return procfs.ProcStat{}, &staleError{file: path, pid: rec.pid, reason: reason}
	}
	return stat, nil
}

// mismatch says why stat is not the process rec was written for, or "" if
// it is.
func (rec pidRecord) mismatch(stat procfs.ProcStat) string {
	if rec.startTicks != 0 {
		if stat.Starttime != rec.startTicks {
			return fmt.Sprintf("started at tick %d, recorded %d", stat.Starttime, rec.startTicks)
		}
		return ""
	}
	startSeconds, err := stat.StartTime()
	if err != nil {
		return fmt.Sprintf("start time unknown: %v", err)
	}
	started := time.Unix(0, int64(startSeconds*float64(time.Second)))
	// The boot time in /proc/stat has whole seconds, hence the second of slack.
	if started.After(rec.written.Add(time.Second)) || started.Before(rec.written.Add(-legacyStartWindow)) {
		return fmt.Sprintf("started %s, pid file written %s", started.Format(time.RFC3339), rec.written.Format(time.RFC3339))
	}
	return ""
}

// sameProcess reports whether the process with stat's pid is still the
// one stat describes and has not exited.
func sameProcess(stat procfs.ProcStat) bool {
	now, err := procStat(stat.PID)
	return err == nil && now.State != "Z" && now.Starttime == stat.Starttime
}

func procStat(pid int) (procfs.ProcStat, error) {
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return proc.Stat()
}
