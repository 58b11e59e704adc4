package verify

import (
	"encoding/json"
	"testing"
)

// BenchmarkFinalValueUnmarshal decodes the final values BenchmarkVerifierObserve
// checks, and does nothing else; `make bench` prints the ratio of the two,
// the cost of the checks beyond decoding.
func BenchmarkFinalValueUnmarshal(b *testing.B) {
	const n = 1 << 16
	values := make([][]byte, n)
	for i := range values {
		values[i] = finalRecord("nightly-2026-11-27", int64(i), 5).Value
	}
	b.ReportAllocs()
	var v finalValue
	for i := 0; b.Loop(); i++ {
		v = finalValue{Seq: absentNumber, BatchNumber: absentNumber}
		if err := json.Unmarshal(values[i%n], &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFinalValueRead is BenchmarkFinalValueUnmarshal's decoding by
// the hand-written reader Verify uses for values of the split job's shape.
func BenchmarkFinalValueRead(b *testing.B) {
	const n = 1 << 16
	values := make([][]byte, n)
	for i := range values {
		values[i] = finalRecord("nightly-2026-11-27", int64(i), 5).Value
	}
	b.ReportAllocs()
	var v finalValue
	for i := 0; b.Loop(); i++ {
		if !readFinalValue(values[i%n], &v) {
			b.Fatalf("value %s left to encoding/json", values[i%n])
		}
	}
}
