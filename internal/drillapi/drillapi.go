// Package drillapi is the contract between DrillWorkflow (workflows/) and the
// drill activities of deploy/local/drills: activity names, the faults the
// local stack can suffer, and the payloads that cross between them.
//
// The activities run only on TaskQueue, served by the drill worker
// (deploy/local/drillworker), which only runs next to a local stack; a
// production worker never registers them, so it can never kill anything.
package drillapi

import (
	"time"

	"github.com/flowproof/flowproof/activities"
)

// TaskQueue is served by the drill worker only.
const TaskQueue = "flowproof-drills"

// Activity names, registered by the drill worker.
const (
	// ApplyFault injects a fault, holds it for HoldSeconds and lifts it, all
	// in one activity: a stopped Temporal server can neither start a lift
	// activity nor fire the timer that would.
	ApplyFault = "ApplyFault"
	// AwaitProgress returns once the watched run's counter passes a mark.
	AwaitProgress = "AwaitProgress"
	// SampleProgress samples the watched run's counter until it reaches its
	// total or the run ends.
	SampleProgress = "SampleProgress"
)

// Faults the drill activities can apply to the local stack.
const (
	// KillBroker SIGKILLs the broker that leads most of the run's raw
	// partitions and starts it again after the hold.
	KillBroker = "kill-broker"
	// KillTaskManager SIGKILLs a TaskManager that runs the run's tasks and
	// starts it again after the hold.
	KillTaskManager = "kill-taskmanager"
	// KillJobManager SIGKILLs the JobManager and starts it again after the
	// hold; a session cluster without HA loses its jobs.
	KillJobManager = "kill-jobmanager"
	// KillEndpoint SIGKILLs the reference HTTP endpoint and starts it again.
	KillEndpoint = "kill-endpoint"
	// StopTokenService stops the token service (SIGTERM) for the hold.
	StopTokenService = "stop-token-service"
	// StopTemporal stops the Temporal server (SIGTERM) for the hold.
	StopTemporal = "stop-temporal"
	// KillWorker SIGKILLs the stack's flowproof worker and starts another.
	KillWorker = "kill-worker"
	// StopWorker sends the stack's worker SIGTERM, measures how long it
	// takes to exit against its stop timeout, and starts another.
	StopWorker = "stop-worker"
	// EndpointErrors makes the endpoint answer 20% of the run's batches
	// with 5xx for the hold.
	EndpointErrors = "endpoint-errors"
	// EndpointThrottle makes the endpoint answer the run's batches with
	// 429 and Retry-After for the hold.
	EndpointThrottle = "endpoint-throttle"
	// EndpointLatency adds 500 ms to every batch of the run for the hold.
	EndpointLatency = "endpoint-latency"
)

// Faults lists every fault, in the order drills run them.
var Faults = []string{
	KillBroker, KillTaskManager, KillWorker, StopWorker, KillEndpoint, StopTokenService,
	EndpointErrors, EndpointThrottle, EndpointLatency, StopTemporal, KillJobManager,
}

// FaultRequest is ApplyFault's input.
type FaultRequest struct {
	Fault string `json:"fault"`
	// RunID is the flowproof run the fault aims at: its topics name the
	// partitions whose leader is killed, its Flink jobs the TaskManager,
	// its id the endpoint's per-run fault setting.
	RunID string `json:"run_id"`
	// Names are the run's topics and consumer groups, as its input made
	// them; a request without them means the names RunID derives
	// (activities.RunNamesOf).
	Names activities.RunNames `json:"names,omitempty"`
	// HoldSeconds is how long the fault lasts before it is lifted.
	HoldSeconds int `json:"hold_seconds"`
}

// FaultReport is ApplyFault's result.
type FaultReport struct {
	Fault string `json:"fault"`
	// Target names what was hit, e.g. "kafka-2 (leader of 40 of 100 partitions)".
	Target     string    `json:"target"`
	InjectedAt time.Time `json:"injected_at"`
	LiftedAt   time.Time `json:"lifted_at"`
	// Detail says what was observed on the way, e.g. how long a stopped
	// process took to exit.
	Detail string `json:"detail,omitempty"`
	// Problems are findings that fail the drill even if the run succeeds,
	// e.g. a worker that outlived its stop timeout after SIGTERM.
	Problems []string `json:"problems,omitempty"`
}

// Counters a drill can watch: the run's Progress fields.
const (
	CounterProduced  = "produced"
	CounterDelivered = "delivered"
)

// ProgressRequest names the run and counter AwaitProgress and
// SampleProgress watch. The counters are read at their source, finer than
// the run's progress query (which moves a segment or a chunk at a time):
// produced is the sum of the raw topic's end offsets, delivered the
// reference endpoint's own count of the run's distinct messages.
type ProgressRequest struct {
	// WorkflowID is the watched PipelineWorkflow's id; it tells when the
	// run has ended.
	WorkflowID string `json:"workflow_id"`
	// RunID is the flowproof run whose messages the endpoint counts.
	RunID string `json:"run_id"`
	// RawTopic is the run's raw topic, whose end offsets count production.
	RawTopic string `json:"raw_topic"`
	Counter  string `json:"counter"`
	// Mark is the count AwaitProgress waits for; SampleProgress stops at
	// Total.
	Mark  int64 `json:"mark,omitempty"`
	Total int64 `json:"total,omitempty"`
	// IntervalMillis is the time between samples (default 500).
	IntervalMillis int `json:"interval_ms,omitempty"`
}

// Sample is one reading of the watched counter.
type Sample struct {
	At    time.Time `json:"at"`
	Count int64     `json:"count"`
}

// ProgressSamples is the result of AwaitProgress (the samples of the last
// half minute up to the mark) and of SampleProgress (every sample taken,
// thinned to at most MaxSamples).
type ProgressSamples struct {
	Samples []Sample `json:"samples"`
	// Ended is set when the watched run closed before the counter reached
	// the mark or the total.
	Ended bool `json:"ended,omitempty"`
}

// MaxSamples bounds ProgressSamples, and so the size of the payload in the
// drill's history, whatever the run's length.
const MaxSamples = 1200
