package deliver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
)

// topicModel is an enriched topic: the committed records of each partition
// by offset, with gaps where transaction markers and aborted records sit.
type topicModel map[int32][]int64

func newTopicModel(partitions int32, records int, gapEvery int) topicModel {
	t := topicModel{}
	for p := range partitions {
		offset := int64(0)
		for i := range records {
			if gapEvery > 0 && i > 0 && i%gapEvery == 0 {
				offset++ // a commit marker
			}
			t[p] = append(t[p], offset)
			offset++
		}
	}
	return t
}

// fetchOrder returns the topic's records from starts on as a fetch might:
// each partition in order, the partitions interleaved at random.
func (t topicModel) fetchOrder(rng *rand.Rand, starts map[int32]int64) []record {
	cursor := map[int32]int{}
	for p, offsets := range t {
		cursor[p] = slices.IndexFunc(offsets, func(o int64) bool { return o >= starts[p] })
		if cursor[p] < 0 {
			cursor[p] = len(offsets)
		}
	}
	var out []record
	for {
		var left []int32
		for p := range t {
			if cursor[p] < len(t[p]) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return out
		}
		slices.Sort(left)
		p := left[rng.IntN(len(left))]
		run := 1 + rng.IntN(40) // a fetch returns a run of a partition
		for ; run > 0 && cursor[p] < len(t[p]); run-- {
			out = append(out, record{p, t[p][cursor[p]]})
			cursor[p]++
		}
	}
}

// planOf plans up to maxRecords of records, as PlanSegment does.
func planOf(records []record, maxRecords int) SegmentPlan {
	pl := newPlanner(maxRecords)
	for _, r := range records {
		pl.add(r.partition, r.offset)
	}
	return pl.plan()
}

// cutPlanned reads records through a plan and cuts them as a segment does;
// it returns the batches as "id:seqs", sorted.
func cutPlanned(t *testing.T, plan SegmentPlan, size int, records []record) []string {
	t.Helper()
	reader := newPlanReader(plan)
	builder := newBatchBuilder("run", size)
	var batches []*deliveryBatch
	for _, r := range records {
		planned, _, err := reader.admit(r.partition, r.offset)
		if err != nil {
			t.Fatal(err)
		}
		if planned {
			batches = append(batches, builder.addPlanned(r.partition, r.offset, msg(r.offset*10+int64(r.partition)), plan.Ends[r.partition])...)
		}
	}
	if !reader.done() {
		t.Fatalf("plan %+v not read to its end", plan)
	}
	if open := builder.flush(); len(open) > 0 {
		t.Fatalf("%d batches still open after the plan's last records", len(open))
	}
	out := make([]string, len(batches))
	for i, b := range batches {
		seqs := make([]string, len(b.messages))
		for j, m := range b.messages {
			seqs[j] = fmt.Sprint(m.Seq)
		}
		out[i] = b.id + ":" + strings.Join(seqs, ",")
	}
	slices.Sort(out)
	return out
}

func TestPlannerStopsAtTheCapAndEndsPastTheLastRecord(t *testing.T) {
	plan := planOf([]record{{0, 0}, {1, 4}, {0, 2}, {1, 5}, {2, 9}, {0, 3}}, 5)
	want := SegmentPlan{Ends: map[int32]int64{0: 3, 1: 6, 2: 10}, Records: 5}
	if fmt.Sprint(plan) != fmt.Sprint(want) {
		t.Fatalf("plan = %+v, want %+v (the sixth record is beyond the cap)", plan, want)
	}
	if empty := planOf(nil, 10); !empty.Empty() {
		t.Fatalf("plan of nothing = %+v, want empty", empty)
	}
}

// Every attempt of a planned segment cuts the same batches, however the
// fetches interleave and whatever arrived after the plan was made. This is
// what stops a retried segment from sending messages under new batch ids.
func TestPlannedSegmentCutsTheSameBatchesOnEveryAttempt(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		starts := map[int32]int64{0: 0, 1: 3, 2: 0, 3: 11}
		before := newTopicModel(4, 230, 37)
		size := 1 + rng.IntN(120)
		plan := planOf(before.fetchOrder(rng, starts), 1+rng.IntN(900))
		first := cutPlanned(t, plan, size, before.fetchOrder(rng, starts))

		// More records arrived before the retry, and its fetches interleave
		// otherwise.
		after := newTopicModel(4, 400, 37)
		retry := cutPlanned(t, plan, size, after.fetchOrder(rng, starts))
		if !slices.Equal(first, retry) {
			t.Fatalf("seed %d: the retry cut other batches:\nfirst %v\nretry %v", seed, first, retry)
		}
		total := 0
		for _, b := range first {
			total += strings.Count(b, ",") + 1
		}
		if total != plan.Records {
			t.Fatalf("seed %d: batches hold %d records, the plan %d", seed, total, plan.Records)
		}
	}
}

