package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/flowproof/flowproof/workflows"
)

// usageReport is the cost of what ran between two snapshots.
type usageReport struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	WallSeconds float64   `json:"wall_seconds"`
	// PeaksSinceFrom says whether the peaks are those since From (the
	// first snapshot reset them) or since each process started.
	PeaksSinceFrom bool             `json:"peaks_since_from"`
	Components     []componentDelta `json:"components"`
	StackCPU       float64          `json:"stack_cpu_seconds"`
	Incomplete     bool             `json:"incomplete"` // a process restarted or stopped: StackCPU is a lower bound
	Machine        machineDelta     `json:"machine"`
	Run            *runOfReport     `json:"run,omitempty"`
	// KafkaRequests are what the brokers answered in between, by request
	// type; KafkaRequestsError says why they could not be told.
	KafkaRequests      []requestCount    `json:"kafka_requests,omitempty"`
	KafkaRequestsError string            `json:"kafka_requests_error,omitempty"`
	Processes          []processDelta    `json:"processes"`
	notRunning         map[string]string // process -> state at the end, for the text report
}

// componentDelta sums a component's processes.
type componentDelta struct {
	Component  string  `json:"component"`
	CPUSeconds float64 `json:"cpu_seconds"`
	JITSeconds float64 `json:"jit_cpu_seconds,omitempty"`
	GCSeconds  float64 `json:"gc_cpu_seconds,omitempty"`
	Share      float64 `json:"share"`        // of StackCPU
	PeakRSSMiB float64 `json:"peak_rss_mib"` // sum of its processes' peaks, which need not coincide
	Flagged    bool    `json:"flagged"`
}

// processDelta is one process between the snapshots. Note says why its
// figure is not simply the difference of the two.
type processDelta struct {
	Component  string  `json:"component"`
	Process    string  `json:"process"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// JITSeconds and GCSeconds are the part of CPUSeconds that a JVM's JIT
	// compiler and GC threads took (see processUsage).
	JITSeconds float64 `json:"jit_cpu_seconds,omitempty"`
	GCSeconds  float64 `json:"gc_cpu_seconds,omitempty"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Note       string  `json:"note,omitempty"`
	// Partial is set when some of the process's CPU in the interval could
	// not be read: it restarted or stopped in between.
	Partial bool `json:"partial,omitempty"`
}

// machineDelta is the whole machine over the interval.
type machineDelta struct {
	CPUs             int        `json:"cpus"`
	CapacitySeconds  float64    `json:"capacity_cpu_seconds"` // CPUs × wall time
	BusySeconds      float64    `json:"busy_cpu_seconds"`
	StealSeconds     float64    `json:"steal_cpu_seconds"` // of BusySeconds, taken by the hypervisor
	OtherCPUSeconds  float64    `json:"other_cpu_seconds"` // busy, but neither the stack's processes nor stolen
	LoadAverageStart [3]float64 `json:"load_average_start"`
	LoadAverageEnd   [3]float64 `json:"load_average_end"`
	// The fixed task's CPU ms at each end (fixedTaskCPU); 0 where a
	// snapshot lacks it.
	FixedTaskStartMillis float64 `json:"fixed_task_cpu_ms_start,omitempty"`
	FixedTaskEndMillis   float64 `json:"fixed_task_cpu_ms_end,omitempty"`
	// Pace is what `stackctl pace` sampled in between (--pace); nil
	// without it.
	Pace *paceSummary `json:"pace,omitempty"`
	// PaceError says why the samples could not be read.
	PaceError string `json:"pace_error,omitempty"`
}

// runOfReport is the pipeline run the interval covered, from its result.
type runOfReport struct {
	Status              string  `json:"status"`
	Messages            int64   `json:"messages"`
	Verified            int64   `json:"verified"`
	CPUMicrosPerMessage float64 `json:"cpu_micros_per_message"`
}

