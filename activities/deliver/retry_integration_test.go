//go:build integration

package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/localstack"
)

// The bad moment of a delivery segment: its attempt is cut off after the
// endpoint accepted some of its batches, and the retry reads a topic that
// has grown meanwhile, so its fetches interleave otherwise.
const (
	cutOffFirst    = 1150 // 230 per partition: batches of 100, 100 and 30
	cutOffLater    = 1000 // arrive between the attempts
	cutOffAccepted = 12   // answers the first attempt gets before its connections die
	cutOffMax      = 2000 // the segment's bound, above what the first attempt can read
)

// connectionKiller forwards batches to the endpoint and, once it has passed
// on `after` accepted answers, kills the connection of every further
// accepted batch instead of answering: the endpoint accepted it, the client
// never hears so. killed is closed at the first kill.
type connectionKiller struct {
	target string
	after  int

	mu       sync.Mutex
	answered int
	killing  bool
	killed   chan struct{}
}

func (k *connectionKiller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, k.target+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	k.mu.Lock()
	kill := k.killing && resp.StatusCode == http.StatusOK
	if !kill && resp.StatusCode == http.StatusOK {
		k.answered++
		if k.answered == k.after {
			k.killing = true
		}
	}
	k.mu.Unlock()
	if kill {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		select {
		case <-k.killed:
		default:
			close(k.killed)
		}
		return
	}
	for name, values := range resp.Header {
		w.Header()[name] = values
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func (k *connectionKiller) stopKilling() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killing, k.after = false, -1
}

// endpointStats is the reference endpoint's own count of run, from its
// store: every test run has run ids of its own.
func endpointStats(t *testing.T, runID string) endpointapi.RunStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stats, err := endpointapi.FetchRunStats(ctx, http.DefaultClient, endpointapi.RunStatsURL(localstack.FromEnv().EndpointURL, runID))
	if err != nil {
		t.Fatalf("the reference endpoint's count of %s: %v", runID, err)
	}
	if !stats.Complete {
		t.Fatalf("the reference endpoint's count of %s is incomplete: %+v", runID, stats)
	}
	return stats
}

// acceptedTopicRecords reads the run's accepted topic (read_committed, as
// verification does) until it has been quiet for three seconds.
func acceptedTopicRecords(t *testing.T, a *Activities, names activities.RunNames) []activities.AcceptedBatch {
	t.Helper()
	consumer, err := a.kafka.NewClient(
		kgo.ConsumeTopics(names.AcceptedTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var out []activities.AcceptedBatch
	for quietSince := time.Now(); time.Since(quietSince) < 3*time.Second; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fetches := consumer.PollFetches(ctx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) {
			quietSince = time.Now()
			var rec activities.AcceptedBatch
			if err := json.Unmarshal(r.Value, &rec); err != nil || string(r.Key) != rec.BatchID {
				t.Errorf("accepted record %d@%d: key %q, %v", r.Partition, r.Offset, r.Key, err)
				return
			}
			out = append(out, rec)
		})
	}
	return out
}

// cutOffSegment is what a segment did whose first attempt was cut off and
// whose retry ran from the same input.
type cutOffSegment struct {
	names    activities.RunNames
	a        *Activities
	retry    SegmentResult
	answered int // accepted answers the first attempt received
}

