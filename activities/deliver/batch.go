package deliver

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// deliveryMessage is one enriched record as the endpoint receives it.
type deliveryMessage struct {
	Seq           int64
	LogicalQueue  string
	CorrelationID string
	ProducedAt    string
}

// deliveryBatch is consecutive records of one partition, sent as one HTTP
// batch.
type deliveryBatch struct {
	// index orders the segment's batches by when they were built.
	index       int
	partition   int32
	firstOffset int64
	lastOffset  int64
	messages    []deliveryMessage
	id          string
}

// batchID names a batch by its run, partition and offset range. The range
// makes the id determine the content: a retried segment that starts at the
// same offsets rebuilds full batches with the same ids (which the endpoint
// answers from its idempotency store), and a partial batch that grew in
// the meantime gets a new id rather than reusing an id with another body,
// which the endpoint would refuse.
func batchID(runID string, partition int32, firstOffset, lastOffset int64) string {
	return fmt.Sprintf("%s-p%d-o%d-%d", runID, partition, firstOffset, lastOffset)
}

// batchBuilder cuts each partition's records into batches of size: a batch
// is closed when full, and the open ones when the segment's input ends.
type batchBuilder struct {
	runID string
	size  int
	open  map[int32]*deliveryBatch
	built int
}

func newBatchBuilder(runID string, size int) *batchBuilder {
	return &batchBuilder{runID: runID, size: size, open: make(map[int32]*deliveryBatch)}
}

// add appends a record and returns the batch it completed, if any.
func (b *batchBuilder) add(partition int32, offset int64, m deliveryMessage) *deliveryBatch {
	batch := b.open[partition]
	if batch == nil {
		batch = &deliveryBatch{partition: partition, firstOffset: offset, messages: make([]deliveryMessage, 0, b.size)}
		b.open[partition] = batch
	}
	batch.lastOffset = offset
	batch.messages = append(batch.messages, m)
	if len(batch.messages) < b.size {
		return nil
	}
	delete(b.open, partition)
	return b.close(batch)
}

// addPlanned appends a record of a plan whose partition ends at end, and
// returns the batches it completed: a full one, or the partition's last,
// however short.
func (b *batchBuilder) addPlanned(partition int32, offset int64, m deliveryMessage, end int64) []*deliveryBatch {
	if full := b.add(partition, offset, m); full != nil {
		return []*deliveryBatch{full}
	}
	if offset < end-1 {
		return nil
	}
	last := b.open[partition]
	delete(b.open, partition)
	return []*deliveryBatch{b.close(last)}
}

