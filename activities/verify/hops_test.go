package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// rawRecord is a raw (or, with enriched, an enriched) record of the contract,
// as the producer and the Flink job write it: compact JSON.
func rawRecord(runID string, seq int64, enriched bool) *kgo.Record {
	// The payload comes first and looks like a seq field, escaped as any
	// JSON string would have it.
	value := fmt.Sprintf(`{"payload":"xx\"seq\":7\"run_id\":\"x","run_id":%q,"seq":%d,"logical_queue":"q-%04d","produced_at":"2026-01-02T03:04:05.000000Z"`,
		runID, seq, seq%100)
	rec := &kgo.Record{Key: fmt.Appendf(nil, "q-%04d", seq%100), Partition: int32(seq % 3), Offset: seq}
	if enriched {
		id := correlationID(runID, seq)
		value += fmt.Sprintf(`,"correlation_id":%q`, id)
		rec.Headers = []kgo.RecordHeader{{Key: activities.HeaderCorrelationID, Value: []byte(id)}}
	}
	rec.Value = []byte(value + "}")
	return rec
}

func acceptedRecord(batchID string, replayed bool, seqs ...int64) *kgo.Record {
	value, err := json.Marshal(activities.AcceptedBatch{BatchID: batchID, Replayed: replayed, Seqs: seqs})
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Key: []byte(batchID), Value: value}
}

func TestMessageHopCountsEachSeqOnce(t *testing.T) {
	for _, enriched := range []bool{false, true} {
		hop := newMessageHop("run", 10, enriched)
		for seq := range int64(10) {
			if seq != 4 {
				hop.observe(rawRecord("run", seq, enriched))
			}
		}
		hop.observe(rawRecord("run", 2, enriched))
		got := hop.hopCount(HopRaw, "t")
		if got.Records != 10 || got.Unique != 9 || got.Missing != 1 || got.Duplicated != 1 || got.BadRecords != 0 {
			t.Errorf("enriched %v: %+v", enriched, got)
		}
		if !slices.Equal(got.FirstMissing, []int64{4}) || !slices.Equal(got.FirstDuplicated, []int64{2}) {
			t.Errorf("enriched %v: first missing %v, first duplicated %v", enriched, got.FirstMissing, got.FirstDuplicated)
		}
		if got.Exact(10) {
			t.Errorf("enriched %v: a hop with a missing and a duplicated seq is exact", enriched)
		}
	}
}

func TestMessageHopFlagsContractBreaks(t *testing.T) {
	cases := map[string]func(*kgo.Record){
		"not json":      func(r *kgo.Record) { r.Value = []byte("{nope") },
		"no seq":        func(r *kgo.Record) { r.Value = []byte(`{"run_id":"run"}`) },
		"seq too large": func(r *kgo.Record) { r.Value = []byte(`{"run_id":"run","seq":10}`) },
		"negative seq":  func(r *kgo.Record) { r.Value = []byte(`{"run_id":"run","seq":-1}`) },
		"other run":     func(r *kgo.Record) { r.Value = []byte(`{"run_id":"other","seq":3}`) },
		"wrong id": func(r *kgo.Record) {
			r.Value = []byte(`{"run_id":"run","seq":3,"correlation_id":"` + correlationID("run", 4) + `"}`)
		},
		"header missing": func(r *kgo.Record) { r.Headers = nil },
	}
	for name, mutate := range cases {
		hop := newMessageHop("run", 10, true)
		for seq := range int64(10) {
			rec := rawRecord("run", seq, true)
			if seq == 3 {
				mutate(rec)
			}
			hop.observe(rec)
		}
		got := hop.hopCount(HopEnriched, "t")
		if got.BadRecords != 1 || got.Unique != 9 || len(hop.tally.problems) != 1 || got.Exact(10) {
			t.Errorf("%s: %+v, problems %q", name, got, hop.tally.problems)
		}
	}
}

func TestMessageHopReadsValuesThatAreNotCompact(t *testing.T) {
	hop := newMessageHop("run", 2, true)
	for seq := range int64(2) {
		rec := rawRecord("run", seq, true)
		var fields map[string]any
		if err := json.Unmarshal(rec.Value, &fields); err != nil {
			t.Fatal(err)
		}
		rec.Value, _ = json.MarshalIndent(fields, "", "  ")
		hop.observe(rec)
	}
	if got := hop.hopCount(HopEnriched, "t"); !got.Exact(2) {
		t.Errorf("indented values: %+v, problems %q", got, hop.tally.problems)
	}
}

func TestMessageHopDoesNotAllocatePerRecord(t *testing.T) {
	records := make([]*kgo.Record, 1000)
	for i := range records {
		records[i] = rawRecord("nightly-2026-11-27", int64(i), true)
	}
	hop := newMessageHop("nightly-2026-11-27", 1000, true)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		hop.observe(records[i%len(records)])
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per record", allocs)
	}
}

