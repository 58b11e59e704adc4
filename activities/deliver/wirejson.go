package deliver

// Hand-written JSON for the delivery path's own wire formats: enriched
// records in, HTTP batches out, the endpoint's answers in, responses and
// accepted records out. encoding/json's reflection and allocations were a
// fifth of the worker's CPU (docs/performance.md, "Worker").
//
// The readers are wirejson.Readers: whatever they give up on goes through
// encoding/json, so every value is read, or refused with the same error, as
// before. The writers produce the very bytes encoding/json did: the endpoint
// fingerprints a batch's body for its Idempotency-Key, and a retried batch
// must be byte for byte the one an earlier attempt (or an older worker) sent.

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/wirejson"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// enrichedFields is what delivery reads of an enriched record's value,
// as slices of the value.
type enrichedFields struct {
	runID, logicalQueue, producedAt, correlationID []byte
	seq                                            int64
	hasSeq                                         bool
}

// readEnrichedFields reads an enriched value of the usual shape; false
// leaves it to encoding/json.
func readEnrichedFields(value []byte) (enrichedFields, bool) {
	var f enrichedFields
	r := wirejson.NewReader(value)
	ok := r.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "run_id":
			f.runID, ok = r.PlainBytes()
		case "seq":
			f.seq, ok = r.Integer()
			f.hasSeq = true
		case "logical_queue":
			f.logicalQueue, ok = r.PlainBytes()
		case "produced_at":
			f.producedAt, ok = r.PlainBytes()
		case "correlation_id":
			f.correlationID, ok = r.PlainBytes()
		default:
			ok = r.UnknownKey(key, "run_id", "seq", "logical_queue", "produced_at", "correlation_id")
		}
		return ok
	})
	return f, ok && r.AtEnd()
}

// unmarshalEnrichedFields reads value as before the hand-written reader.
func unmarshalEnrichedFields(value []byte) (enrichedFields, error) {
	var v enrichedValue
	if err := json.Unmarshal(value, &v); err != nil {
		return enrichedFields{}, err
	}
	f := enrichedFields{
		runID: []byte(v.RunID), logicalQueue: []byte(v.LogicalQueue),
		producedAt: []byte(v.ProducedAt), correlationID: []byte(v.CorrelationID),
	}
	if v.Seq != nil {
		f.seq, f.hasSeq = *v.Seq, true
	}
	return f, nil
}

// stringArena makes a segment's message strings out of large blocks, so a
// message costs no allocation of its own. The messages live until the
// segment ends, and so would their strings anyway; a block is garbage once
// none of them is referenced. Bytes written to a strings.Builder are never
// written again, so its strings stay as they were.
type stringArena struct {
	block strings.Builder
}

const stringArenaBlock = 64 << 10

// strings3 returns x, y and z as strings.
func (a *stringArena) strings3(x, y, z []byte) (string, string, string) {
	need := len(x) + len(y) + len(z)
	if a.block.Cap()-a.block.Len() < need {
		a.block.Reset()
		a.block.Grow(max(stringArenaBlock, need))
	}
	start := a.block.Len()
	a.block.Write(x)
	a.block.Write(y)
	a.block.Write(z)
	s := a.block.String()[start:]
	return s[:len(x)], s[len(x) : len(x)+len(y)], s[len(x)+len(y):]
}

// appendJSONString appends s as encoding/json writes it. Strings of
// printable ASCII that needs no escaping (all the pipeline's ids, queues
// and timestamps) are copied; any other goes through encoding/json, whose
// escaping (HTML characters, U+2028, invalid UTF-8) it then is.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always encodes
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendStringMember appends name, which holds the member's punctuation
// (`,"seq":`), and value.
func appendStringMember(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	return appendJSONString(dst, value)
}

func appendIntMember(dst []byte, name string, value int64) []byte {
	dst = append(dst, name...)
	return strconv.AppendInt(dst, value, 10)
}

// responseRecordValue encodes rec as the responses topic's value, as
// json.Marshal would.
func responseRecordValue(rec responseRecord) []byte {
	size := len(`{"run_id":"","batch_id":"","batch_number":,"messages":[]}`) + 20 + len(rec.RunID) + len(rec.BatchID)
	for _, m := range rec.Messages {
		size += len(`{"seq":,"logical_queue":"","correlation_id":"","sending_id":"","produced_at":""},`) + 20 +
			len(m.LogicalQueue) + len(m.CorrelationID) + len(m.SendingID) + len(m.ProducedAt)
	}
	value := make([]byte, 0, size)
	value = appendStringMember(value, `{"run_id":`, rec.RunID)
	value = appendStringMember(value, `,"batch_id":`, rec.BatchID)
	value = appendIntMember(value, `,"batch_number":`, rec.BatchNumber)
	value = append(value, `,"messages":`...)
	if rec.Messages == nil {
		return append(value, "null}"...)
	}
	value = append(value, '[')
	for i, m := range rec.Messages {
		if i > 0 {
			value = append(value, ',')
		}
		value = appendIntMember(value, `{"seq":`, m.Seq)
		value = appendStringMember(value, `,"logical_queue":`, m.LogicalQueue)
		value = appendStringMember(value, `,"correlation_id":`, m.CorrelationID)
		value = appendStringMember(value, `,"sending_id":`, m.SendingID)
		value = appendStringMember(value, `,"produced_at":`, m.ProducedAt)
		value = append(value, '}')
	}
	return append(value, "]}"...)
}

