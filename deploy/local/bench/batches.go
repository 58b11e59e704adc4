package main

import (
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batchMeter counts the record batches the brokers acknowledged to the
// clients of the bench's Kafka connection, which flowproof's producer sides
// write through. A broker's work grows with the batches it appends and
// replicates as well as with their records and bytes, so a side's batches
// say where its CPU per record comes from: the ledger's record adds one
// small batch a chunk, the chunk's records one batch per partition and
// produce request.
type batchMeter struct {
	batches, records, uncompressed, compressed atomic.Int64
}

// A hook whose method does not match is never called, and counts nothing.
var _ kgo.HookProduceBatchWritten = (*batchMeter)(nil)

// OnProduceBatchWritten implements kgo.HookProduceBatchWritten.
func (m *batchMeter) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, batch kgo.ProduceBatchMetrics) {
	m.batches.Add(1)
	m.records.Add(int64(batch.NumRecords))
	m.uncompressed.Add(int64(batch.UncompressedBytes))
	m.compressed.Add(int64(batch.CompressedBytes))
}

// take returns what was counted since the last take and starts again.
func (m *batchMeter) take() batchFigures {
	return batchFigures{
		batches:           m.batches.Swap(0),
		records:           m.records.Swap(0),
		uncompressedBytes: m.uncompressed.Swap(0),
		compressedBytes:   m.compressed.Swap(0),
	}
}

// batchFigures are the batches of one producer side.
type batchFigures struct {
	batches, records, uncompressedBytes, compressedBytes int64
}

func (f batchFigures) recordsPerBatch() float64 {
	if f.batches == 0 {
		return 0
	}
	return float64(f.records) / float64(f.batches)
}

// text is e.g. "10,216 batches of 97.9 records, 29.4 KiB each (3.3 KiB
// compressed)".
func (f batchFigures) text() string {
	if f.batches == 0 {
		return "no batches counted"
	}
	perBatch := func(bytes int64) float64 { return float64(bytes) / float64(f.batches) / 1024 }
	return fmt.Sprintf("%s batches of %.1f records, %.1f KiB each (%.1f KiB compressed)",
		thousands(float64(f.batches)), f.recordsPerBatch(), perBatch(f.uncompressedBytes), perBatch(f.compressedBytes))
}
