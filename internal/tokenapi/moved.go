package tokenapi

import (
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/refsvcapi"
)

// The names below moved to endpointapi (the batch endpoint's contract) and
// refsvcapi (what both reference services share). They stay only until the
// callers in activities/ and deploy/local/bench move at the issue 7 merge;
// then delete this file.

// Deprecated: use endpointapi.BatchesPath.
const BatchesPath = endpointapi.BatchesPath

// Deprecated: use endpointapi.FaultsPath.
const FaultsPath = endpointapi.FaultsPath

// Deprecated: use endpointapi.IdempotencyKeyHeader.
const IdempotencyKeyHeader = endpointapi.IdempotencyKeyHeader

// Deprecated: use endpointapi.ReplayedHeader.
const ReplayedHeader = endpointapi.ReplayedHeader

// Deprecated: use endpointapi.BatchRequest.
type BatchRequest = endpointapi.BatchRequest

// Deprecated: use endpointapi.Message.
type Message = endpointapi.Message

// Deprecated: use endpointapi.BatchResponse.
type BatchResponse = endpointapi.BatchResponse

// Deprecated: use endpointapi.BatchResult.
type BatchResult = endpointapi.BatchResult

// Deprecated: use endpointapi.Faults.
type Faults = endpointapi.Faults

// Deprecated: use refsvcapi.ErrorResponse.
type ErrorResponse = refsvcapi.ErrorResponse
