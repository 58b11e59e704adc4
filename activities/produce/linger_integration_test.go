//go:build integration

package produce

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// batchCounter counts the record batches brokers acknowledged, by topic.
type batchCounter struct {
	mu      sync.Mutex
	batches map[string]int
}

func (c *batchCounter) OnProduceBatchWritten(_ kgo.BrokerMetadata, topic string, _ int32, _ kgo.ProduceBatchMetrics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches[topic]++
}

func (c *batchCounter) of(topic string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batches[topic]
}

// TestPacedChunkGoesOutInOneBatchPerPartition paces a chunk over half a
// second, a tenth of a second's worth of records at a time. Without the
// producer's linger each step goes out on its own, five or more batches per
// partition; with it the chunk leaves at its Flush, one batch per
// partition. A stall of the machine may split a partition's records once;
// twice as many batches as partitions still fails without the linger.
func TestPacedChunkGoesOutInOneBatchPerPartition(t *testing.T) {
	counter := &batchCounter{batches: make(map[string]int)}
	conn := activitytest.EnvConn(t, kgo.WithHooks(counter))
	w := NewWriter(conn)
	t.Cleanup(w.Close)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)

	in := laneInput(names, 0, 20_000)
	writeLaneChunk(t, w, in)
	batches := counter.of(names.RawTopic)
	t.Logf("%d records in %d batches over %d partitions", in.Count, batches, itPartitions)
	if batches > 2*itPartitions {
		t.Fatalf("the chunk's %d records went out in %d batches over %d partitions; want at most %d: its producer does not linger until the chunk's Flush",
			in.Count, batches, itPartitions, 2*itPartitions)
	}
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, in.Count, 3*time.Second), 0, in.Count)
}
