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
	// InvalidInput: an input that can never succeed, named field first.
	InvalidInput = "InvalidInput"

	// Unhealthy: a component failed its health check; the details carry
	// every component's result.
	Unhealthy = "Unhealthy"

	// TopicMismatch: a topic of the run exists with another shape.
	TopicMismatch = "TopicMismatch"

	// FlinkConfig, EndpointConfig and TokenConfig: the worker lacks the
	// settings for that service.
	FlinkConfig    = "FlinkConfig"
	EndpointConfig = "EndpointConfig"
	TokenConfig    = "TokenConfig"

	// TokenClientRejected: the token service refused the worker's client
	// credentials; renewing cannot help.
	TokenClientRejected = "TokenClientRejected"
	// TokenUnsealable: a sealed token cannot be opened with the worker's key.
	TokenUnsealable = "TokenUnsealable"

	// ContractViolation: a record or an endpoint answer breaks the message
	// contract (docs/message-contract.md).
	ContractViolation = "ContractViolation"
	// BatchRefused: the endpoint refused a batch for good (4xx other than
	// 401 and 429).
	BatchRefused = "BatchRefused"
	// OffsetOutOfRange: a delivery segment's start offsets are outside the
	// enriched topic.
	OffsetOutOfRange = "OffsetOutOfRange"
	// SegmentReused: a delivery segment number was committed before from
	// other offsets.
	SegmentReused = "SegmentReused"
	// DeliveryStalled: no enriched message arrived for too long while
	// messages were still missing.
	DeliveryStalled = "DeliveryStalled"
)

// InvalidInputf is the non-retryable error of an input that fails
// validation. The message starts with "invalid input: " so that it reads
// the same in the UI, the CLI and the starter.
func InvalidInputf(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError("invalid input: "+fmt.Sprintf(format, args...), InvalidInput, nil)
}
