package deliver

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// The delivery path's per-message CPU outside the network: decoding the
// enriched records, encoding the HTTP batches, decoding the endpoint's
// answers and encoding the responses and accepted records, on records
// shaped as the enrich job writes them (the default 128-byte payload).

const (
	benchRunID     = "bench-20261201-1a2b3c"
	benchBatchSize = 100
	benchSegment   = 10_000
)

// benchEnrichedRecords are segment records of one partition, as the enrich
// job writes them.
func benchEnrichedRecords(n int) []*kgo.Record {
	payload := make([]byte, 128)
	for i := range payload {
		payload[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
	}
	out := make([]*kgo.Record, n)
	for i := range out {
		seq := int64(i) * 7
		cid := fmt.Sprintf("%032x", uint64(seq)*0x9e3779b97f4a7c15)
		value := fmt.Sprintf(`{"run_id":%q,"seq":%d,"logical_queue":"q-%04d","produced_at":"2026-12-01T16:25:32.%06dZ","payload":%q,"correlation_id":%q}`,
			benchRunID, seq, seq%1000, i%1_000_000, payload, cid)
		out[i] = &kgo.Record{
			Topic: "flowproof." + benchRunID + ".enriched", Partition: 3, Offset: int64(i),
			Value:   []byte(value),
			Headers: []kgo.RecordHeader{{Key: "logical.queue", Value: fmt.Appendf(nil, "q-%04d", seq%1000)}, {Key: activities.HeaderCorrelationID, Value: []byte(cid)}},
		}
	}
	return out
}

// benchAnswer is the endpoint's answer to b, encoded as the endpoint does.
func benchAnswer(b *deliveryBatch, batchNumber int64) []byte {
	resp := endpointapi.BatchResponse{BatchID: b.id, BatchNumber: batchNumber, Results: make([]endpointapi.BatchResult, len(b.messages))}
	for i, m := range b.messages {
		resp.Results[i] = endpointapi.BatchResult{CorrelationID: m.CorrelationID, Seq: m.Seq, SendingID: fmt.Sprintf("refsvc-4f1c-%d-%d", batchNumber, i)}
	}
	body, err := json.Marshal(resp)
	if err != nil {
		panic(err)
	}
	return body
}

func benchBatch(records []*kgo.Record) *deliveryBatch {
	builder := newBatchBuilder(benchRunID, len(records))
	decoder := newEnrichedDecoder(benchRunID)
	var batch *deliveryBatch
	for _, r := range records {
		m, err := decoder.decode(r)
		if err != nil {
			panic(err)
		}
		batch = builder.add(r.Partition, r.Offset, m)
	}
	return batch
}

// wireCodec is one implementation of the delivery path's JSON: the
// hand-written one, or encoding/json's as it was (legacy_test.go), so both
// run side by side in one benchmark run.
type wireCodec struct {
	name          string
	newDecoder    func() func(*kgo.Record) (deliveryMessage, error)
	requestBody   func(string, *deliveryBatch) []byte
	answer        func([]byte, *deliveryBatch) (endpointapi.BatchResponse, error)
	responseValue func(responseRecord) []byte
	acceptedValue func(activities.AcceptedBatch) []byte
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var wireCodecs = []wireCodec{
	{
		name: "codec=encoding_json",
		newDecoder: func() func(*kgo.Record) (deliveryMessage, error) {
			return func(r *kgo.Record) (deliveryMessage, error) { return decodeEnrichedReflect(r, benchRunID) }
		},
		requestBody: func(runID string, b *deliveryBatch) []byte { return must(batchRequestBodyReflect(runID, b)) },
		answer: func(body []byte, _ *deliveryBatch) (endpointapi.BatchResponse, error) {
			return decodeBatchAnswerReflect(body)
		},
		responseValue: func(rec responseRecord) []byte { return must(responseRecordValueReflect(rec)) },
		acceptedValue: func(rec activities.AcceptedBatch) []byte { return must(acceptedBatchValueReflect(rec)) },
	},
	{
		name:          "codec=hand_written",
		newDecoder:    func() func(*kgo.Record) (deliveryMessage, error) { return newEnrichedDecoder(benchRunID).decode },
		requestBody:   batchRequestBody,
		answer:        decodeBatchAnswer,
		responseValue: responseRecordValue,
		acceptedValue: acceptedBatchValue,
	},
}

// benchCodecs runs bench once per codec.
func benchCodecs(b *testing.B, bench func(b *testing.B, c wireCodec)) {
	for _, c := range wireCodecs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			bench(b, c)
		})
	}
}

