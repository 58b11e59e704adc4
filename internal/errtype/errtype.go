// Package errtype is the one catalogue of the Temporal application error
// types that flowproof's workflows and activities raise. A workflow's retry
// policy and a caller's errors.As both match on these strings, so each is
// written once, here.
//
// Types are part of the history contract: never rename one, only add.
package errtype

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
)

const (
	// InvalidInput is an input that can never succeed; the message names the field.
	InvalidInput = "InvalidInput"

	// Unhealthy is a failed health check; the details carry every
	// component's result.
	Unhealthy = "Unhealthy"

	// GroupExists is a consumer group of the run that already has committed
	// offsets before the run started: another run's, or anybody's.
	GroupExists = "GroupExists"
	// RunReset is a run reset (in Temporal) after it had produced messages,
	// or its delivery reset after a later segment committed; going on would
	// produce or deliver again.
	RunReset = "RunReset"
	// TopicExists is a topic of the run that exists and that the run did
	// not create: another run's, or anybody's. The run leaves it alone.
	TopicExists = "TopicExists"
	// TopicMismatch is a topic of the run that exists with another shape.
	TopicMismatch = "TopicMismatch"

	// FlinkConfig is a worker without the Flink settings a run needs.
	FlinkConfig = "FlinkConfig"
	// EndpointConfig is a worker without the endpoint settings a run needs.
	EndpointConfig = "EndpointConfig"
	// TokenConfig is a worker without the token service settings a run needs.
	TokenConfig = "TokenConfig"

	// TokenClientRejected is the token service refusing the worker's client
	// credentials; renewing cannot help.
	TokenClientRejected = "TokenClientRejected"
	// TokenUnsealable is a sealed token the worker's key cannot open.
	TokenUnsealable = "TokenUnsealable"

	// ContractViolation is a record or an endpoint answer that breaks the
	// message contract (docs/message-contract.md).
	ContractViolation = "ContractViolation"
	// BatchRefused is the endpoint refusing a batch for good (4xx other than
	// 401 and 429).
	BatchRefused = "BatchRefused"
	// OffsetOutOfRange is a delivery segment whose start offsets are outside
	// the enriched topic.
	OffsetOutOfRange = "OffsetOutOfRange"
	// SegmentReused is a delivery segment number committed before from
	// other offsets.
	SegmentReused = "SegmentReused"
	// RunFailed is a run that failed in a stage whose error has no type of
	// its own; the details carry the run's PipelineResult.
	RunFailed = "RunFailed"
	// VerificationFailed is a run whose messages did not all arrive exactly
	// once; the details carry the run's PipelineResult.
	VerificationFailed = "VerificationFailed"
	// RunTimedOut is a run that passed the deadline derived from its input;
	// the details carry the run's PipelineResult.
	RunTimedOut = "RunTimedOut"
	// ThresholdsBroken is a run that delivered every message exactly once
	// but broke a threshold of its input (latency, throughput, ...); the
	// message names each broken one and the details carry the run's
	// PipelineResult.
	ThresholdsBroken = "ThresholdsBroken"

	// DeliveryStalled is a delivery that saw no enriched message for too
	// long while messages were still missing.
	DeliveryStalled = "DeliveryStalled"
	// FlinkJobFailed is a Flink job of the run that ended or restarted more
	// than the run allows while messages flowed; the message carries
	// Flink's root cause.
	FlinkJobFailed = "FlinkJobFailed"

	// DrillFailed is a drill whose run did not come through its faults as
	// it must; the details carry the DrillResult.
	DrillFailed = "DrillFailed"
	// NoFaultTarget is a drill's fault that finds nothing of its run to
	// hit: no raw topic whose partitions a broker leads, no Flink job of
	// the run on a TaskManager.
	NoFaultTarget = "NoFaultTarget"

	// WorkerStopping is an activity handed back by a worker told to stop
	// (SIGTERM) before the activity finished; retryable, so that another
	// worker runs it again.
	WorkerStopping = "WorkerStopping"
)

// InvalidInputf is the non-retryable error of an input that fails
// validation. The message starts with "invalid input: " so that it reads
// the same in the UI, the CLI and the starter.
func InvalidInputf(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError("invalid input: "+fmt.Sprintf(format, args...), InvalidInput, nil)
}