// After a refused token, the rest of the plan cut from where the segment
// stopped gives exactly the batches the whole plan would have sent there.
func TestRestOfAPlanCutsTheBatchesTheWholePlanWould(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	topic := newTopicModel(3, 500, 50)
	starts := map[int32]int64{}
	plan := planOf(topic.fetchOrder(rng, starts), 1_500)
	whole := cutPlanned(t, plan, 100, topic.fetchOrder(rng, starts))

	// The segment stopped after partition 0's first two batches and
	// partition 1's first; partition 2 had none accepted.
	next := map[int32]int64{0: topic[0][200], 1: topic[1][100]}
	rest := plan.rest(next, 300)
	if rest == nil || rest.Records != plan.Records-300 || len(rest.Ends) != 3 {
		t.Fatalf("rest = %+v of plan %+v", rest, plan)
	}
	restBatches := cutPlanned(t, *rest, 100, topic.fetchOrder(rng, next))
	for _, b := range restBatches {
		if _, found := slices.BinarySearch(whole, b); !found {
			t.Fatalf("rest batch %.60s... is not one of the whole plan's", b)
		}
	}
	if len(restBatches)+3 != len(whole) {
		t.Fatalf("rest cut %d batches, the whole plan %d with 3 sent", len(restBatches), len(whole))
	}

	done := map[int32]int64{0: plan.Ends[0], 1: plan.Ends[1], 2: plan.Ends[2]}
	if r := plan.rest(done, plan.Records); r != nil {
		t.Fatalf("rest of a fully sent plan = %+v, want none", r)
	}
	var none *SegmentPlan
	if r := none.rest(next, 0); r != nil {
		t.Fatalf("rest without a plan = %+v", r)
	}
}

func TestPlanReaderRefusesATopicThatIsNotThePlannedOne(t *testing.T) {
	plan := SegmentPlan{Ends: map[int32]int64{0: 10, 1: 5}, Records: 4}
	cases := []struct {
		name    string
		records []record
	}{
		{"the last planned record is missing", []record{{0, 2}, {0, 12}}},
		{"more records than planned", []record{{0, 1}, {0, 2}, {1, 3}, {0, 4}, {0, 5}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reader := newPlanReader(plan)
			var err error
			for _, r := range c.records {
				if _, _, err = reader.admit(r.partition, r.offset); err != nil {
					break
				}
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != errtype.InvalidInput {
				t.Fatalf("err = %v, want a non-retryable %s", err, errtype.InvalidInput)
			}
		})
	}

	reader := newPlanReader(plan)
	for _, r := range []record{{2, 0}, {0, 3}, {1, 4}, {1, 5}, {0, 9}, {0, 10}} {
		if _, _, err := reader.admit(r.partition, r.offset); err != nil {
			t.Fatalf("record %+v: %v", r, err)
		}
	}
	if !reader.done() || reader.read != 3 {
		t.Fatalf("reader read %d, done %v; want 3 planned records and done", reader.read, reader.done())
	}
}

func TestValidatePlanAgainstStartsAndQuota(t *testing.T) {
	ok := &SegmentPlan{Ends: map[int32]int64{0: 10, 1: 4}, Records: 12}
	if err := ok.validate(map[int32]int64{0: 2}, 12); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		plan   *SegmentPlan
		starts map[int32]int64
		max    int
		want   string
	}{
		"over the quota":       {ok, nil, 11, "more than MaxMessages"},
		"end before the start": {ok, map[int32]int64{1: 4}, 12, "not past the start"},
		"empty":                {&SegmentPlan{}, nil, 12, "empty plan"},
	} {
		if err := c.plan.validate(c.starts, c.max); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}

// The accepted topic's record of a batch says which answer it was: the
// seqs in the order sent, the attempt, and whether the endpoint replayed it.
func TestAcceptedRecordAndTheReplayedAnswer(t *testing.T) {
	batch := buildAll("r", 3, []record{{2, 7}, {2, 9}, {2, 10}})[0]
	calls := 0
	ec := endpointFor(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls > 1 {
			w.Header().Set(endpointapi.ReplayedHeader, "true")
		}
		acceptBatch(w, r)
	})
	var retries atomic.Int64
	body := batchRequestBody("unit", batch)
	poster := ec.poster(discard, &retries)
	first, err := poster.postBatch(context.Background(), "tok", batch, body)
	if err != nil {
		t.Fatal(err)
	}
	again, err := poster.postBatch(context.Background(), "tok", batch, body)
	if err != nil {
		t.Fatal(err)
	}
	if first.replayed || !again.replayed {
		t.Fatalf("replayed = %v then %v, want false then true", first.replayed, again.replayed)
	}
	at := time.UnixMilli(1_796_000_000_000)
	rec := acceptedRecord(batch, 4, 2, again.replayed, at)
	want := activities.AcceptedBatch{
		BatchID: "r-p2-o7-10", Segment: 4, Attempt: 2, Replayed: true,
		Seqs: []int64{72, 92, 102}, AcceptedAtUnixMillis: at.UnixMilli(),
	}
	if fmt.Sprint(rec) != fmt.Sprint(want) {
		t.Fatalf("accepted record %+v, want %+v", rec, want)
	}
}
