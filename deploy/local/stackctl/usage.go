package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// `stackctl usage` reads what the stack's processes have cost so far: CPU
// seconds, resident and peak resident memory, each process identified
// through its pid file as everywhere else in stackctl. A snapshot saved
// with --json and handed back with --since turns two snapshots into the
// cost of what ran between them (usage_report.go).

// Process states in a snapshot.
const (
	stateRunning    = "running"
	stateNotRunning = "not running"
	stateStale      = "stale pid file"
)

// usageSnapshot is what `usage --json` prints and `usage --since` reads.
type usageSnapshot struct {
	TakenAt time.Time `json:"taken_at"`
	// PeaksReset is set when taking the snapshot reset every process's
	// peak RSS (--reset-peak): a later snapshot's peaks are then the peaks
	// since this one, not since each process started.
	PeaksReset bool           `json:"peaks_reset"`
	Machine    machineUsage   `json:"machine"`
	Processes  []processUsage `json:"processes"`
	// KafkaRequests are each broker's request counts since it started
	// (kafkarequests.go); KafkaRequestsError says why some are missing.
	KafkaRequests      map[string]brokerRequests `json:"kafka_requests,omitempty"`
	KafkaRequestsError string                    `json:"kafka_requests_error,omitempty"`
}

// machineUsage is the whole machine's CPU time since boot, so that a
// report can say how much of the machine the stack had.
type machineUsage struct {
	CPUs        int     `json:"cpus"`
	BusySeconds float64 `json:"busy_cpu_seconds"` // every state but idle and iowait
	// StealSeconds, of BusySeconds, is time the hypervisor ran something
	// else while this machine had work: on a shared virtual machine, the
	// one load that no process here shows.
	StealSeconds float64 `json:"steal_cpu_seconds"`
	IdleSeconds  float64 `json:"idle_cpu_seconds"`
	// FixedTaskCPUMillis is what the fixed task took (fixedTaskCPU); 0 in
	// snapshots saved before it was taken.
	FixedTaskCPUMillis float64    `json:"fixed_task_cpu_ms,omitempty"`
	LoadAverage        [3]float64 `json:"load_average"`
}

// processUsage is one process of the stack at the snapshot.
type processUsage struct {
	Component  string `json:"component"`
	Process    string `json:"process"`
	State      string `json:"state"`
	PID        int    `json:"pid,omitempty"`
	StartTicks uint64 `json:"start_ticks,omitempty"` // field 22 of /proc/PID/stat: with PID, the process's identity
	// CPUSeconds is user plus system time of all the process's threads,
	// live and exited, and of the children it has waited for.
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSMiB     float64 `json:"rss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"` // VmHWM
	// JITSeconds and GCSeconds are the CPU of a JVM's JIT compiler and
	// garbage collector threads alive at the snapshot (a thread's CPU
	// leaves /proc with it); zero for other processes.
	JITSeconds float64 `json:"jit_cpu_seconds,omitempty"`
	GCSeconds  float64 `json:"gc_cpu_seconds,omitempty"`
}

// stackProcess is a process of the stack with the component it belongs to.
type stackProcess struct{ component, process string }

// usageProcesses lists the processes usage looks at, in start order: every
// process of the core components, those of the optional ones that have a
// pid file, and any other pid file in the run dir (a component this
// stackctl does not know, such as one added by a newer version), as a
// component of its own.
func usageProcesses(s *stack) []stackProcess {
	var list []stackProcess
	seen := map[string]bool{}
	add := func(component, process string) {
		if !seen[process] {
			seen[process] = true
			list = append(list, stackProcess{component, process})
		}
	}
	for _, c := range coreComponents(s) {
		for _, p := range c.processes(s) {
			add(c.name(), p)
		}
	}
	for _, c := range optionalComponents() {
		for _, p := range c.processes(s) {
			if fileExists(s.pidFile(p)) {
				add(c.name(), p)
			}
		}
	}
	others, _ := filepath.Glob(filepath.Join(s.dir, "run", "*.pid"))
	slices.Sort(others)
	for _, f := range others {
		name := strings.TrimSuffix(filepath.Base(f), ".pid")
		add(name, name)
	}
	return list
}

// takeUsage reads every process of the stack; resetPeaks then resets each
// running process's peak RSS to its current RSS.
func takeUsage(s *stack, resetPeaks bool) (usageSnapshot, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return usageSnapshot{}, fmt.Errorf("open /proc: %w", err)
	}
	snap := usageSnapshot{TakenAt: time.Now().UTC(), PeaksReset: resetPeaks}
	if snap.Machine, err = readMachineUsage(fs); err != nil {
		return usageSnapshot{}, err
	}
	for _, sp := range usageProcesses(s) {
		u, err := readStackProcess(fs, s, sp)
		if err != nil {
			return usageSnapshot{}, err
		}
		if resetPeaks && u.State == stateRunning {
			if err := resetPeakRSS(u.PID); err != nil {
				return usageSnapshot{}, fmt.Errorf("%s: %w", sp.process, err)
			}
			u.PeakRSSMiB = u.RSSMiB
		}
		snap.Processes = append(snap.Processes, u)
	}
	return snap, nil
}

