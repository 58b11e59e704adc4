package endpoint

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/flowproof/flowproof/internal/endpointapi"
)

// seqBatch is a batch of the given seqs under batchID.
func seqBatch(t *testing.T, batchID string, seqs ...int64) []byte {
	t.Helper()
	req := endpointapi.BatchRequest{BatchID: batchID}
	for _, seq := range seqs {
		req.Messages = append(req.Messages, endpointapi.Message{CorrelationID: "c", Seq: seq, LogicalQueue: "q"})
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func (h *harness) runStats(t *testing.T, runID string) endpointapi.RunStats {
	t.Helper()
	r := h.do(t, http.MethodGet, endpointapi.RunStatsURL("", runID), nil)
	if r.status != http.StatusOK {
		t.Fatalf("stats of %s: %d %s", runID, r.status, r.body)
	}
	var stats endpointapi.RunStats
	if err := json.Unmarshal(r.body, &stats); err != nil {
		t.Fatalf("decode stats %s: %v", r.body, err)
	}
	return stats
}

func TestRunStatsCountTheRunsAcceptedSeqs(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 1000)
	send := func(batchID string, seqs ...int64) {
		t.Helper()
		h.post(t, token, seqBatch(t, batchID, seqs...), endpointapi.IdempotencyKeyHeader, batchID).batch(t)
	}
	send("run-1-p0-o0-2", 0, 1, 2)
	send("run-1-p1-o0-2", 3, 4, 5)
	send("run-1-p1-o0-2", 3, 4, 5) // a retry: replayed, not accepted again
	send("run-1-p0-o1-3", 1, 2, 6) // the same messages cut at other bounds
	send("run-1-p0-o1-1", 1)       // and seq 1 a third time
	send("run-1-p7-o0-0", 9)       // another run's batch ids below
	send("run-1-p-o0-0", 7)
	send("run-10-p0-o0-2", 0, 1, 2)
	send("run-1-p0-o9-x", 8)
	// Without an Idempotency-Key nothing is kept, so nothing can be counted.
	h.post(t, token, seqBatch(t, "run-1-p2-o0-0", 7)).batch(t)

	got := h.runStats(t, "run-1")
	want := endpointapi.RunStats{RunID: "run-1", Batches: 5, AcceptedMessages: 11, UniqueSeqs: 8, DuplicatedSeqs: 2,
		Complete: true, WindowSeconds: int64(DefaultIdempotencyTTL.Seconds())}
	if got != want {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	if got := h.runStats(t, "run-10"); got.AcceptedMessages != 3 || got.UniqueSeqs != 3 || got.DuplicatedSeqs != 0 {
		t.Errorf("run-10: %+v", got)
	}
	if got := h.runStats(t, "nobody"); got.Batches != 0 || got.AcceptedMessages != 0 || !got.Complete {
		t.Errorf("unknown run: %+v", got)
	}
}

func TestRunStatsSayWhenSeqsWereNotCounted(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 1000)
	h.post(t, token, seqBatch(t, "r-p0-o0-1", 1, maxCountedSeq), endpointapi.IdempotencyKeyHeader, "r-p0-o0-1").batch(t)
	if got := h.runStats(t, "r"); got.Complete || got.AcceptedMessages != 2 || got.UniqueSeqs != 1 {
		t.Errorf("a seq beyond the bitmap: %+v, want incomplete figures", got)
	}
}

func TestRunOfBatch(t *testing.T) {
	for batchID, want := range map[string]string{
		"run-1-p0-o0-2":          "run-1",
		"run-1-p12-o100-199":     "run-1",
		"a-p1-o2-3-p4-o5-6":      "a-p1-o2-3",
		"run-1-p-o0-0":           "",
		"run-1-p0-o9-x":          "",
		"run-1-p0-o-1":           "",
		"-p0-o0-0":               "",
		"plain-batch":            "",
		"flowproof-x-p3-o7-7-p0": "",
	} {
		if got := runOfBatch(batchID); got != want {
			t.Errorf("runOfBatch(%q) = %q, want %q", batchID, got, want)
		}
	}
}
