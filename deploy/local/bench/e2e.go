package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowproof/flowproof/workflows"
)

// e2eComponents are what a pipeline run needs of the stack; the stage
// comparisons need only Kafka, Redis and the reference services.
var e2eComponents = []string{"kafka", "flink", "temporal", "redis", "refsvc", "worker"}

// e2eFigures is the one verified pipeline run of a benchmark and what the
// stack spent during it.
type e2eFigures struct {
	// skipped says why no run was made; the other fields are then empty.
	skipped string
	// failed says why the run did not count (it ran, but was not a
	// Succeeded run with every message verified); the summary shows it
	// and the benchmark exits non-zero.
	failed string

	workflowID string
	result     workflows.PipelineResult
	// window is the run's time from the start of production to the end of
	// verification: its whole time less the stages before production
	// (health check, topics, Flink jobs) and the cleanup after.
	window time.Duration

	usage      *e2eUsage
	usageError string
}

// e2eUsage is the part of `stackctl usage --since … --result … --json` the
// summary shows.
type e2eUsage struct {
	WallSeconds float64 `json:"wall_seconds"`
	Components  []struct {
		Component  string  `json:"component"`
		CPUSeconds float64 `json:"cpu_seconds"`
	} `json:"components"`
	StackCPU   float64 `json:"stack_cpu_seconds"`
	Incomplete bool    `json:"incomplete"`
	Machine    struct {
		CPUs            int     `json:"cpus"`
		CapacitySeconds float64 `json:"capacity_cpu_seconds"`
		BusySeconds     float64 `json:"busy_cpu_seconds"`
		OtherCPUSeconds float64 `json:"other_cpu_seconds"`
	} `json:"machine"`
	Run *struct {
		CPUMicrosPerMessage float64 `json:"cpu_micros_per_message"`
	} `json:"run"`
}

// rate is the verified messages over the window from the start of
// production to the end of verification.
func (e e2eFigures) rate() float64 {
	if e.window <= 0 {
		return 0
	}
	return float64(e.result.Metrics.Verified) / e.window.Seconds()
}

// productionToVerified is a run's time from the start of production to the
// end of verification, from its result alone: the stages run one after the
// other, so it is the run's total less the stages before production and the
// cleanup after it.
func productionToVerified(m workflows.Metrics) (time.Duration, error) {
	millis := m.TotalMillis
	var sawProduce, sawVerify bool
	for _, st := range m.Stages {
		switch st.Stage {
		case workflows.StageHealth, workflows.StagePrepare, workflows.StageFlink, workflows.StageCleanup:
			millis -= st.DurationMillis
		case "produce":
			sawProduce = true
		case workflows.StageVerify:
			sawVerify = true
		}
	}
	if !sawProduce || !sawVerify {
		return 0, fmt.Errorf("the run's stages %s lack produce or verify", stageNames(m.Stages))
	}
	if millis <= 0 {
		return 0, fmt.Errorf("the run's total of %d ms leaves %d ms for production to verification (stages %s)", m.TotalMillis, millis, stageNames(m.Stages))
	}
	return time.Duration(millis) * time.Millisecond, nil
}

func stageNames(stages []workflows.StageMetrics) string {
	var names []string
	for _, st := range stages {
		names = append(names, st.Stage)
	}
	return strings.Join(names, ",")
}

// stageRate is a stage's rate as the run measured it, 0 when it has none.
func stageRate(m workflows.Metrics, stage string) float64 {
	for _, st := range m.Stages {
		if st.Stage == stage {
			return st.PerSecond
		}
	}
	return 0
}

