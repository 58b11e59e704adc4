// Package endpointapi holds the wire contract of the reference HTTP batch
// endpoint (deploy/refsvc/endpoint), so that the pipeline's client and the
// server agree on one definition. Its error answers are
// refsvcapi.ErrorResponse. See docs/reference-services.md.
package endpointapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Paths of the endpoint.
const (
	BatchesPath = "/v1/batches"
	FaultsPath  = "/admin/faults"
)

// IdempotencyKeyHeader carries the client's batch id; a repeated key returns
// the stored response instead of accepting the batch again.
const IdempotencyKeyHeader = "Idempotency-Key"

// ReplayedHeader is set to "true" on a response served from the idempotency
// store.
const ReplayedHeader = "Idempotent-Replayed"

// BatchRequest is the body of POST /v1/batches.
type BatchRequest struct {
	BatchID string `json:"batch_id"`
	// RunID names the flowproof run the batch belongs to; the endpoint
	// applies the faults set for that run (see Faults.RunIDs). A batch
	// without one is served without run-scoped faults.
	RunID    string    `json:"run_id,omitempty"`
	Messages []Message `json:"messages"`
}

// Message is one record of a batch. Fields other than the three named ones
// are kept in Extra and sent as they are, so producers can add fields without
// a change here.
type Message struct {
	CorrelationID string                     `json:"correlation_id"`
	Seq           int64                      `json:"seq"`
	LogicalQueue  string                     `json:"logical_queue"`
	Extra         map[string]json.RawMessage `json:"-"`
}

var knownMessageFields = map[string]bool{"correlation_id": true, "seq": true, "logical_queue": true}

// UnmarshalJSON reads the named fields and keeps every other field in Extra.
func (m *Message) UnmarshalJSON(data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	if fields == nil {
		return fmt.Errorf("message must be a JSON object, got null")
	}
	*m = Message{}
	if raw, ok := fields["correlation_id"]; ok {
		if err := json.Unmarshal(raw, &m.CorrelationID); err != nil {
			return fmt.Errorf("correlation_id: %w", err)
		}
	}
	if raw, ok := fields["seq"]; ok {
		if err := json.Unmarshal(raw, &m.Seq); err != nil {
			return fmt.Errorf("seq: %w", err)
		}
	}
	if raw, ok := fields["logical_queue"]; ok {
		if err := json.Unmarshal(raw, &m.LogicalQueue); err != nil {
			return fmt.Errorf("logical_queue: %w", err)
		}
	}
	for name, raw := range fields {
		if knownMessageFields[name] {
			continue
		}
		if m.Extra == nil {
			m.Extra = make(map[string]json.RawMessage, len(fields)-len(knownMessageFields))
		}
		m.Extra[name] = raw
	}
	return nil
}

// MarshalJSON writes the named fields and then Extra; an Extra entry that
// shadows a named field is an error rather than a silent overwrite.
func (m Message) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	writeField := func(name string, value any) error {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		buf.Write(key)
		buf.WriteByte(':')
		raw, err := json.Marshal(value)
		if err != nil {
			return fmt.Errorf("message field %s: %w", name, err)
		}
		buf.Write(raw)
		return nil
	}
	if err := writeField("correlation_id", m.CorrelationID); err != nil {
		return nil, err
	}
	if err := writeField("seq", m.Seq); err != nil {
		return nil, err
	}
	if err := writeField("logical_queue", m.LogicalQueue); err != nil {
		return nil, err
	}
	// Sorted so that the same message always encodes to the same bytes, which
	// keeps a retried batch's body (and so its idempotency fingerprint) equal.
	names := make([]string, 0, len(m.Extra))
	for name := range m.Extra {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if knownMessageFields[name] {
			return nil, fmt.Errorf("message extra field %q shadows a named field", name)
		}
		if err := writeField(name, m.Extra[name]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// BatchResponse is the endpoint's answer to an accepted batch. A replay of the
// same Idempotency-Key returns the identical response.
type BatchResponse struct {
	BatchID string `json:"batch_id"`
	// BatchNumber is assigned by the server and increases with every accepted
	// batch within one endpoint process.
	BatchNumber int64         `json:"batch_number"`
	Results     []BatchResult `json:"results"`
}

// BatchResult is the outcome for one message, in the order of the request.
type BatchResult struct {
	CorrelationID string `json:"correlation_id"`
	Seq           int64  `json:"seq"`
	// SendingID is unique per accepted message.
	SendingID string `json:"sending_id"`
}

// Faults is a fault injection setting of the endpoint. Set at run time
// (POST /admin/faults) it applies only to the batches of the runs it names;
// the setting the process started with (its flags) applies to every batch
// of a run that has none of its own. Each request to /v1/batches draws its
// fault independently.
type Faults struct {
	// RunIDs are the runs (BatchRequest.RunID) the setting applies to;
	// required on POST. A later POST naming a run replaces that run's
	// setting only.
	RunIDs []string `json:"run_ids,omitempty"`
	// ErrorRate is the probability of answering ErrorStatus without
	// accepting the batch.
	ErrorRate float64 `json:"error_rate"`
	// ErrorStatus is the status of an injected error (default 503).
	ErrorStatus int `json:"error_status"`
	// ThrottleRate is the probability of answering 429 with Retry-After.
	ThrottleRate float64 `json:"throttle_rate"`
	// RetryAfterSeconds is the Retry-After value of a 429 (default 1).
	RetryAfterSeconds int `json:"retry_after_seconds"`
	// LatencyMillis is added to every batch request before it is handled.
	LatencyMillis int `json:"latency_ms"`
	// LostResponseRate is the probability that a batch is accepted but the
	// client receives ErrorStatus instead of the response, as when a reply is
	// lost on the way; a retry with the same Idempotency-Key gets the stored
	// response.
	LostResponseRate float64 `json:"lost_response_rate"`
}

// Active reports whether the setting injects anything.
func (f Faults) Active() bool {
	return f.ErrorRate > 0 || f.ThrottleRate > 0 || f.LostResponseRate > 0 || f.LatencyMillis > 0
}

// FaultState is the answer of GET /admin/faults.
type FaultState struct {
	// Default is the setting the process started with; it applies to
	// every batch whose run has no setting of its own. Its RunIDs are empty.
	Default Faults `json:"default"`
	// Runs holds one setting per run that has one, in run id order, each
	// with that single run in RunIDs.
	Runs []Faults `json:"runs"`
}

// Active reports whether any batch may get a fault.
func (s FaultState) Active() bool {
	if s.Default.Active() {
		return true
	}
	for _, f := range s.Runs {
		if f.Active() {
			return true
		}
	}
	return false
}
