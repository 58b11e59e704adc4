package workflows

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowproof/flowproof/activities"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/localstack"
)

// DefaultDrill is the drill an empty DrillInput ({}) runs.
const DefaultDrill = drillapi.KillBroker

// DefaultDrillMessages is a drill's run size: long enough to measure the
// throughput before and after a fault, short enough for a nightly matrix.
const DefaultDrillMessages = 200_000

// DrillInput is DrillWorkflow's input; {} runs DefaultDrill.
type DrillInput struct {
	// Drill names a drill of the catalogue (Drills).
	Drill string `json:"drill,omitempty"`
	// Faults, when given, replace the catalogue drill's faults.
	Faults []FaultStep `json:"faults,omitempty"`
	// Pipeline is the input of the run the faults hit; its messages default
	// to DefaultDrillMessages and its run id to the run's workflow id.
	Pipeline PipelineInput `json:"pipeline"`
	// PipelineTaskQueue is served by the flowproof worker that runs the
	// pipeline (default: the local stack's).
	PipelineTaskQueue string `json:"pipeline_task_queue,omitempty"`
}

// FaultStep is one fault of a drill: what, when and for how long.
type FaultStep struct {
	// Fault is one of drillapi.Faults.
	Fault string `json:"fault"`
	// At is the progress point that triggers it: a counter of the run
	// (produced or delivered) and a share of its messages, "produced:30%".
	// Recovery is measured on the same counter.
	At string `json:"at"`
	// HoldSeconds is how long the fault lasts before it is lifted.
	HoldSeconds int `json:"hold_seconds"`
}

// DrillSpec is a drill of the catalogue.
type DrillSpec struct {
	Name    string
	Summary string
	Faults  []FaultStep
	// FailsWith are the error types with which the run may fail by design:
	// a failure that names the fault passes the drill, any other fails it.
	FailsWith []string
}

// Drills is the catalogue, in the order `make drills` runs it. Faults on
// the delivery side trigger on the delivered counter, because production
// does not notice them until backpressure holds it.
var Drills = []DrillSpec{
	{Name: drillapi.KillBroker, Summary: "SIGKILL the broker leading most raw partitions; start it after 20 s",
		Faults: []FaultStep{{Fault: drillapi.KillBroker, At: "produced:30%", HoldSeconds: 20}}},
	{Name: drillapi.KillTaskManager, Summary: "SIGKILL a TaskManager running the run's tasks; start it after 10 s",
		Faults: []FaultStep{{Fault: drillapi.KillTaskManager, At: "delivered:20%", HoldSeconds: 10}}},
	{Name: drillapi.KillWorker, Summary: "SIGKILL the flowproof worker; start another after 5 s",
		Faults: []FaultStep{{Fault: drillapi.KillWorker, At: "produced:30%", HoldSeconds: 5}}},
	{Name: drillapi.StopWorker, Summary: "SIGTERM the flowproof worker, which must exit within its stop timeout; start another after 5 s",
		Faults: []FaultStep{{Fault: drillapi.StopWorker, At: "produced:30%", HoldSeconds: 5}}},
	{Name: drillapi.KillEndpoint, Summary: "SIGKILL the HTTP endpoint; start it after 5 s (its idempotency store must survive)",
		Faults: []FaultStep{{Fault: drillapi.KillEndpoint, At: "delivered:30%", HoldSeconds: 5}}},
	{Name: drillapi.StopTokenService, Summary: "stop the token service for 60 s",
		Faults: []FaultStep{{Fault: drillapi.StopTokenService, At: "delivered:20%", HoldSeconds: 60}}},
	{Name: drillapi.EndpointErrors, Summary: "the endpoint answers 20% of batches with 5xx for 60 s",
		Faults: []FaultStep{{Fault: drillapi.EndpointErrors, At: "delivered:20%", HoldSeconds: 60}}},
	{Name: drillapi.EndpointThrottle, Summary: "the endpoint answers with 429 and Retry-After for 60 s",
		Faults: []FaultStep{{Fault: drillapi.EndpointThrottle, At: "delivered:20%", HoldSeconds: 60}}},
	{Name: drillapi.EndpointLatency, Summary: "the endpoint adds 500 ms to every batch for 60 s",
		Faults: []FaultStep{{Fault: drillapi.EndpointLatency, At: "delivered:20%", HoldSeconds: 60}}},
	{Name: drillapi.StopTemporal, Summary: "stop the Temporal server for 30 s",
		Faults: []FaultStep{{Fault: drillapi.StopTemporal, At: "produced:30%", HoldSeconds: 30}}},
	{Name: drillapi.KillJobManager, Summary: "SIGKILL the Flink JobManager (no HA: its jobs are lost); start it after 10 s",
		Faults:    []FaultStep{{Fault: drillapi.KillJobManager, At: "delivered:20%", HoldSeconds: 10}},
		FailsWith: []string{errtype.FlinkJobFailed}},
}

