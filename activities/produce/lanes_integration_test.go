//go:build integration

package produce

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// laneInput is chunk of lane 0, 10,000 messages at rate (0: unlimited).
func laneInput(names activities.RunNames, chunk int, rate float64) ChunkInput {
	in := produceInput(names, chunk, 10_000, rate)
	in.TransactionalID = LaneTransactionalID(names, 0)
	return in
}

// keptProducer is the producer w keeps for in's lane, nil if none.
func keptProducer(w *Writer, in ChunkInput) *kgo.Client {
	return w.producers.Kept(in.TransactionalID)
}

func writeLaneChunk(t *testing.T, w *Writer, in ChunkInput) ChunkResult {
	t.Helper()
	res, err := w.WriteChunk(context.Background(), in, false, activities.Reporter{Log: activitytest.Discard})
	if err != nil {
		t.Fatalf("chunk %d: %v", in.Chunk, err)
	}
	if res.Produced != in.Count || res.AlreadyCommitted {
		t.Fatalf("chunk %d: %+v, want %d produced", in.Chunk, res, in.Count)
	}
	return res
}

func TestLaneKeepsItsProducerFromChunkToChunk(t *testing.T) {
	conn := activitytest.Conn(t)
	w := NewWriter(conn)
	t.Cleanup(w.Close)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)

	writeLaneChunk(t, w, laneInput(names, 0, 0))
	first := keptProducer(w, laneInput(names, 0, 0))
	if first == nil {
		t.Fatal("no producer kept for the lane after its first chunk")
	}
	writeLaneChunk(t, w, laneInput(names, 1, 0))
	if kept := keptProducer(w, laneInput(names, 1, 0)); kept != first {
		t.Fatal("the lane's second chunk did not keep using the producer of its first")
	}
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, 20_000, 3*time.Second), 0, 20_000)
}

// TestKeptProducerFencedElsewhereClaimsAnew forces the moment a kept
// producer is stale: worker A keeps the lane's producer from chunk 0, then
// the lane's chunk 1 runs on worker B, whose claim of the lane's id fences
// A's kept producer. Chunk 2 on A must find its producer refused before it
// writes, claim the id anew and commit.
func TestKeptProducerFencedElsewhereClaimsAnew(t *testing.T) {
	names, workerA, workerB := twoWorkersAfterChunk0(t)
	stale := keptProducer(workerA, laneInput(names, 0, 0))
	writeLaneChunk(t, workerB, laneInput(names, 1, 0))
	writeLaneChunk(t, workerA, laneInput(names, 2, 0))
	if kept := keptProducer(workerA, laneInput(names, 2, 0)); kept == nil || kept == stale {
		t.Fatal("worker A kept no producer, or the stale one, after claiming the lane anew")
	}
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, 30_000, 3*time.Second), 0, 30_000)
}

// TestLaneRetryFencesTheAttemptStillWriting forces a retry while the
// earlier attempt still writes: worker A keeps the lane's producer from
// chunk 0; chunk 1's first attempt runs slowly on worker B (as when B
// stalled past its heartbeat timeout) and the retry lands on A. The retry
// must claim the lane's id rather than take A's kept producer, which
// fences B's attempt and aborts its transaction at once; a retry with the
// kept producer would find B's open transaction on the ledger and wait for
// it instead.
func TestLaneRetryFencesTheAttemptStillWriting(t *testing.T) {
	names, workerA, workerB := twoWorkersAfterChunk0(t)

	slow := laneInput(names, 1, 4_000)
	var slowErr error
	var slowRes ChunkResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		slowRes, slowErr = workerB.WriteChunk(context.Background(), slow, false, activities.Reporter{Log: activitytest.Discard})
	}()
	time.Sleep(800 * time.Millisecond)
	retry := laneInput(names, 1, 0)
	res, err := workerA.WriteChunk(context.Background(), retry, true, activities.Reporter{Log: activitytest.Discard})
	<-done
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if slowErr == nil {
		t.Fatalf("the attempt on worker B committed (%+v) while the retry %+v waited for it", slowRes, res)
	}
	t.Logf("fenced attempt on worker B: %v", slowErr)
	if res.Produced != 10_000 || res.AlreadyCommitted {
		t.Fatalf("retry: %+v", res)
	}
	checkRawRecords(t, names, activitytest.ConsumeCommitted(t, names.RawTopic, 20_000, 3*time.Second), 0, 20_000)
}

// twoWorkersAfterChunk0 prepares a run and two workers' writers, of which
// worker A has written the run's chunk 0 on lane 0 and kept the producer.
func twoWorkersAfterChunk0(t *testing.T) (names activities.RunNames, workerA, workerB *Writer) {
	conn := activitytest.Conn(t)
	workerA, workerB = NewWriter(conn), NewWriter(conn)
	t.Cleanup(workerA.Close)
	t.Cleanup(workerB.Close)
	names = activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)
	writeLaneChunk(t, workerA, laneInput(names, 0, 0))
	return names, workerA, workerB
}
