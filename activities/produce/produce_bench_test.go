package produce

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/flowproof/flowproof/activities"
)

// BenchmarkEncodeRawMessageEncodingJSON encodes the same raw values as
// BenchmarkEncodeRawMessage with encoding/json, the way the encoder would
// be written without its precomputed prefix and suffix; `make bench` prints
// the ratio of the two. It first checks both produce the same bytes, so the
// two benchmarks measure the same work.
func BenchmarkEncodeRawMessageEncodingJSON(b *testing.B) {
	const runID, queue, payloadBytes = "nightly-2026-11-27", "q-0041", 128
	now := time.Now()
	payload := string(appendPayloadFiller(nil, payloadBytes))
	encode := func(seq int64) []byte {
		value, err := json.Marshal(rawValue{RunID: runID, Seq: seq, LogicalQueue: queue, ProducedAt: now.UTC().Format(activities.ProducedAtLayout), Payload: payload})
		if err != nil {
			b.Fatal(err)
		}
		return value
	}
	enc := newRawValueEncoder(runID, payloadBytes)
	if want, got := encode(41), enc.appendValue(nil, 41, queue, now); !bytes.Equal(got, want) {
		b.Fatalf("the encoder and encoding/json disagree:\n%s\n%s", got, want)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.SetBytes(int64(len(encode(int64(i)))))
	}
}
