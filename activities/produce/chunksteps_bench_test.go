//go:build integration

package produce

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// BenchmarkChunkSteps times the steps of ProduceChunk one chunk of 10,000
// after another on a 100-partition raw topic of the stack's Kafka, and
// reports each step's mean: claiming the transactional id, reading the
// ledger, adding the partitions (where waiting for the lane's previous
// transaction to finish shows), writing the records, committing. In
// "own-id" each chunk claims an id of its own (inputs without a lane); in
// "1-lane" and "2-lanes" the chunks take turns in that many lanes, each
// lane's producer claimed once and kept, as a worker keeps it.
// docs/performance.md, "Producers kept across a lane's chunks", has its
// figures. The connection takes the FLOWPROOF_KAFKA_TLS* and
// _SASL_* settings, so it measures the secure profile too:
//
//	eval "$(bin/stackctl env)"
//	go test -tags integration -run '^$' -bench ChunkSteps -benchtime 20x ./activities/produce/
func BenchmarkChunkSteps(b *testing.B) {
	for _, lanes := range []int{0, 1, 2} {
		name := map[int]string{0: "own-id", 1: "1-lane", 2: "2-lanes"}[lanes]
		b.Run(name, func(b *testing.B) { benchmarkChunkSteps(b, lanes) })
	}
}

// benchmarkChunkSteps writes chunk c in lane c mod lanes, keeping each
// lane's producer; with no lanes each chunk claims an id of its own.
func benchmarkChunkSteps(b *testing.B, lanes int) {
	ctx := context.Background()
	conn := activitytest.EnvConn(b)
	names := activitytest.UniqueNames(b, "chunksteps")
	prepareRun(b, conn, names, 100)
	steps := []string{"claim", "ledger", "add", "write", "commit"}
	spent := make([]time.Duration, len(steps))
	chunk := 0
	kept := make([]*kgo.Client, max(lanes, 1))
	for b.Loop() {
		lane := chunk % len(kept)
		in := produceInput(names, chunk, 10_000, 0)
		if lanes > 0 {
			in.TransactionalID = LaneTransactionalID(names, lane)
		}
		producer := kept[lane]
		chunk++
		var progress chunkCounters
		mark := time.Now()
		lap := func(step int) {
			spent[step] += time.Since(mark)
			mark = time.Now()
		}
		if producer == nil {
			var err error
			if producer, err = claimChunk(ctx, conn, in); err != nil {
				b.Fatal(err)
			}
		}
		lap(0)
		if _, err := ledgerHasChunk(ctx, conn, in); err != nil {
			b.Fatal(err)
		}
		lap(1)
		if err := producer.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		if err := addChunkPartitions(ctx, conn, producer, in); err != nil {
			b.Fatal(err)
		}
		lap(2)
		if _, err := writeChunkRecords(ctx, producer, in, &progress); err != nil {
			b.Fatal(err)
		}
		lap(3)
		if err := commitChunk(ctx, producer, in.Chunk); err != nil {
			b.Fatal(err)
		}
		lap(4)
		if lanes > 0 {
			kept[lane] = producer
		} else {
			producer.Close()
		}
	}
	for _, producer := range kept {
		if producer != nil {
			producer.Close()
		}
	}
	for i, step := range steps {
		b.ReportMetric(float64(spent[i].Microseconds())/1000/float64(chunk), step+"-ms/chunk")
	}
}