// runCutOffSegment plans a segment of cutOffFirst records, cuts its first
// attempt off after cutOffAccepted accepted answers by killing the
// connections, writes cutOffLater more records, and runs the segment again
// from the same input.
func runCutOffSegment(t *testing.T, label string) cutOffSegment {
	t.Helper()
	a := deliverITActivities(t)
	killer := &connectionKiller{target: strings.TrimRight(localstack.FromEnv().EndpointURL, "/"), after: cutOffAccepted, killed: make(chan struct{})}
	proxy := httptest.NewServer(killer)
	t.Cleanup(proxy.Close)
	endpoint, err := newEndpointClient(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	a.endpoint = endpoint
	names := deliverITNames(t, label)
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, cutOffFirst)
	env := deliverITEnv(a)
	token := obtainToken(t, env, a, ObtainTokenInput{Quota: 10_000})
	rep := activities.Reporter{Log: activitytest.Discard}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plan, err := a.planSegment(ctx, PlanSegmentInput{Names: names, MaxMessages: cutOffMax, IdleTimeoutMillis: 3000}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Records != cutOffFirst {
		t.Fatalf("plan %+v, want all %d records", plan, cutOffFirst)
	}
	in := SegmentInput{
		Names: names, MaxMessages: cutOffMax, BatchSize: deliverITBatchSize, Token: token,
		IdleTimeoutMillis: 3000, Plan: &plan,
	}

	firstCtx, cutOff := context.WithCancel(ctx)
	go func() {
		select {
		case <-killer.killed:
			// Let the answers already on their way arrive first.
			time.Sleep(500 * time.Millisecond)
			cutOff()
		case <-firstCtx.Done():
		}
	}()
	if _, err := a.deliverSegment(firstCtx, in, rep, 1); err == nil {
		t.Fatalf("first attempt returned %v, want it cut off", err)
	}
	killer.stopKilling()

	fillEnrichedFrom(t, a, names, cutOffFirst, cutOffLater)
	retry, err := a.deliverSegment(ctx, in, rep, 2)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	t.Logf("first attempt: cut off after %d accepted answers; retry: %+v", cutOffAccepted, retry)
	if retry.Delivered != cutOffFirst {
		t.Errorf("retry delivered %d, want the plan's %d", retry.Delivered, cutOffFirst)
	}
	return cutOffSegment{names: names, a: a, retry: retry, answered: cutOffAccepted}
}

// A retried segment sends the batches of its first attempt: the endpoint
// accepted no message under two batch ids, and none beyond the plan.
func TestRetriedSegmentSendsTheSameBatches(t *testing.T) {
	seg := runCutOffSegment(t, "same-batches")
	stats := endpointStats(t, seg.names.RunID)
	t.Logf("the endpoint's count: %+v", stats)
	// AcceptedMessages counts a message accepted under two batch ids twice;
	// replays of one batch id add nothing.
	if stats.AcceptedMessages != stats.UniqueSeqs || stats.DuplicatedSeqs != 0 {
		t.Errorf("the endpoint accepted %d messages for %d distinct seqs (%d more than once): some under two batch ids",
			stats.AcceptedMessages, stats.UniqueSeqs, stats.DuplicatedSeqs)
	}
	// The enriched topic holds more than the plan by now; more distinct
	// seqs would be messages sent beyond it.
	if stats.UniqueSeqs != cutOffFirst {
		t.Errorf("the endpoint accepted %d distinct messages, want the plan's %d", stats.UniqueSeqs, cutOffFirst)
	}
}

// Every batch the endpoint accepted is in the accepted topic, those of the
// cut-off attempt too, although that attempt never committed.
func TestAcceptedTopicHoldsEveryAcceptedBatch(t *testing.T) {
	seg := runCutOffSegment(t, "accepted-topic")
	records := acceptedTopicRecords(t, seg.a, seg.names)
	recorded := map[string]bool{}
	byAttempt := map[int32]int{}
	for _, r := range records {
		recorded[r.BatchID] = true
		byAttempt[r.Attempt]++
		if r.Replayed && r.Attempt == 1 {
			t.Errorf("batch %s: the first attempt's answer is marked replayed", r.BatchID)
		}
	}
	if byAttempt[1] != seg.answered {
		t.Errorf("the accepted topic holds %d batches of the cut-off attempt, which got %d accepted answers", byAttempt[1], seg.answered)
	}
	if byAttempt[2] != seg.retry.Batches {
		t.Errorf("the accepted topic holds %d batches of the retry, which had %d accepted", byAttempt[2], seg.retry.Batches)
	}
	// Every record of the accepted topic is a batch the endpoint answered
	// with 2xx, so the same number of distinct batch ids is the same set.
	stats := endpointStats(t, seg.names.RunID)
	if int64(len(recorded)) != stats.Batches {
		t.Errorf("the accepted topic holds %d distinct batches, the endpoint accepted %d", len(recorded), stats.Batches)
	}
	t.Logf("accepted topic: %d records (%v by attempt) for %d batches the endpoint accepted", len(records), byAttempt, stats.Batches)
}

// A token refused in the middle of a planned segment leaves the rest of the
// plan; sent with a new token, the rest holds the batches the whole plan
// would have sent: 25 runs of 100 records, each accepted once.
func TestPlannedSegmentRefusedMidwaySendsTheRestWithTheSameBatches(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "refused-plan")
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, deliverITMessages)
	env := deliverITEnv(a)
	rep := activities.Reporter{Log: activitytest.Discard}
	ctx := context.Background()
	plan, err := a.planSegment(ctx, PlanSegmentInput{Names: names, MaxMessages: deliverITMessages, IdleTimeoutMillis: 3000}, rep)
	if err != nil || plan.Records != deliverITMessages {
		t.Fatalf("plan %+v, %v; want all %d records", plan, err, deliverITMessages)
	}

	small := obtainToken(t, env, a, ObtainTokenInput{Quota: 250})
	first, err := a.deliverSegment(ctx, SegmentInput{
		Names: names, Segment: 0, MaxMessages: plan.Records, BatchSize: deliverITBatchSize, Token: small, Plan: &plan,
	}, rep, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("segment 0 with quota 250: %+v, rest %+v", first, first.Rest)
	if !first.TokenRejected || first.Delivered != 200 || first.Rest == nil || first.Rest.Records != plan.Records-200 {
		t.Fatalf("segment 0: %+v, want 200 delivered, the token refused and the rest of the plan", first)
	}
	for p, end := range first.Rest.Ends {
		if plan.Ends[p] != end {
			t.Fatalf("the rest ends partition %d at %d, the plan at %d", p, end, plan.Ends[p])
		}
	}

	renewed := obtainToken(t, env, a, ObtainTokenInput{Renewal: 1})
	second, err := a.deliverSegment(ctx, SegmentInput{
		Names: names, Segment: 1, Offsets: first.Offsets, MaxMessages: first.Rest.Records, BatchSize: deliverITBatchSize,
		Token: renewed, Plan: first.Rest,
	}, rep, 1)
	if err != nil {
		t.Fatal(err)
	}
	if second.TokenRejected || second.Rest != nil || first.Delivered+second.Delivered != deliverITMessages {
		t.Fatalf("segment 1: %+v, want the remaining %d", second, deliverITMessages-first.Delivered)
	}

	// 25 distinct batches of at most 100 messages holding 2,500 distinct
	// messages, each once, are 25 whole runs of 100.
	stats := endpointStats(t, names.RunID)
	if stats.Batches != deliverITMessages/deliverITBatchSize || stats.AcceptedMessages != deliverITMessages ||
		stats.UniqueSeqs != deliverITMessages || stats.DuplicatedSeqs != 0 {
		t.Errorf("the endpoint's count %+v; want %d batches holding %d distinct messages, each once",
			stats, deliverITMessages/deliverITBatchSize, deliverITMessages)
	}
}
