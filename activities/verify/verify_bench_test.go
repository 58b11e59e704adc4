package verify

import (
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// benchRunID and benchFinalRecords are what BenchmarkVerifierObserve
// checks and the decoding benchmarks decode.
const benchRunID = "nightly-2026-11-27"

func benchFinalRecords() []*kgo.Record {
	records := make([]*kgo.Record, 1<<16)
	for i := range records {
		records[i] = finalRecord(benchRunID, int64(i), 5)
	}
	return records
}

func benchFinalValues() [][]byte {
	records := benchFinalRecords()
	values := make([][]byte, len(records))
	for i, r := range records {
		values[i] = r.Value
	}
	return values
}

// BenchmarkFinalValueUnmarshal decodes the final values BenchmarkVerifierObserve
// checks with encoding/json, and does nothing else; `make bench` prints it
// beside BenchmarkFinalValueRead.
func BenchmarkFinalValueUnmarshal(b *testing.B) {
	values := benchFinalValues()
	b.ReportAllocs()
	var v finalValue
	for i := 0; b.Loop(); i++ {
		v = finalValue{Seq: absentNumber, BatchNumber: absentNumber}
		if err := json.Unmarshal(values[i%len(values)], &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFinalValueRead decodes the same values by the hand-written
// reader Verify uses for values of the split job's shape; `make bench`
// prints the ratio of BenchmarkVerifierObserve to it, the cost of the
// checks beyond decoding.
func BenchmarkFinalValueRead(b *testing.B) {
	values := benchFinalValues()
	b.ReportAllocs()
	var v finalValue
	for i := 0; b.Loop(); i++ {
		if value := values[i%len(values)]; !readFinalValue(value, &v) {
			b.Fatalf("value %s left to encoding/json", value)
		}
	}
}