func TestAcceptedHopCountsASeqUnderTwoBatchIDsTwice(t *testing.T) {
	hop := newAcceptedHop(6)
	hop.observe(acceptedRecord("r-p0-o0-2", false, 0, 1, 2))
	hop.observe(acceptedRecord("r-p0-o3-5", false, 3, 4, 5))
	// A retried segment cut the same messages at other bounds: another id.
	hop.observe(acceptedRecord("r-p0-o2-3", false, 2, 3))
	got := hop.hopCount("accepted")
	if got.Records != 8 || got.Unique != 6 || got.Duplicated != 2 || got.Missing != 0 || got.Exact(6) {
		t.Errorf("%+v", got)
	}
	if !slices.Equal(got.FirstDuplicated, []int64{2, 3}) {
		t.Errorf("first duplicated %v", got.FirstDuplicated)
	}
}

func TestAcceptedHopDoesNotCountReplaysAgain(t *testing.T) {
	hop := newAcceptedHop(6)
	hop.observe(acceptedRecord("r-p0-o0-2", false, 0, 1, 2))
	hop.observe(acceptedRecord("r-p0-o0-2", true, 0, 1, 2)) // a retry answered from the idempotency store
	hop.observe(acceptedRecord("r-p0-o0-2", false, 0, 1, 2))
	// The first answer to this batch was lost: only the replay was recorded.
	hop.observe(acceptedRecord("r-p0-o3-5", true, 3, 4, 5))
	hop.observe(acceptedRecord("r-p0-o3-5", true, 3, 4, 5))
	got := hop.hopCount("accepted")
	if !got.Exact(6) || got.Records != 6 {
		t.Errorf("replays counted again: %+v", got)
	}
	for _, want := range []string{"2 batches", "3 replayed answers", "1 batches seen only as replays", "1 batch ids recorded twice"} {
		if !strings.Contains(got.Note, want) {
			t.Errorf("note %q lacks %q", got.Note, want)
		}
	}
}

func TestAcceptedHopCountsMissingAndBadEntries(t *testing.T) {
	hop := newAcceptedHop(5)
	hop.observe(acceptedRecord("r-p0-o0-1", false, 0, 1, 9))
	hop.observe(&kgo.Record{Value: []byte("garbage")})
	got := hop.hopCount("accepted")
	if got.Unique != 2 || got.Missing != 3 || got.BadRecords != 2 || !slices.Equal(got.FirstMissing, []int64{2, 3, 4}) {
		t.Errorf("%+v", got)
	}
}

