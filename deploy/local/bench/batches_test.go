package main

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBatchMeterTakesWhatWasWrittenSinceTheLastTake(t *testing.T) {
	var m batchMeter
	m.OnProduceBatchWritten(kgo.BrokerMetadata{}, "raw", 0, kgo.ProduceBatchMetrics{NumRecords: 100, UncompressedBytes: 30 << 10, CompressedBytes: 3 << 10})
	m.OnProduceBatchWritten(kgo.BrokerMetadata{}, "raw", 1, kgo.ProduceBatchMetrics{NumRecords: 300, UncompressedBytes: 90 << 10, CompressedBytes: 9 << 10})
	got := m.take()
	want := batchFigures{batches: 2, records: 400, uncompressedBytes: 120 << 10, compressedBytes: 12 << 10}
	if got != want {
		t.Fatalf("take() = %+v; want %+v", got, want)
	}
	if got.recordsPerBatch() != 200 {
		t.Errorf("records a batch = %v; want 200", got.recordsPerBatch())
	}
	if text := got.text(); text != "2 batches of 200.0 records, 60.0 KiB each (6.0 KiB compressed)" {
		t.Errorf("text = %q", text)
	}
	if again := m.take(); again != (batchFigures{}) {
		t.Errorf("a second take() = %+v; want nothing counted since the first", again)
	}
}