// flush closes the open batches, in partition order.
func (b *batchBuilder) flush() []*deliveryBatch {
	partitions := make([]int32, 0, len(b.open))
	for p := range b.open {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	out := make([]*deliveryBatch, 0, len(partitions))
	for _, p := range partitions {
		out = append(out, b.close(b.open[p]))
		delete(b.open, p)
	}
	return out
}

func (b *batchBuilder) close(batch *deliveryBatch) *deliveryBatch {
	batch.index = b.built
	b.built++
	batch.id = batchID(b.runID, batch.partition, batch.firstOffset, batch.lastOffset)
	return batch
}

// enrichedValue is the part of an enriched record's value delivery reads.
type enrichedValue struct {
	RunID         string `json:"run_id"`
	Seq           *int64 `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	ProducedAt    string `json:"produced_at"`
	CorrelationID string `json:"correlation_id"`
}

// enrichedDecoder checks a segment's enriched records against the message
// contract and keeps their strings in one arena.
type enrichedDecoder struct {
	runID   string
	strings stringArena
}

func newEnrichedDecoder(runID string) *enrichedDecoder {
	return &enrichedDecoder{runID: runID}
}

// decode checks an enriched record against the message contract.
func (d *enrichedDecoder) decode(r *kgo.Record) (deliveryMessage, error) {
	v, ok := readEnrichedFields(r.Value)
	if !ok {
		var err error
		if v, err = unmarshalEnrichedFields(r.Value); err != nil {
			return deliveryMessage{}, fmt.Errorf("%s: value is not the contract's JSON: %w", enrichedWhere(r), err)
		}
	}
	if problems := d.contractProblems(r, v); len(problems) > 0 {
		return deliveryMessage{}, fmt.Errorf("%s breaks the message contract: %s", enrichedWhere(r), strings.Join(problems, "; "))
	}
	logicalQueue, producedAt, correlationID := d.strings.strings3(v.logicalQueue, v.producedAt, v.correlationID)
	return deliveryMessage{Seq: v.seq, LogicalQueue: logicalQueue, CorrelationID: correlationID, ProducedAt: producedAt}, nil
}

func enrichedWhere(r *kgo.Record) string {
	return fmt.Sprintf("enriched record %s[%d]@%d", r.Topic, r.Partition, r.Offset)
}

// contractProblems lists how a record breaks the message contract.
func (d *enrichedDecoder) contractProblems(r *kgo.Record, v enrichedFields) []string {
	var problems []string
	if string(v.runID) != d.runID {
		problems = append(problems, fmt.Sprintf("run_id is %q, want %q", string(v.runID), d.runID))
	}
	if !v.hasSeq || v.seq < 0 {
		problems = append(problems, "seq is missing or negative")
	}
	if len(v.logicalQueue) == 0 {
		problems = append(problems, "logical_queue is empty")
	}
	if len(v.producedAt) == 0 {
		problems = append(problems, "produced_at is empty")
	}
	if len(v.correlationID) == 0 {
		problems = append(problems, "correlation_id is empty")
	}
	var header []byte
	found := false
	for _, h := range r.Headers {
		if h.Key == activities.HeaderCorrelationID {
			header, found = h.Value, true
		}
	}
	switch {
	case !found:
		problems = append(problems, "header "+activities.HeaderCorrelationID+" is missing")
	case !bytes.Equal(header, v.correlationID):
		problems = append(problems, fmt.Sprintf("header %s is %q but correlation_id is %q", activities.HeaderCorrelationID, string(header), string(v.correlationID)))
	}
	return problems
}

// batchRequestBody encodes a batch of run runID for POST /v1/batches, as
// json.Marshal of an endpointapi.BatchRequest would. The encoding is
// deterministic, so a retried batch has the same body and the endpoint
// answers it from its idempotency store.
func batchRequestBody(runID string, b *deliveryBatch) []byte {
	size := len(`{"batch_id":"","run_id":"","messages":[]}`) + len(b.id) + len(runID)
	for _, m := range b.messages {
		size += len(`{"correlation_id":"","seq":,"logical_queue":"","produced_at":""},`) + 20 +
			len(m.CorrelationID) + len(m.LogicalQueue) + len(m.ProducedAt)
	}
	body := make([]byte, 0, size)
	body = appendStringMember(body, `{"batch_id":`, b.id)
	if runID != "" { // omitempty
		body = appendStringMember(body, `,"run_id":`, runID)
	}
	body = append(body, `,"messages":[`...)
	for i, m := range b.messages {
		if i > 0 {
			body = append(body, ',')
		}
		// endpointapi.Message's order: its named fields, then the extra
		// ones by name.
		body = appendStringMember(body, `{"correlation_id":`, m.CorrelationID)
		body = appendIntMember(body, `,"seq":`, m.Seq)
		body = appendStringMember(body, `,"logical_queue":`, m.LogicalQueue)
		body = appendStringMember(body, `,"produced_at":`, m.ProducedAt)
		body = append(body, '}')
	}
	return append(body, "]}"...)
}

// responseRecord is the value of a responses-topic record (see
// docs/message-contract.md).
type responseRecord struct {
	RunID       string            `json:"run_id"`
	BatchID     string            `json:"batch_id"`
	BatchNumber int64             `json:"batch_number"`
	Messages    []responseMessage `json:"messages"`
}

type responseMessage struct {
	Seq           int64  `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	CorrelationID string `json:"correlation_id"`
	SendingID     string `json:"sending_id"`
	ProducedAt    string `json:"produced_at"`
}

// newResponseRecord joins a batch with the endpoint's answer, checking that
// the answer is about this batch, message by message.
func newResponseRecord(runID string, b *deliveryBatch, answer endpointapi.BatchResponse) (responseRecord, error) {
	var problems []string
	if answer.BatchID != b.id {
		problems = append(problems, fmt.Sprintf("batch_id is %q", answer.BatchID))
	}
	if answer.BatchNumber <= 0 {
		problems = append(problems, fmt.Sprintf("batch_number is %d", answer.BatchNumber))
	}
	if len(answer.Results) != len(b.messages) {
		problems = append(problems, fmt.Sprintf("%d results for %d messages", len(answer.Results), len(b.messages)))
	}
	rec := responseRecord{RunID: runID, BatchID: b.id, BatchNumber: answer.BatchNumber, Messages: make([]responseMessage, 0, len(b.messages))}
	for i, m := range b.messages {
		if i >= len(answer.Results) {
			break
		}
		res := answer.Results[i]
		if res.Seq != m.Seq || res.CorrelationID != m.CorrelationID {
			problems = append(problems, fmt.Sprintf("results[%d] is seq %d / %s, sent seq %d / %s", i, res.Seq, res.CorrelationID, m.Seq, m.CorrelationID))
		}
		if res.SendingID == "" {
			problems = append(problems, fmt.Sprintf("results[%d].sending_id is empty", i))
		}
		if len(problems) >= 5 {
			break
		}
		rec.Messages = append(rec.Messages, responseMessage{
			Seq: m.Seq, LogicalQueue: m.LogicalQueue, CorrelationID: m.CorrelationID,
			SendingID: res.SendingID, ProducedAt: m.ProducedAt,
		})
	}
	if len(problems) > 0 {
		return responseRecord{}, fmt.Errorf("endpoint answer to batch %s does not match it: %s", b.id, strings.Join(problems, "; "))
	}
	return rec, nil
}