// acceptedBatchValue encodes rec as the accepted topic's value, as
// json.Marshal would.
func acceptedBatchValue(rec activities.AcceptedBatch) []byte {
	// A batch's seqs are of about one size: its last one's, and a sign.
	seqLen := 2
	if n := len(rec.Seqs); n > 0 {
		seqLen += len(strconv.AppendInt(make([]byte, 0, 20), rec.Seqs[n-1], 10))
	}
	value := make([]byte, 0, len(`{"batch_id":"","segment":,"attempt":,"replayed":true,"seqs":[],"accepted_at_unix_ms":}`)+
		len(rec.BatchID)+3*20+seqLen*len(rec.Seqs))
	value = appendStringMember(value, `{"batch_id":`, rec.BatchID)
	value = appendIntMember(value, `,"segment":`, int64(rec.Segment))
	value = appendIntMember(value, `,"attempt":`, int64(rec.Attempt))
	if rec.Replayed { // omitempty
		value = append(value, `,"replayed":true`...)
	}
	value = append(value, `,"seqs":`...)
	if rec.Seqs == nil {
		value = append(value, "null"...)
	} else {
		value = append(value, '[')
		for i, seq := range rec.Seqs {
			if i > 0 {
				value = append(value, ',')
			}
			value = strconv.AppendInt(value, seq, 10)
		}
		value = append(value, ']')
	}
	value = appendIntMember(value, `,"accepted_at_unix_ms":`, rec.AcceptedAtUnixMillis)
	return append(value, '}')
}

// decodeBatchAnswer reads the endpoint's answer to b.
func decodeBatchAnswer(body []byte, b *deliveryBatch) (endpointapi.BatchResponse, error) {
	if answer, ok := readBatchAnswer(body, len(b.messages)); ok {
		return answer, nil
	}
	var answer endpointapi.BatchResponse
	err := json.Unmarshal(body, &answer)
	return answer, err
}

// readBatchAnswer reads an answer of the usual shape, expecting about
// results results; false leaves it to encoding/json. The answer's strings
// share one copy of body.
func readBatchAnswer(body []byte, results int) (endpointapi.BatchResponse, bool) {
	text := string(body)
	var answer endpointapi.BatchResponse
	r := wirejson.NewReader(body)
	sawResults := false
	ok := r.Object(func(key []byte) bool {
		switch string(key) {
		case "batch_id":
			start, end, ok := r.PlainString()
			answer.BatchID = text[start:end]
			return ok
		case "batch_number":
			var ok bool
			answer.BatchNumber, ok = r.Integer()
			return ok
		case "results":
			// encoding/json decodes a repeated array into the elements of
			// the first; not worth imitating.
			if sawResults {
				return false
			}
			sawResults = true
			var ok bool
			answer.Results, ok = batchResults(r, text, results)
			return ok
		default:
			return r.UnknownKey(key, "batch_id", "batch_number", "results")
		}
	})
	return answer, ok && r.AtEnd()
}

// batchResults reads an answer's results array; text is data as a string.
func batchResults(r *wirejson.Reader, text string, expected int) ([]endpointapi.BatchResult, bool) {
	if !r.Consume('[') {
		return nil, false
	}
	results := make([]endpointapi.BatchResult, 0, expected)
	if r.Consume(']') {
		return results, true
	}
	for {
		var res endpointapi.BatchResult
		ok := r.Object(func(key []byte) bool {
			switch string(key) {
			case "correlation_id":
				start, end, ok := r.PlainString()
				res.CorrelationID = text[start:end]
				return ok
			case "seq":
				var ok bool
				res.Seq, ok = r.Integer()
				return ok
			case "sending_id":
				start, end, ok := r.PlainString()
				res.SendingID = text[start:end]
				return ok
			default:
				return r.UnknownKey(key, "correlation_id", "seq", "sending_id")
			}
		})
		if !ok {
			return nil, false
		}
		results = append(results, res)
		if r.Consume(']') {
			return results, true
		}
		if !r.Consume(',') {
			return nil, false
		}
	}
}