// diffUsage computes what happened between before and after. A process is
// matched by name; one whose pid or start time changed restarted, and only
// its new incarnation's CPU is known.
func diffUsage(before, after usageSnapshot) usageReport {
	r := usageReport{
		From:           before.TakenAt,
		To:             after.TakenAt,
		WallSeconds:    after.TakenAt.Sub(before.TakenAt).Seconds(),
		PeaksSinceFrom: before.PeaksReset,
		notRunning:     map[string]string{},
	}
	was := map[string]processUsage{}
	for _, p := range before.Processes {
		was[p.Process] = p
	}
	for _, now := range after.Processes {
		d, ok := processDeltaOf(was[now.Process], now)
		delete(was, now.Process)
		if !ok {
			r.notRunning[now.Process] = now.State
			continue
		}
		r.Processes = append(r.Processes, d)
	}
	// Processes the second snapshot no longer lists at all.
	for _, p := range before.Processes {
		if _, left := was[p.Process]; left {
			if d, ok := processDeltaOf(p, processUsage{Component: p.Component, Process: p.Process, State: stateNotRunning}); ok {
				r.Processes = append(r.Processes, d)
			}
		}
	}
	r.Components = sumComponents(r.Processes)
	for _, d := range r.Processes {
		r.StackCPU += d.CPUSeconds
		r.Incomplete = r.Incomplete || d.Partial
	}
	for i := range r.Components {
		if r.StackCPU > 0 {
			r.Components[i].Share = r.Components[i].CPUSeconds / r.StackCPU
		}
	}
	m := after.Machine
	r.Machine = machineDelta{
		CPUs:                 m.CPUs,
		CapacitySeconds:      float64(m.CPUs) * r.WallSeconds,
		BusySeconds:          m.BusySeconds - before.Machine.BusySeconds,
		StealSeconds:         m.StealSeconds - before.Machine.StealSeconds,
		LoadAverageStart:     before.Machine.LoadAverage,
		LoadAverageEnd:       m.LoadAverage,
		FixedTaskStartMillis: before.Machine.FixedTaskCPUMillis,
		FixedTaskEndMillis:   m.FixedTaskCPUMillis,
	}
	// The machine's and the processes' clocks tick apart; a few
	// hundredths either way are rounding, not other work.
	r.Machine.OtherCPUSeconds = max(0, r.Machine.BusySeconds-r.Machine.StealSeconds-r.StackCPU)
	var err error
	switch {
	case before.KafkaRequestsError != "":
		r.KafkaRequestsError = "at the first snapshot: " + before.KafkaRequestsError
	case after.KafkaRequestsError != "":
		r.KafkaRequestsError = "at the second snapshot: " + after.KafkaRequestsError
	default:
		if r.KafkaRequests, err = kafkaRequestsBetween(before.KafkaRequests, after.KafkaRequests); err != nil {
			r.KafkaRequestsError = err.Error()
		}
	}
	return r
}

// processDeltaOf is one process's share of the interval; ok is false when
// it ran at neither snapshot.
func processDeltaOf(before, after processUsage) (processDelta, bool) {
	// Every figure starts as the second snapshot's: all of a process that
	// started in between, and zeros for one that no longer runs.
	d := processDelta{Component: after.Component, Process: after.Process, CPUSeconds: after.CPUSeconds,
		JITSeconds: after.JITSeconds, GCSeconds: after.GCSeconds, PeakRSSMiB: after.PeakRSSMiB}
	ranBefore, ranAfter := before.State == stateRunning, after.State == stateRunning
	switch {
	case ranBefore && ranAfter && before.PID == after.PID && before.StartTicks == after.StartTicks:
		d.CPUSeconds -= before.CPUSeconds
		// A compiler thread HotSpot stopped while idle takes its CPU
		// along; never below zero.
		d.JITSeconds = max(0, d.JITSeconds-before.JITSeconds)
		d.GCSeconds = max(0, d.GCSeconds-before.GCSeconds)
	case ranBefore && ranAfter:
		d.Partial = true
		d.Note = fmt.Sprintf("restarted (pid %d, then %d): only the new process counted; the old one's CPU after the first snapshot is unknown", before.PID, after.PID)
	case ranAfter:
		d.Note = "started after the first snapshot: all its CPU counted"
	case ranBefore:
		d.Component = before.Component
		d.Partial = true
		d.Note = fmt.Sprintf("stopped after the first snapshot (pid %d, now %s): its CPU after the first snapshot is unknown", before.PID, after.State)
	default:
		return d, false
	}
	return d, true
}

// sumComponents groups processes by component, in the order they come.
func sumComponents(procs []processDelta) []componentDelta {
	var out []componentDelta
	index := map[string]int{}
	for _, p := range procs {
		i, ok := index[p.Component]
		if !ok {
			i = len(out)
			index[p.Component] = i
			out = append(out, componentDelta{Component: p.Component})
		}
		out[i].CPUSeconds += p.CPUSeconds
		out[i].JITSeconds += p.JITSeconds
		out[i].GCSeconds += p.GCSeconds
		out[i].PeakRSSMiB += p.PeakRSSMiB
		out[i].Flagged = out[i].Flagged || p.Note != ""
	}
	return out
}