// countedHops counts a complete run of n messages at every hop, then lets
// edit change what one hop saw.
func countedHops(n int64, names activities.RunNames, edit func(*hopCounts)) *hopCounts {
	c := newHopCounts(Input{Names: names, Messages: n, IdleTimeoutMillis: 1}, nil)
	for seq := range n {
		c.raw.observe(rawRecord(names.RunID, seq, false))
		c.enriched.observe(rawRecord(names.RunID, seq, true))
	}
	if c.accepted != nil {
		for seq := int64(0); seq < n; seq += 2 {
			c.accepted.observe(acceptedRecord(fmt.Sprintf("%s-p0-o%d-%d", names.RunID, seq, seq+1), false, seq, seq+1))
		}
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func finalResult(n int64) Result {
	return Result{Expected: n, Records: n, Unique: n}
}

var testNames = activities.RunNames{RunID: "r", RawTopic: "raw", EnrichedTopic: "enriched", FinalTopic: "final", AcceptedTopic: "accepted"}

func TestJudgePassesOnlyWhenEveryHopIsExact(t *testing.T) {
	res := countedHops(10, testNames, nil).judge(finalResult(10))
	if !res.Passed() || len(res.Problems) != 0 {
		t.Fatalf("clean run: passed %v, problems %q", res.Passed(), res.Problems)
	}
	if got := hopNames(res.Hops); !slices.Equal(got, []string{HopRaw, HopEnriched, HopEndpoint, HopFinal}) {
		t.Errorf("hops %v", got)
	}
	// Every record has the same (zero) timestamp: one point per hop; the
	// final topic's arrivals come from the verifier, not here.
	if s := res.Series; s == nil || !slices.Equal(s.Produced, []int64{10}) || !slices.Equal(s.Enriched, []int64{10}) || !slices.Equal(s.Delivered, []int64{10}) {
		t.Errorf("series %+v", s)
	}

	res = countedHops(10, testNames, func(c *hopCounts) {
		c.accepted.observe(acceptedRecord("r-p0-o1-2", false, 1, 2))
	}).judge(finalResult(10))
	if res.Passed() {
		t.Fatal("a seq accepted under two batch ids passed")
	}
	if !slices.Equal(res.FailedHops(), []string{HopEndpoint}) {
		t.Errorf("failed hops %v, want [endpoint]", res.FailedHops())
	}
	if len(res.Problems) == 0 || !strings.HasPrefix(res.Problems[0], "hop endpoint (accepted): 10 of 10 unique, 0 missing, 2 duplicated") {
		t.Errorf("problems %q", res.Problems)
	}

	res = countedHops(10, testNames, func(c *hopCounts) {
		c.raw.observe(rawRecord("r", 7, false))
	}).judge(finalResult(10))
	if !slices.Equal(res.FailedHops(), []string{HopRaw}) || res.Passed() {
		t.Errorf("raw duplicate: failed hops %v, passed %v", res.FailedHops(), res.Passed())
	}
}

func TestJudgeSkipsTheEndpointOfAnOlderRun(t *testing.T) {
	older := testNames
	older.AcceptedTopic = ""
	res := countedHops(10, older, nil).judge(finalResult(10))
	if !res.Passed() {
		t.Fatalf("older run without an accepted topic failed: %q", res.Problems)
	}
	endpoint := res.Hops[2]
	if endpoint.Hop != HopEndpoint || !endpoint.Skipped || !strings.Contains(endpoint.Note, "no accepted topic") {
		t.Errorf("endpoint hop %+v", endpoint)
	}
}

func TestJudgeKeepsTheFinalTopicsVerdict(t *testing.T) {
	final := finalResult(10)
	final.Unique, final.Missing = 9, 1
	res := countedHops(10, testNames, nil).judge(final)
	if res.Passed() || !slices.Equal(res.FailedHops(), []string{HopFinal}) {
		t.Errorf("passed %v, failed hops %v", res.Passed(), res.FailedHops())
	}
	// A result recorded before hops were counted is judged as before.
	if (Result{Expected: 3, Records: 3, Unique: 3}).Passed() != true {
		t.Error("a result without hops that is exact does not pass")
	}
}

func TestJudgeCapsProblemLinesOnce(t *testing.T) {
	v := newVerifier("r", 100)
	for seq := range int64(100) {
		rec := finalRecord("r", seq, 1)
		rec.Value = []byte("garbage")
		v.observe(rec)
	}
	res := countedHops(100, testNames, func(c *hopCounts) {
		for range 10 {
			c.raw.observe(&kgo.Record{Value: []byte("x")})
		}
	}).judge(v.result())
	if len(res.Problems) != maxProblemLines || !strings.HasPrefix(res.Problems[0], "hop raw") {
		t.Fatalf("%d lines, first %q", len(res.Problems), res.Problems[0])
	}
	// raw: summary + 10 records; final: 2 summaries + 100 records.
	if last := res.Problems[maxProblemLines-1]; last != fmt.Sprintf("... and %d more problems", 1+10+2+100-(maxProblemLines-1)) {
		t.Errorf("last line %q", last)
	}
}

func hopNames(hops []HopCount) []string {
	var names []string
	for _, h := range hops {
		names = append(names, h.Hop)
	}
	return names
}

func TestOwnCountOfTheReferenceEndpoint(t *testing.T) {
	var answer func(w http.ResponseWriter, r *http.Request)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, r) }))
	defer server.Close()
	acts, err := New(nil).CrossCheckWith(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	stats := func(s endpointapi.RunStats) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/runs/r/stats" {
				http.NotFound(w, r)
				return
			}
			_ = json.NewEncoder(w).Encode(s)
		}
	}
	ctx := context.Background()

	answer = http.NotFound
	got := acts.reference.ownCount(ctx, "r", 10)
	if !got.Skipped || !strings.Contains(got.Note, "not available: the endpoint has no per-run stats route") || !got.Exact(10) {
		t.Errorf("no stats route: %+v", got)
	}

	answer = stats(endpointapi.RunStats{RunID: "r", Batches: 6, AcceptedMessages: 12, UniqueSeqs: 10, DuplicatedSeqs: 2, Complete: true})
	got = acts.reference.ownCount(ctx, "r", 10)
	if got.Skipped || got.Records != 12 || got.Unique != 10 || got.Duplicated != 2 || got.Missing != 0 || got.Exact(10) {
		t.Errorf("duplicates: %+v", got)
	}

	answer = stats(endpointapi.RunStats{RunID: "r", AcceptedMessages: 8, UniqueSeqs: 8, Complete: false})
	if got = acts.reference.ownCount(ctx, "r", 10); !got.Skipped || got.Missing != 2 || !strings.Contains(got.Note, "not judged") {
		t.Errorf("incomplete: %+v", got)
	}

	answer = stats(endpointapi.RunStats{RunID: "r", Batches: 5, AcceptedMessages: 10, UniqueSeqs: 10, Complete: true})
	c := countedHops(10, testNames, nil)
	c.reference = acts.reference
	c.ownCount = acts.reference.ownCount(ctx, "r", 10)
	res := c.judge(finalResult(10))
	own := res.Hops[3]
	if !res.Passed() || own.Hop != HopEndpointOwnCount || !strings.Contains(own.Note, "agrees with the accepted topic") {
		t.Errorf("clean cross-check: passed %v, %+v", res.Passed(), own)
	}
}

func TestCrossCheckWithRefusesAnURLThatIsNotHTTP(t *testing.T) {
	if _, err := New(nil).CrossCheckWith("ftp://user:secret@host/"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("got %v; want an error without the password", err)
	}
	acts, err := New(nil).CrossCheckWith("")
	if err != nil || acts.reference != nil {
		t.Errorf("empty URL: %v, %+v", err, acts)
	}
}