// checkCounted refuses a result that is not a verified run of every
// message: its rate would not be a rate of the pipeline.
func checkCounted(r workflows.PipelineResult, messages int) error {
	m := r.Metrics
	if r.Status != workflows.StatusSucceeded {
		return fmt.Errorf("run %s ended %s: %s", m.RunID, orUnknown(string(r.Status)), orUnknown(m.FailureMessage))
	}
	if m.Messages != int64(messages) || m.Verified != m.Messages || m.Produced != m.Messages || m.Delivered != m.Messages {
		return fmt.Errorf("run %s: %d messages, produced %d, delivered %d, verified %d; want %d of each",
			m.RunID, m.Messages, m.Produced, m.Delivered, m.Verified, messages)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// componentsDown asks stackctl which of names are not up. An error means
// stackctl gave no answer to read.
func componentsDown(ctx context.Context, stackctl string, names []string) ([]string, error) {
	cmd := exec.CommandContext(ctx, stackctl, "status", "--json", "--only", strings.Join(names, ","))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	// Non-zero when something is down; the JSON says what.
	exit := "status 0"
	if err := cmd.Run(); err != nil {
		exit = err.Error()
	}
	down, err := downOf(out.Bytes(), names)
	if err != nil {
		return nil, fmt.Errorf("%s status: %w (%s; stderr: %s)", stackctl, err, exit, strings.TrimSpace(stderr.String()))
	}
	return down, nil
}

// downOf reads `stackctl status --json`: the names that are missing from it
// or not healthy.
func downOf(statusJSON []byte, names []string) ([]string, error) {
	var status map[string]struct {
		Healthy bool `json:"healthy"`
	}
	if err := json.Unmarshal(statusJSON, &status); err != nil {
		return nil, err
	}
	var down []string
	for _, name := range names {
		if c, ok := status[name]; !ok || !c.Healthy {
			down = append(down, name)
		}
	}
	return down, nil
}

// endToEnd runs one pipeline of s.e2eMessages messages with bin/starter on
// the stack's worker, to a verified result, and reads what the stack spent
// during it with `stackctl usage`. Without Flink, Temporal or the stack's
// worker it runs nothing and says so; it never stands in for a run.
func (b *bench) endToEnd(ctx context.Context) e2eFigures {
	down, err := componentsDown(ctx, b.s.stackctl, e2eComponents)
	if err != nil {
		return e2eFigures{skipped: fmt.Sprintf("the stack's state is unknown: %v", err)}
	}
	if len(down) > 0 {
		return e2eFigures{skipped: fmt.Sprintf("%s not up (make bench starts them unless BENCH_E2E_MESSAGES=0; by hand: make up WORKER=1)", strings.Join(down, ", "))}
	}
	if _, err := os.Stat(b.s.starter); err != nil {
		return e2eFigures{skipped: fmt.Sprintf("-starter %s: %v (go build -o bin/ ./starter)", b.s.starter, err)}
	}

	e := e2eFigures{workflowID: b.runID + "-e2e"}
	before, after, resultFile := b.workFile("e2e-usage-before.json"), b.workFile("e2e-usage.json"), b.workFile("e2e-result.json")
	// No --reset-peak: the summary shows no peaks, and the stack's peaks
	// belong to whoever else measures on it.
	usageErr := runToFile(ctx, before, b.s.stackctl, "usage", "--json")
	fmt.Printf("\n== end to end: one pipeline run of %d messages, workflow %s, on the stack's worker\n", b.s.e2eMessages, e.workflowID)
	starter := exec.CommandContext(ctx, b.s.starter, "run", "--id", e.workflowID,
		"--messages", strconv.Itoa(b.s.e2eMessages), "--result-file", resultFile)
	starter.Stdout, starter.Stderr = os.Stdout, os.Stderr
	// Interrupted, the starter stops following and says the workflow goes
	// on (it cleans up after itself); killing it would say nothing.
	starter.Cancel = func() error { return starter.Process.Signal(os.Interrupt) }
	starter.WaitDelay = 10 * time.Second
	runErr := starter.Run()
	if ctx.Err() != nil {
		e.failed = fmt.Sprintf("interrupted; workflow %s goes on and cleans up after itself (bin/starter status %s)", e.workflowID, e.workflowID)
		return e
	}
	raw, err := os.ReadFile(resultFile)
	if err != nil {
		e.failed = fmt.Sprintf("no result from %s run (%v): %v", b.s.starter, runErr, err)
		return e
	}
	if err := json.Unmarshal(raw, &e.result); err != nil {
		e.failed = fmt.Sprintf("result of %s: %v", e.workflowID, err)
		return e
	}
	if err := checkCounted(e.result, b.s.e2eMessages); err != nil {
		e.failed = err.Error()
		return e
	}
	if e.window, err = productionToVerified(e.result.Metrics); err != nil {
		e.failed = err.Error()
		return e
	}

	if usageErr == nil {
		usageErr = runToFile(ctx, after, b.s.stackctl, "usage", "--since", before, "--result", resultFile, "--json")
	}
	if usageErr == nil {
		e.usage, usageErr = readUsage(after)
	}
	if usageErr != nil {
		e.usageError = usageErr.Error()
	}
	fmt.Printf("end to end: %d verified in %s from the start of production to the end of verification, %.0f msgs/s\n",
		e.result.Metrics.Verified, e.window.Round(time.Millisecond), e.rate())
	return e
}

// runToFile runs a command and writes its standard output to path.
func runToFile(ctx context.Context, path, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s %s: %w (%s)", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readUsage(path string) (*e2eUsage, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	var u e2eUsage
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, fmt.Errorf("usage report %s: %w", path, err)
	}
	if u.Run == nil {
		return nil, errors.New("usage report has no run (stackctl usage --result was not read)")
	}
	return &u, nil
}

// stageAlone is one stage of the pipeline measured on its own earlier in
// the same benchmark run.
type stageAlone struct {
	stage     string
	what      string
	perSecond float64
}

// stagesAlone are the pipeline's stages this benchmark measured alone: the
// median round of flowproof's chunked producer and of Verify, and the
// running endpoint. Flink's jobs are not measured alone.
func stagesAlone(in summaryInput) []stageAlone {
	var stages []stageAlone
	var produced, verified []float64
	for _, r := range in.produce {
		produced = append(produced, r.flowproof.perSecond)
	}
	for _, r := range in.consume {
		verified = append(verified, r.verify.perSecond)
	}
	s := in.settings
	if len(produced) > 0 {
		stages = append(stages, stageAlone{"produce", fmt.Sprintf("ProduceChunk, %d-record chunks %d at a time, %d partitions, median of %d rounds", s.chunkSize, s.concurrency, s.partitions, len(produced)), median(produced)})
	}
	if in.endpoint.messages > 0 {
		stages = append(stages, stageAlone{"endpoint", fmt.Sprintf("the running endpoint, batches of %d from %d clients (deliver's HTTP side)", s.endpointBatch, s.endpointClients), in.endpoint.rate()})
	}
	if len(verified) > 0 {
		stages = append(stages, stageAlone{"verify", fmt.Sprintf("Verify, %d partitions, median of %d rounds", s.partitions, len(verified)), median(verified)})
	}
	return stages
}

// slowest is the stage with the lowest rate; ok is false without stages.
func slowest(stages []stageAlone) (stageAlone, bool) {
	if len(stages) == 0 {
		return stageAlone{}, false
	}
	return slices.MinFunc(stages, func(a, b stageAlone) int { return cmp.Compare(a.perSecond, b.perSecond) }), true
}