// readStackProcess reads one process named by its pid file; one that is
// not running, or whose pid is another process's now, is reported as such.
func readStackProcess(fs procfs.FS, s *stack, sp stackProcess) (processUsage, error) {
	u := processUsage{Component: sp.component, Process: sp.process, State: stateNotRunning}
	stat, err := findProcess(s.pidFile(sp.process))
	var stale *staleError
	switch {
	case errors.As(err, &stale):
		u.State = stateStale
		return u, nil
	case errors.Is(err, errNotRunning):
		return u, nil
	case err != nil:
		return u, fmt.Errorf("%s: %w", sp.process, err)
	}
	proc, err := fs.Proc(stat.PID)
	if err != nil {
		return u, nil // exited since findProcess
	}
	read, err := readProcessUsage(proc)
	// The pid may have been handed on between findProcess and the reads.
	if err != nil || read.StartTicks != stat.Starttime {
		return u, nil
	}
	read.JITSeconds, read.GCSeconds = readJVMThreadUsage(fs, stat.PID)
	read.Component, read.Process, read.State = sp.component, sp.process, stateRunning
	return read, nil
}

// readProcessUsage reads /proc/PID/stat and /proc/PID/status. stat's
// utime and stime of a process are the sums over its threads, the exited
// ones included.
func readProcessUsage(proc procfs.Proc) (processUsage, error) {
	stat, err := proc.Stat()
	if err != nil {
		return processUsage{}, fmt.Errorf("read /proc/%d/stat: %w", proc.PID, err)
	}
	status, err := proc.NewStatus()
	if err != nil {
		return processUsage{}, fmt.Errorf("read /proc/%d/status: %w", proc.PID, err)
	}
	ticks := float64(stat.UTime+stat.STime) + float64(stat.CUTime+stat.CSTime)
	return processUsage{
		PID:        stat.PID,
		StartTicks: stat.Starttime,
		CPUSeconds: ticks / userHZ,
		RSSMiB:     mib(status.VmRSS),
		PeakRSSMiB: mib(status.VmHWM),
	}, nil
}

// readJVMThreadUsage sums the CPU of a JVM's JIT compiler threads ("C1
// CompilerThread0", "C2 CompilerThread0") and GC threads ("GC Thread#0",
// "G1 Conc#0", "G1 Refine#0", ...), by the names HotSpot gives them; a
// process that is no JVM has none. A thread that exits in between is
// skipped.
func readJVMThreadUsage(fs procfs.FS, pid int) (jitSeconds, gcSeconds float64) {
	threads, err := fs.AllThreads(pid)
	if err != nil {
		return 0, 0
	}
	for _, t := range threads {
		stat, err := t.Stat()
		if err != nil {
			continue
		}
		seconds := float64(stat.UTime+stat.STime) / userHZ
		switch name := stat.Comm; {
		case strings.HasPrefix(name, "C1 Compiler"), strings.HasPrefix(name, "C2 Compiler"):
			jitSeconds += seconds
		case strings.HasPrefix(name, "GC Thread"), strings.HasPrefix(name, "G1 "):
			gcSeconds += seconds
		}
	}
	return jitSeconds, gcSeconds
}

// userHZ is the unit of /proc's CPU times, fixed at 100 for user space on
// Linux whatever the kernel's own tick rate (procfs assumes the same).
const userHZ = 100

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func readMachineUsage(fs procfs.FS) (machineUsage, error) {
	st, err := fs.Stat()
	if err != nil {
		return machineUsage{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	load, err := fs.LoadAvg()
	if err != nil {
		return machineUsage{}, fmt.Errorf("read /proc/loadavg: %w", err)
	}
	fixedTask, err := fixedTaskCPU()
	if err != nil {
		return machineUsage{}, err
	}
	c := st.CPUTotal
	cpus := len(st.CPU)
	if cpus == 0 {
		cpus = runtime.NumCPU()
	}
	return machineUsage{
		CPUs:               cpus,
		BusySeconds:        c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal,
		StealSeconds:       c.Steal,
		IdleSeconds:        c.Idle + c.Iowait,
		FixedTaskCPUMillis: float64(fixedTask) / float64(time.Millisecond),
		LoadAverage:        [3]float64{load.Load1, load.Load5, load.Load15},
	}, nil
}

// resetPeakRSS makes the process's peak RSS (VmHWM) its current RSS
// (proc(5), clear_refs "5"); nothing else about the process changes.
func resetPeakRSS(pid int) error {
	path := fmt.Sprintf("/proc/%d/clear_refs", pid)
	if err := os.WriteFile(path, []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}

func readUsageSnapshot(path string) (usageSnapshot, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return usageSnapshot{}, fmt.Errorf("read usage snapshot: %w", err)
	}
	var snap usageSnapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		return usageSnapshot{}, fmt.Errorf("usage snapshot %s: %w", path, err)
	}
	if snap.TakenAt.IsZero() {
		return usageSnapshot{}, fmt.Errorf("usage snapshot %s: no taken_at; write it with `stackctl usage --json`", path)
	}
	return snap, nil
}