// DrillNamed returns the catalogue's drill of that name.
func DrillNamed(name string) (DrillSpec, bool) {
	i := slices.IndexFunc(Drills, func(d DrillSpec) bool { return d.Name == name })
	if i < 0 {
		return DrillSpec{}, false
	}
	return Drills[i], true
}

// DrillNames lists the catalogue's names in order.
func DrillNames() []string {
	names := make([]string, len(Drills))
	for i, d := range Drills {
		names[i] = d.Name
	}
	return names
}

// maxHoldSeconds bounds a fault's duration: a drill measures recovery,
// not an outage.
const maxHoldSeconds = 600

// drillPlan is a DrillInput with its defaults applied and checked.
type drillPlan struct {
	spec      DrillSpec
	pipeline  PipelineInput
	names     activities.RunNames
	taskQueue string
	childID   string
}

// plan applies the defaults of in for the drill workflow drillID and
// checks the result; the error is the non-retryable errtype.InvalidInput.
func (in DrillInput) plan(drillID string) (drillPlan, error) {
	name := in.Drill
	if name == "" {
		name = DefaultDrill
	}
	spec, ok := DrillNamed(name)
	if !ok && len(in.Faults) == 0 {
		return drillPlan{}, errtype.InvalidInputf("drill %q: not a drill of the catalogue (%s), and no faults given", name, strings.Join(DrillNames(), ", "))
	}
	if !ok {
		spec = DrillSpec{Name: name, Summary: "custom drill"}
	}
	if len(in.Faults) > 0 {
		spec.Faults = in.Faults
	}
	for i, step := range spec.Faults {
		if err := step.validate(); err != nil {
			return drillPlan{}, errtype.InvalidInputf("faults[%d]: %v", i, err)
		}
	}
	p := drillPlan{spec: spec, taskQueue: in.PipelineTaskQueue, childID: drillID + "-run"}
	if p.taskQueue == "" {
		p.taskQueue = localstack.TaskQueue
	}
	if in.Pipeline.Messages == 0 {
		in.Pipeline.Messages = DefaultDrillMessages
	}
	p.pipeline = in.Pipeline.WithDefaults(p.childID)
	if err := p.pipeline.Validate(); err != nil {
		return drillPlan{}, err
	}
	p.names = p.pipeline.runNames()
	return p, nil
}

func (s FaultStep) validate() error {
	if !slices.Contains(drillapi.Faults, s.Fault) {
		return fmt.Errorf("fault %q: want one of %s", s.Fault, strings.Join(drillapi.Faults, ", "))
	}
	if _, _, err := s.trigger(); err != nil {
		return err
	}
	if s.HoldSeconds < 0 || s.HoldSeconds > maxHoldSeconds {
		return fmt.Errorf("hold_seconds %d: must be between 0 and %d", s.HoldSeconds, maxHoldSeconds)
	}
	return nil
}

// trigger parses At: "produced:30%" is the produced counter at 0.30.
func (s FaultStep) trigger() (counter string, share float64, err error) {
	counter, percent, ok := strings.Cut(s.At, ":")
	if !ok || (counter != drillapi.CounterProduced && counter != drillapi.CounterDelivered) || !strings.HasSuffix(percent, "%") {
		return "", 0, fmt.Errorf("at %q: want produced:N%% or delivered:N%%", s.At)
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(percent, "%"), 64)
	if err != nil || n <= 0 || n >= 100 {
		return "", 0, fmt.Errorf("at %q: the share must be a number above 0%% and below 100%%", s.At)
	}
	return counter, n / 100, nil
}

// ExecutionTimeout is the Temporal execution timeout that starters set on a
// drill: its run's, plus its faults' holds, plus time to lift the last one.
// An input that does not plan (invalid) gets the run's default.
func (in DrillInput) ExecutionTimeout() time.Duration {
	const liftAllowance = 15 * time.Minute
	plan, err := in.plan("drill")
	if err != nil {
		return PipelineInput{Messages: DefaultDrillMessages}.WithDefaults("drill").ExecutionTimeout() + liftAllowance
	}
	timeout := plan.pipeline.ExecutionTimeout() + liftAllowance
	for _, step := range plan.spec.Faults {
		timeout += time.Duration(step.HoldSeconds) * time.Second
	}
	return timeout
}