// attachRun adds the run's message count and CPU per message.
func (r *usageReport) attachRun(result workflows.PipelineResult) {
	m := result.Metrics
	run := &runOfReport{Status: string(result.Status), Messages: m.Messages, Verified: m.Verified}
	if m.Messages > 0 {
		run.CPUMicrosPerMessage = r.StackCPU / float64(m.Messages) * 1e6
	}
	r.Run = run
}

func readPipelineResult(path string) (workflows.PipelineResult, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return workflows.PipelineResult{}, fmt.Errorf("read run result: %w", err)
	}
	var res workflows.PipelineResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return workflows.PipelineResult{}, fmt.Errorf("run result %s: %w", path, err)
	}
	return res, nil
}

func setupUsage(fs *flag.FlagSet, s *stack, stdout io.Writer) func(context.Context, []string) error {
	asJSON := fs.Bool("json", false, "print JSON: a snapshot (save it for --since), or with --since the report")
	since := fs.String("since", "", "a snapshot saved from `usage --json`: report the CPU and peak RSS spent since it")
	result := fs.String("result", "", "with --since: the run's PipelineResult (starter run --result-file), for CPU per message")
	pace := fs.String("pace", "", "with --since: the file `stackctl pace` wrote during the interval, for the cores' pace through it")
	resetPeak := fs.Bool("reset-peak", false, "reset each process's peak RSS to its current RSS, so a later --since reports the peak since this snapshot")
	return func(ctx context.Context, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if *result != "" && *since == "" {
			return usageError{fmt.Errorf("--result needs --since")}
		}
		if *pace != "" && *since == "" {
			return usageError{fmt.Errorf("--pace needs --since")}
		}
		now, err := takeUsage(s, *resetPeak)
		if err != nil {
			return err
		}
		// The plain table shows no request counts: ask the brokers only
		// for a snapshot that is kept or reported on.
		if *asJSON || *since != "" {
			if now.KafkaRequests, err = readKafkaRequests(ctx); err != nil {
				now.KafkaRequestsError = err.Error()
			}
		}
		if *since == "" {
			if *asJSON {
				return writeIndentedJSON(stdout, now)
			}
			printSnapshot(stdout, now)
			return nil
		}
		before, err := readUsageSnapshot(*since)
		if err != nil {
			return err
		}
		report := diffUsage(before, now)
		if *pace != "" {
			// The report stands without the samples: say why they are missing.
			summary, err := readPace(*pace, before.TakenAt, now.TakenAt)
			if err != nil {
				report.Machine.PaceError = err.Error()
			} else {
				report.Machine.Pace = &summary
			}
		}
		if *result != "" {
			res, err := readPipelineResult(*result)
			if err != nil {
				return err
			}
			report.attachRun(res)
		}
		if *asJSON {
			return writeIndentedJSON(stdout, report)
		}
		printUsageReport(stdout, report)
		return nil
	}
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printSnapshot shows each process's cost since it started.
func printSnapshot(w io.Writer, snap usageSnapshot) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "component\tprocess\tpid\tCPU s since start\tRSS MiB\tpeak RSS MiB\t")
	for _, p := range snap.Processes {
		if p.State != stateRunning {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t\t\t\n", p.Component, p.Process, p.State)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.0f\t%.0f\t\n", p.Component, p.Process, p.PID, p.CPUSeconds, p.RSSMiB, p.PeakRSSMiB)
	}
	_ = tw.Flush()
	l := snap.Machine.LoadAverage
	fmt.Fprintf(w, "machine: %d CPUs, load average %.2f %.2f %.2f\n", snap.Machine.CPUs, l[0], l[1], l[2])
}