func BenchmarkDecodeEnriched(b *testing.B) {
	records := benchEnrichedRecords(1000)
	benchCodecs(b, func(b *testing.B, c wireCodec) {
		decode := c.newDecoder()
		for i := 0; i < b.N; i++ {
			if _, err := decode(records[i%len(records)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The batch benchmarks report per message (a batch of benchBatchSize).

func BenchmarkBatchRequestBodyPerMessage(b *testing.B) {
	batch := benchBatch(benchEnrichedRecords(benchBatchSize))
	benchCodecs(b, func(b *testing.B, c wireCodec) {
		for i := 0; i < b.N; i += benchBatchSize {
			c.requestBody(benchRunID, batch)
		}
	})
}

func BenchmarkBatchAnswerPerMessage(b *testing.B) {
	batch := benchBatch(benchEnrichedRecords(benchBatchSize))
	body := benchAnswer(batch, 17)
	benchCodecs(b, func(b *testing.B, c wireCodec) {
		for i := 0; i < b.N; i += benchBatchSize {
			if _, err := c.answer(body, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkResponseRecordPerMessage(b *testing.B) {
	batch := benchBatch(benchEnrichedRecords(benchBatchSize))
	answer := must(decodeBatchAnswerReflect(benchAnswer(batch, 17)))
	benchCodecs(b, func(b *testing.B, c wireCodec) {
		for i := 0; i < b.N; i += benchBatchSize {
			c.responseValue(must(newResponseRecord(benchRunID, batch, answer)))
		}
	})
}

func BenchmarkAcceptedRecordPerMessage(b *testing.B) {
	batch := benchBatch(benchEnrichedRecords(benchBatchSize))
	at := time.UnixMilli(1_796_000_000_000)
	benchCodecs(b, func(b *testing.B, c wireCodec) {
		for i := 0; i < b.N; i += benchBatchSize {
			c.acceptedValue(acceptedRecord(batch, 3, 1, false, at))
		}
	})
}

// BenchmarkSegmentPerMessage runs a whole segment's pure work per message:
// every record decoded and batched, every batch encoded, its answer decoded
// and checked, and its responses and accepted records encoded.
func BenchmarkSegmentPerMessage(b *testing.B) {
	records := benchEnrichedRecords(benchSegment)
	// The answers are the endpoint's work; they are made beforehand.
	answers := make(map[string][]byte)
	for _, batch := range buildSegment(records, wireCodecs[1]) {
		answers[batch.id] = benchAnswer(batch, int64(len(answers)+1))
	}
	at := time.UnixMilli(1_796_000_000_000)
	benchCodecs(b, func(b *testing.B, c wireCodec) {
		for i := 0; i < b.N; i += benchSegment {
			for _, batch := range buildSegment(records, c) {
				c.requestBody(benchRunID, batch)
				answer, err := c.answer(answers[batch.id], batch)
				if err != nil {
					b.Fatal(err)
				}
				c.responseValue(must(newResponseRecord(benchRunID, batch, answer)))
				c.acceptedValue(acceptedRecord(batch, 3, 1, false, at))
			}
		}
	})
}

func buildSegment(records []*kgo.Record, c wireCodec) []*deliveryBatch {
	builder := newBatchBuilder(benchRunID, benchBatchSize)
	decode := c.newDecoder()
	var batches []*deliveryBatch
	for _, r := range records {
		m, err := decode(r)
		if err != nil {
			panic(err)
		}
		if full := builder.add(r.Partition, r.Offset, m); full != nil {
			batches = append(batches, full)
		}
	}
	return append(batches, builder.flush()...)
}
