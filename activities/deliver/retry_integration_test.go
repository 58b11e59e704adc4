//go:build integration

package deliver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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

// journalTail reads what the reference endpoint journals from now on.
type journalTail struct {
	path  string
	start int64
}

func newJournalTail(t *testing.T) journalTail {
	t.Helper()
	path := filepath.Join(localstack.StackDir(), "data", "refsvc", "endpoint.journal")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the reference endpoint's journal: %v", err)
	}
	return journalTail{path: path, start: info.Size()}
}

// acceptedSeqs maps each seq the endpoint accepted in a batch of run since
// the tail began to the batch ids it was accepted under, in the endpoint's
// own words.
func (j journalTail) acceptedSeqs(t *testing.T, runID string) map[int64][]string {
	t.Helper()
	f, err := os.Open(j.path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(j.start, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	seqs := map[int64][]string{}
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for scanner.Scan() {
		var line struct {
			Key      string                    `json:"key"`
			Response endpointapi.BatchResponse `json:"response"`
		}
		if json.Unmarshal(scanner.Bytes(), &line) != nil || !strings.Contains(line.Key, "\x00"+runID+"-p") {
			continue
		}
		for _, r := range line.Response.Results {
			seqs[r.Seq] = append(seqs[r.Seq], line.Response.BatchID)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return seqs
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
	journal  journalTail
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
	journal := newJournalTail(t)

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
	return cutOffSegment{names: names, a: a, journal: journal, retry: retry, answered: cutOffAccepted}
}

// A retried segment sends the batches of its first attempt: the endpoint
// accepted no message under two batch ids, and none beyond the plan.
func TestRetriedSegmentSendsTheSameBatches(t *testing.T) {
	seg := runCutOffSegment(t, "same-batches")
	accepted := seg.journal.acceptedSeqs(t, seg.names.RunID)
	var twice []int64
	for seq, ids := range accepted {
		if len(ids) > 1 {
			twice = append(twice, seq)
		}
		if seq >= cutOffFirst {
			t.Errorf("seq %d accepted (batch %s), but it arrived after the plan was made", seq, ids[0])
		}
	}
	slices.Sort(twice)
	if len(twice) > 0 {
		t.Errorf("the endpoint accepted %d messages under two batch ids, e.g. seq %d in %v", len(twice), twice[0], accepted[twice[0]])
	}
	if len(accepted) != cutOffFirst {
		t.Errorf("the endpoint accepted %d distinct messages, want %d", len(accepted), cutOffFirst)
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
	journalled := map[string]bool{}
	for _, ids := range seg.journal.acceptedSeqs(t, seg.names.RunID) {
		for _, id := range ids {
			journalled[id] = true
		}
	}
	for id := range journalled {
		if !recorded[id] {
			t.Errorf("the endpoint accepted batch %s, the accepted topic does not hold it", id)
		}
	}
	t.Logf("accepted topic: %d records (%v by attempt) for %d batches the endpoint journalled", len(records), byAttempt, len(journalled))
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
	journal := newJournalTail(t)
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

	batches := map[string]int{}
	for seq, ids := range journal.acceptedSeqs(t, names.RunID) {
		if len(ids) != 1 {
			t.Errorf("seq %d accepted in batches %v", seq, ids)
		}
		batches[ids[0]]++
	}
	for id, n := range batches {
		if n != deliverITBatchSize {
			t.Errorf("batch %s holds %d messages, want a whole run of %d", id, n, deliverITBatchSize)
		}
	}
	if len(batches) != deliverITMessages/deliverITBatchSize {
		t.Errorf("the endpoint accepted %d batches, want %d", len(batches), deliverITMessages/deliverITBatchSize)
	}
}