// printUsageReport shows the report as the table `make demo` prints.
func printUsageReport(w io.Writer, r usageReport) {
	fmt.Fprintf(w, "\nCPU and memory of the stack from %s to %s UTC (%.0f s wall, %d CPUs)\n",
		r.From.Format("15:04:05"), r.To.Format("15:04:05"), r.WallSeconds, r.Machine.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "component\tprocess\t   CPU s\t  share\t  JIT s\t   GC s\tpeak RSS MiB")
	for _, c := range r.Components {
		mark := ""
		if c.Flagged {
			mark = " *"
		}
		fmt.Fprintf(tw, "%s%s\t\t%8.1f\t%6.1f%%\t%s\t%s\t%12.0f\n", c.Component, mark, c.CPUSeconds, 100*c.Share,
			threadSeconds(c.JITSeconds), threadSeconds(c.GCSeconds), c.PeakRSSMiB)
		procs := r.processesOf(c.Component)
		for _, p := range procs {
			if len(procs) > 1 || p.Process != c.Component {
				fmt.Fprintf(tw, "\t%s\t%8.1f\t%6.1f%%\t%s\t%s\t%12.0f\n", p.Process, p.CPUSeconds, 100*share(p.CPUSeconds, r.StackCPU),
					threadSeconds(p.JITSeconds), threadSeconds(p.GCSeconds), p.PeakRSSMiB)
			}
		}
	}
	bound := ""
	if r.Incomplete {
		bound = " (at least)"
	}
	var jit, gc float64
	for _, c := range r.Components {
		jit, gc = jit+c.JITSeconds, gc+c.GCSeconds
	}
	fmt.Fprintf(tw, "stack total%s\t\t%8.1f\t%6.1f%%\t%s\t%s\t\n", bound, r.StackCPU, 100.0, threadSeconds(jit), threadSeconds(gc))
	fmt.Fprintf(tw, "other processes\t\t%8.1f\t\t\t\t\n", r.Machine.OtherCPUSeconds)
	_ = tw.Flush()
	m := r.Machine
	fmt.Fprintf(w, "machine busy %.1f of %.0f CPU s (%.0f%%), of it %.1f s stolen by the hypervisor; load average %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end\n",
		m.BusySeconds, m.CapacitySeconds, 100*share(m.BusySeconds, m.CapacitySeconds), m.StealSeconds,
		m.LoadAverageStart[0], m.LoadAverageStart[1], m.LoadAverageStart[2], m.LoadAverageEnd[0], m.LoadAverageEnd[1], m.LoadAverageEnd[2])
	if m.FixedTaskStartMillis > 0 && m.FixedTaskEndMillis > 0 {
		fmt.Fprintf(w, "core speed: a fixed task (SHA-256 of %d MiB) took %.1f ms of one core's CPU at the start, %.1f ms at the end\n",
			fixedTaskBytes>>20, m.FixedTaskStartMillis, m.FixedTaskEndMillis)
	}
	switch {
	case m.PaceError != "":
		fmt.Fprintf(w, "core pace through the run: not read: %s\n", m.PaceError)
	case m.Pace != nil && m.Pace.Samples == 0:
		fmt.Fprintln(w, "core pace through the run: no samples between the snapshots")
	case m.Pace != nil:
		fmt.Fprintln(w, m.Pace.String())
	}
	if r.KafkaRequestsError != "" {
		fmt.Fprintf(w, "kafka requests through the run: not counted: %s\n", r.KafkaRequestsError)
	} else {
		var messages int64
		if r.Run != nil {
			messages = r.Run.Messages
		}
		fmt.Fprintln(w, kafkaRequestsLine(r.KafkaRequests, messages))
	}
	fmt.Fprintln(w, "JIT s, GC s: of the CPU s, what the JVMs' JIT compiler and garbage collector threads took")
	if r.PeaksSinceFrom {
		fmt.Fprintln(w, "peak RSS: the highest since the first snapshot; a component's is the sum of its processes' peaks")
	} else {
		fmt.Fprintln(w, "peak RSS: the highest since each process started; a component's is the sum of its processes' peaks")
	}
	for _, p := range r.Processes {
		if p.Note != "" {
			fmt.Fprintf(w, "* %s: %s\n", p.Process, p.Note)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.notRunning)) {
		if r.notRunning[name] == stateStale {
			fmt.Fprintf(w, "  %s: %s, not counted\n", name, stateStale)
		}
	}
	if r.Run != nil {
		fmt.Fprintf(w, "CPU per message end to end: %.0f µs%s (%.1f CPU s of the stack / %s messages; run %s, %s verified)\n",
			r.Run.CPUMicrosPerMessage, bound, r.StackCPU, commas(r.Run.Messages), r.Run.Status, commas(r.Run.Verified))
	}
}

// threadSeconds is a JIT or GC column's cell: blank for a process that
// is no JVM.
func threadSeconds(seconds float64) string {
	if seconds == 0 {
		return ""
	}
	return fmt.Sprintf("%7.1f", seconds)
}

func (r usageReport) processesOf(component string) []processDelta {
	var out []processDelta
	for _, p := range r.Processes {
		if p.Component == component {
			out = append(out, p)
		}
	}
	return out
}

func share(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return part / whole
}

// commas writes n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + commas(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
