package deliver

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// The encoding/json code that the hand-written wire JSON (wirejson.go)
// replaced, as it was: the oracle its tests compare against, and the
// baseline its benchmarks measure.

func decodeEnrichedReflect(r *kgo.Record, runID string) (deliveryMessage, error) {
	where := fmt.Sprintf("enriched record %s[%d]@%d", r.Topic, r.Partition, r.Offset)
	var v enrichedValue
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return deliveryMessage{}, fmt.Errorf("%s: value is not the contract's JSON: %w", where, err)
	}
	var problems []string
	if v.RunID != runID {
		problems = append(problems, fmt.Sprintf("run_id is %q, want %q", v.RunID, runID))
	}
	if v.Seq == nil || *v.Seq < 0 {
		problems = append(problems, "seq is missing or negative")
	}
	if v.LogicalQueue == "" {
		problems = append(problems, "logical_queue is empty")
	}
	if v.ProducedAt == "" {
		problems = append(problems, "produced_at is empty")
	}
	if v.CorrelationID == "" {
		problems = append(problems, "correlation_id is empty")
	}
	header, found := "", false
	for _, h := range r.Headers {
		if h.Key == activities.HeaderCorrelationID {
			header, found = string(h.Value), true
		}
	}
	switch {
	case !found:
		problems = append(problems, "header "+activities.HeaderCorrelationID+" is missing")
	case header != v.CorrelationID:
		problems = append(problems, fmt.Sprintf("header %s is %q but correlation_id is %q", activities.HeaderCorrelationID, header, v.CorrelationID))
	}
	if len(problems) > 0 {
		return deliveryMessage{}, fmt.Errorf("%s breaks the message contract: %s", where, strings.Join(problems, "; "))
	}
	return deliveryMessage{Seq: *v.Seq, LogicalQueue: v.LogicalQueue, CorrelationID: v.CorrelationID, ProducedAt: v.ProducedAt}, nil
}

func batchRequestBodyReflect(runID string, b *deliveryBatch) ([]byte, error) {
	req := endpointapi.BatchRequest{BatchID: b.id, RunID: runID, Messages: make([]endpointapi.Message, len(b.messages))}
	for i, m := range b.messages {
		producedAt, err := json.Marshal(m.ProducedAt)
		if err != nil {
			return nil, fmt.Errorf("batch %s: produced_at of seq %d: %w", b.id, m.Seq, err)
		}
		req.Messages[i] = endpointapi.Message{
			CorrelationID: m.CorrelationID,
			Seq:           m.Seq,
			LogicalQueue:  m.LogicalQueue,
			Extra:         map[string]json.RawMessage{"produced_at": producedAt},
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("batch %s: encode request: %w", b.id, err)
	}
	return body, nil
}

func decodeBatchAnswerReflect(body []byte) (endpointapi.BatchResponse, error) {
	var answer endpointapi.BatchResponse
	err := json.Unmarshal(body, &answer)
	return answer, err
}

func responseRecordValueReflect(rec responseRecord) ([]byte, error) { return json.Marshal(rec) }

func acceptedBatchValueReflect(rec activities.AcceptedBatch) ([]byte, error) {
	return json.Marshal(rec)
}
