//go:build integration

package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/localstack"
)

// These tests run against the local stack (bin/stackctl up): Kafka, the
// token service and the endpoint.

const (
	deliverITMessages   = 2500
	deliverITBatchSize  = 100
	deliverITPartitions = 5 // 500 messages each: whole batches only
)

// deliverITActivities builds Activities for the local stack with a fresh
// random token key.
func deliverITActivities(t *testing.T) *Activities {
	t.Helper()
	return deliverITActivitiesWith(t, deliverITConfig(t))
}

// deliverITConfig is the local stack's endpoint and token service, with a
// fresh random token key.
func deliverITConfig(t *testing.T) Config {
	addrs := localstack.FromEnv()
	return Config{
		EndpointURL:       addrs.EndpointURL,
		TokenURL:          addrs.TokenURL,
		TokenClientID:     localstack.TokenClientID,
		TokenClientSecret: activitytest.ClientSecret(),
		TokenKey:          activitytest.TokenKey(t, TokenKeyBytes),
	}
}

// deliverITActivitiesWith builds Activities for the local stack with cfg,
// over a connection and kept clients of their own.
func deliverITActivitiesWith(t *testing.T, cfg Config) *Activities {
	t.Helper()
	conn := activitytest.Conn(t)
	clients := NewClients(conn)
	t.Cleanup(clients.Close)
	a, err := New(conn, clients, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// deliverITEnv is an activity environment, in which activity.RecordHeartbeat
// works as in a worker.
func deliverITEnv(a *Activities) *testsuite.TestActivityEnvironment {
	return activitytest.Env(a)
}

func deliverITNames(t *testing.T, label string) activities.RunNames {
	names := activitytest.UniqueNames(t, label)
	names.AcceptedTopic = "flowproof." + names.RunID + ".accepted"
	return names
}

// deliverITTopics creates the enriched, responses and accepted topics (RF
// 3) and deletes them, and the deliver group, when the test ends.
func deliverITTopics(t *testing.T, a *Activities, names activities.RunNames) {
	t.Helper()
	activitytest.CreateTopics(t, a.kafka, names, map[string]int32{
		names.EnrichedTopic: deliverITPartitions, names.ResponsesTopic: 3, names.AcceptedTopic: 3,
	})
}

// fillEnriched writes n contract-correct enriched records, logical queue
// q-i going to partition i mod deliverITPartitions, in two committed
// transactions with an aborted one between them whose records are not
// valid JSON: a read_committed reader never sees them, and delivery would
// fail if it did.
func fillEnriched(t *testing.T, a *Activities, names activities.RunNames, n int) {
	t.Helper()
	fillEnrichedFrom(t, a, names, 0, n)
}

// fillEnrichedFrom writes seqs from, from+1, ... like fillEnriched.
func fillEnrichedFrom(t *testing.T, a *Activities, names activities.RunNames, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	producer, err := a.kafka.NewClient(
		kgo.TransactionalID(names.EnrichedTopic+".it-filler"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(names.EnrichedTopic),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const queues = 50
	record := func(seq int64) *kgo.Record {
		queue := fmt.Sprintf("q-%04d", seq%queues)
		cid := activitytest.CorrelationID(names.RunID, seq)
		value, _ := json.Marshal(map[string]any{
			"run_id": names.RunID, "seq": seq, "logical_queue": queue,
			"produced_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
			"payload":     strings.Repeat("x", 64), "correlation_id": cid,
		})
		return &kgo.Record{
			Key: []byte(queue), Value: value, Partition: int32(seq % queues % deliverITPartitions),
			Headers: []kgo.RecordHeader{{Key: "logical.queue", Value: []byte(queue)}, {Key: "correlation.id", Value: []byte(cid)}},
		}
	}
	writeTxn := func(commit kgo.TransactionEndTry, recs []*kgo.Record) {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := producer.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	var first, second []*kgo.Record
	for seq := int64(from); seq < int64(from+n); seq++ {
		if seq < int64(from+n/2) {
			first = append(first, record(seq))
		} else {
			second = append(second, record(seq))
		}
	}
	writeTxn(kgo.TryCommit, first)
	var garbage []*kgo.Record
	for p := range int32(deliverITPartitions) {
		garbage = append(garbage, &kgo.Record{Key: []byte("aborted"), Value: []byte("{not json"), Partition: p})
	}
	writeTxn(kgo.TryAbort, garbage)
	writeTxn(kgo.TryCommit, second)
}

func obtainToken(t *testing.T, env *testsuite.TestActivityEnvironment, a *Activities, in ObtainTokenInput) SealedToken {
	t.Helper()
	val, err := env.ExecuteActivity(a.ObtainToken, in)
	if err != nil {
		t.Fatalf("ObtainToken: %v", err)
	}
	var st SealedToken
	if err := val.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func deliver(t *testing.T, env *testsuite.TestActivityEnvironment, a *Activities, in SegmentInput) (SegmentResult, time.Duration) {
	t.Helper()
	start := time.Now()
	val, err := env.ExecuteActivity(a.DeliverSegment, in)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("DeliverSegment %d: %v", in.Segment, err)
	}
	var res SegmentResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res, took
}

// responsesSeen reads the whole responses topic with read_committed and
// checks every record: each batch once, each seq once, each message with
// its derived correlation id and a sending id.
func responsesSeen(t *testing.T, a *Activities, names activities.RunNames, wantBatches int) (batches int, seqs map[int64]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	consumer, err := a.kafka.NewClient(
		kgo.ConsumeTopics(names.ResponsesTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seenBatch := map[string]bool{}
	seqs = map[int64]int{}
	quietSince := time.Now()
	for time.Since(quietSince) < 3*time.Second {
		pollCtx, cancelPoll := context.WithTimeout(ctx, time.Second)
		fetches := consumer.PollFetches(pollCtx)
		cancelPoll()
		if ctx.Err() != nil {
			t.Fatal("reading the responses topic timed out")
		}
		fetches.EachRecord(func(r *kgo.Record) {
			quietSince = time.Now()
			var rec responseRecord
			if err := json.Unmarshal(r.Value, &rec); err != nil {
				t.Errorf("response record %d@%d is not JSON: %v", r.Partition, r.Offset, err)
				return
			}
			if string(r.Key) != rec.BatchID || rec.RunID != names.RunID || rec.BatchNumber <= 0 {
				t.Errorf("response record key %q, value %+v", r.Key, rec)
			}
			if seenBatch[rec.BatchID] {
				t.Errorf("batch %s is in the responses topic twice", rec.BatchID)
			}
			seenBatch[rec.BatchID] = true
			for _, m := range rec.Messages {
				seqs[m.Seq]++
				if m.CorrelationID != activitytest.CorrelationID(names.RunID, m.Seq) || m.SendingID == "" || m.ProducedAt == "" || m.LogicalQueue == "" {
					t.Errorf("batch %s message %+v breaks the contract", rec.BatchID, m)
				}
			}
		})
		if len(seenBatch) > wantBatches {
			break
		}
	}
	return len(seenBatch), seqs
}

func checkEachSeqOnce(t *testing.T, seqs map[int64]int, n int) {
	t.Helper()
	missing, duplicated := 0, 0
	for seq := int64(0); seq < int64(n); seq++ {
		switch c := seqs[seq]; {
		case c == 0:
			missing++
		case c > 1:
			duplicated++
		}
	}
	if missing > 0 || duplicated > 0 || len(seqs) != n {
		t.Fatalf("responses hold %d distinct seqs, %d missing, %d duplicated; want each of %d once", len(seqs), missing, duplicated, n)
	}
}

// endOffsets are the enriched topic's high watermarks: the next offset
// after the last transaction marker.
func endOffsets(t *testing.T, a *Activities, topic string) map[int32]int64 {
	t.Helper()
	listed, err := a.kafka.Admin.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// checkGroupOffsets waits up to five seconds for the deliver group's
// committed offsets to equal want, each with the segment's metadata: a
// transaction's offsets become visible once its markers are written, just
// after the commit returns.
func checkGroupOffsets(t *testing.T, a *Activities, names activities.RunNames, want map[int32]int64, segment int) {
	t.Helper()
	var problems []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		committed, err := a.kafka.Admin.FetchOffsetsForTopics(context.Background(), names.DeliverGroup, names.EnrichedTopic)
		if err != nil {
			t.Fatal(err)
		}
		problems = problems[:0]
		for p, o := range want {
			got, ok := committed.Lookup(names.EnrichedTopic, p)
			var meta segmentCommit
			switch {
			case !ok || got.At != o:
				problems = append(problems, fmt.Sprintf("partition %d committed %d, want %d", p, got.At, o))
			case json.Unmarshal([]byte(got.Metadata), &meta) != nil || meta.Segment != segment:
				problems = append(problems, fmt.Sprintf("partition %d commit metadata %q, want segment %d", p, got.Metadata, segment))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(problems) > 0 {
		t.Errorf("group %s: %s", names.DeliverGroup, strings.Join(problems, "; "))
	}
}

// setFaults changes the endpoint's fault injection; the test's cleanup
// faultAdmin is the endpoint's fault API with the stack's admin token.
func faultAdmin(t *testing.T) endpointapi.AdminClient {
	t.Helper()
	token, err := endpointapi.LoadAdminToken(localstack.StackDir())
	if err != nil {
		t.Fatalf("endpoint admin token: %v", err)
	}
	return endpointapi.AdminClient{BaseURL: localstack.FromEnv().EndpointURL, Token: token}
}

// setFaults sets the endpoint's faults for run alone; the test's cleanup
// removes them again.
func setFaults(t *testing.T, run string, f endpointapi.Faults) {
	t.Helper()
	admin := faultAdmin(t)
	f.RunIDs = []string{run}
	if _, err := admin.SetFaults(context.Background(), f); err != nil {
		t.Fatalf("set faults: %v", err)
	}
	t.Cleanup(func() { resetFaults(t, run) })
}

// resetFaults turns run's endpoint faults off.
func resetFaults(t *testing.T, run string) {
	t.Helper()
	if err := faultAdmin(t).Reset(context.Background(), run); err != nil {
		t.Errorf("reset faults: %v", err)
	}
}

func TestObtainTokenFromTheTokenService(t *testing.T) {
	a := deliverITActivities(t)
	env := deliverITEnv(a)
	st := obtainToken(t, env, a, ObtainTokenInput{Quota: 500, TTLSeconds: 600})
	if st.Quota != 500 {
		t.Errorf("quota = %d, want the 500 asked for", st.Quota)
	}
	if left := time.Until(time.Unix(st.ExpiresAtUnix, 0)); left < 590*time.Second || left > 601*time.Second {
		t.Errorf("token expires in %s, want about 600s", left)
	}
	token, err := a.token.unseal(st)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(token, ".") != 2 {
		t.Fatal("unsealed token is not a JWT")
	}
	history, _ := json.Marshal(st)
	if bytes.Contains(history, []byte(token)) || bytes.Contains(history, []byte(strings.Split(token, ".")[1])) {
		t.Fatal("the sealed token's JSON contains the token")
	}
}

func TestObtainTokenWithWrongSecretFailsWithoutRetry(t *testing.T) {
	a := deliverITActivities(t)
	const wrong = "definitely-not-the-secret"
	a.token.clientSecret = wrong
	env := deliverITEnv(a)
	_, err := env.ExecuteActivity(a.ObtainToken, ObtainTokenInput{})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != errtype.TokenClientRejected {
		t.Fatalf("err = %v, want non-retryable %s", err, errtype.TokenClientRejected)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error reveals the secret: %v", err)
	}
	t.Logf("refused as expected: %v", err)
}

func TestDeliverSegmentDeliversEachBatchOnce(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "deliver")
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, deliverITMessages)

	// A crashed earlier attempt of segment 0 left a transaction open with a
	// response in it; the segment must fence and abort it.
	crashed, err := a.kafka.NewClient(kgo.TransactionalID(names.ResponsesTopic + ".segment-0"))
	if err != nil {
		t.Fatal(err)
	}
	defer crashed.Close()
	if err := crashed.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	ghost, _ := json.Marshal(responseRecord{RunID: names.RunID, BatchID: "ghost", BatchNumber: 1, Messages: []responseMessage{{Seq: 0}}})
	if err := crashed.ProduceSync(context.Background(), &kgo.Record{Topic: names.ResponsesTopic, Key: []byte("ghost"), Value: ghost}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	env := deliverITEnv(a)
	token := obtainToken(t, env, a, ObtainTokenInput{})
	in := SegmentInput{
		Names: names, Segment: 0, MaxMessages: deliverITMessages, BatchSize: deliverITBatchSize,
		Token: token, IdleTimeoutMillis: 3000,
	}
	res, took := deliver(t, env, a, in)
	t.Logf("segment 0: %+v in %s: %.0f msgs/s", res, took.Round(time.Millisecond), float64(res.Delivered)/took.Seconds())
	if res.Delivered != deliverITMessages || res.Batches != deliverITMessages/deliverITBatchSize || res.TokenRejected {
		t.Fatalf("result %+v, want %d delivered in %d batches", res, deliverITMessages, deliverITMessages/deliverITBatchSize)
	}
	// Each partition ends with the second transaction's commit marker, so
	// the next offset after the last message is one before the end.
	end := endOffsets(t, a, names.EnrichedTopic)
	for p, o := range end {
		if res.Offsets[p] != o-1 {
			t.Errorf("next offset of partition %d = %d, want %d (the end %d less the commit marker)", p, res.Offsets[p], o-1, o)
		}
	}
	checkGroupOffsets(t, a, names, res.Offsets, 0)

	// The activity runs again with the same input, as its retry after a
	// worker crash between the commit and the completion: it returns the
	// committed result, and sends and writes nothing.
	rep := activities.Reporter{Log: activitytest.Discard}
	sentBefore := len(acceptedTopicRecords(t, a, names))
	again, err := a.deliverSegment(context.Background(), in, rep, 2)
	if err != nil {
		t.Fatal(err)
	}
	if again.Delivered != res.Delivered || again.Batches != res.Batches || fmt.Sprint(again.Offsets) != fmt.Sprint(res.Offsets) {
		t.Fatalf("retried segment returned %+v, want the first result %+v", again, res)
	}
	if sent := len(acceptedTopicRecords(t, a, names)) - sentBefore; sent != 0 {
		t.Errorf("the retry of a committed segment sent %d batches, want none", sent)
	}
	// As the first attempt of a reset workflow's segment, it sends while it
	// claims: the endpoint answers each batch as a replay, and the segment
	// returns the committed result and commits nothing more.
	reset, err := a.deliverSegment(context.Background(), in, rep, 1)
	if err != nil {
		t.Fatal(err)
	}
	if reset.Delivered != res.Delivered || reset.Batches != res.Batches || fmt.Sprint(reset.Offsets) != fmt.Sprint(res.Offsets) {
		t.Fatalf("segment run again as a first attempt returned %+v, want the first result %+v", reset, res)
	}
	replays := 0
	for _, r := range acceptedTopicRecords(t, a, names) {
		if r.Replayed {
			replays++
		}
	}
	if replays != res.Batches {
		t.Errorf("the accepted topic holds %d replays, want one of each of the %d batches sent again", replays, res.Batches)
	}

	// The next segment starts where this one ended and finds nothing more.
	next, _ := deliver(t, env, a, SegmentInput{
		Names: names, Segment: 1, Offsets: res.Offsets, MaxMessages: deliverITMessages, BatchSize: deliverITBatchSize,
		Token: token, IdleTimeoutMillis: 1500,
	})
	if next.Delivered != 0 || next.Batches != 0 || fmt.Sprint(next.Offsets) != fmt.Sprint(res.Offsets) {
		t.Fatalf("segment after the end returned %+v, want nothing delivered and the same offsets", next)
	}

	batches, seqs := responsesSeen(t, a, names, deliverITMessages/deliverITBatchSize)
	if batches != deliverITMessages/deliverITBatchSize {
		t.Fatalf("responses topic holds %d batches, want %d", batches, deliverITMessages/deliverITBatchSize)
	}
	checkEachSeqOnce(t, seqs, deliverITMessages)
}

func TestDeliverSegmentRidesOutEndpointFaults(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "faults")
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, deliverITMessages)
	env := deliverITEnv(a)
	token := obtainToken(t, env, a, ObtainTokenInput{})

	setFaults(t, names.RunID, endpointapi.Faults{ThrottleRate: 0.15, RetryAfterSeconds: 1, ErrorRate: 0.15, ErrorStatus: 503, LostResponseRate: 0.1})
	res, took := deliver(t, env, a, SegmentInput{
		Names: names, Segment: 0, MaxMessages: deliverITMessages, BatchSize: deliverITBatchSize,
		Token: token, IdleTimeoutMillis: 3000,
	})
	t.Logf("segment with faults: %+v in %s: %.0f msgs/s", res, took.Round(time.Millisecond), float64(res.Delivered)/took.Seconds())
	if res.Delivered != deliverITMessages || res.Batches != deliverITMessages/deliverITBatchSize {
		t.Fatalf("result %+v, want all %d delivered", res, deliverITMessages)
	}
	if res.Retries == 0 {
		t.Fatal("no retries counted although 40% of requests failed")
	}
	batches, seqs := responsesSeen(t, a, names, deliverITMessages/deliverITBatchSize)
	if batches != deliverITMessages/deliverITBatchSize {
		t.Fatalf("responses topic holds %d batches, want %d", batches, deliverITMessages/deliverITBatchSize)
	}
	checkEachSeqOnce(t, seqs, deliverITMessages)
}

func TestDeliverSegmentStopsWhenTheQuotaIsUsedUp(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "quota")
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, deliverITMessages)
	env := deliverITEnv(a)

	small := obtainToken(t, env, a, ObtainTokenInput{Quota: 250})
	first, _ := deliver(t, env, a, SegmentInput{
		Names: names, Segment: 0, MaxMessages: deliverITMessages, BatchSize: deliverITBatchSize,
		Token: small, IdleTimeoutMillis: 3000,
	})
	t.Logf("segment 0 with quota 250: %+v", first)
	if !first.TokenRejected || first.RejectReason == "" {
		t.Fatalf("result %+v, want the token rejected with a reason", first)
	}
	if first.Delivered != 200 || first.Batches != 2 {
		t.Fatalf("delivered %d in %d batches under a quota of 250, want 200 in 2", first.Delivered, first.Batches)
	}
	checkGroupOffsets(t, a, names, first.Offsets, 0)

	// The workflow renews the token and continues from the returned offsets.
	renewed := obtainToken(t, env, a, ObtainTokenInput{Renewal: 1})
	second, _ := deliver(t, env, a, SegmentInput{
		Names: names, Segment: 1, Offsets: first.Offsets, MaxMessages: deliverITMessages, BatchSize: deliverITBatchSize,
		Token: renewed, IdleTimeoutMillis: 3000,
	})
	t.Logf("segment 1: %+v", second)
	if second.TokenRejected || first.Delivered+second.Delivered != deliverITMessages {
		t.Fatalf("second segment %+v, want the remaining %d", second, deliverITMessages-first.Delivered)
	}
	batches, seqs := responsesSeen(t, a, names, deliverITMessages/deliverITBatchSize)
	if batches != deliverITMessages/deliverITBatchSize {
		t.Fatalf("responses topic holds %d batches, want %d", batches, deliverITMessages/deliverITBatchSize)
	}
	checkEachSeqOnce(t, seqs, deliverITMessages)
}

func TestDeliverSegmentCancelledMidwayLeavesNothingAndRunsAgain(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "cancel")
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, deliverITMessages)
	env := deliverITEnv(a)
	token := obtainToken(t, env, a, ObtainTokenInput{})
	in := SegmentInput{
		Names: names, Segment: 0, MaxMessages: deliverITMessages, BatchSize: deliverITBatchSize,
		Token: token, IdleTimeoutMillis: 3000,
	}

	// Slow batches, and a cancellation while they are in flight.
	setFaults(t, names.RunID, endpointapi.Faults{LatencyMillis: 400})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := a.deliverSegment(ctx, in, activities.Reporter{Log: activitytest.Discard}, 1)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled segment returned %v, want the context's error", err)
	}
	if committed, err := a.kafka.Admin.FetchOffsetsForTopics(context.Background(), names.DeliverGroup, names.EnrichedTopic); err != nil {
		t.Fatal(err)
	} else {
		committed.Each(func(o kadm.OffsetResponse) {
			if o.At >= 0 {
				t.Errorf("cancelled segment committed offset %d for partition %d", o.At, o.Partition)
			}
		})
	}
	resetFaults(t, names.RunID)

	res, _ := deliver(t, env, a, in)
	if res.Delivered != deliverITMessages {
		t.Fatalf("segment after the cancelled one delivered %d, want %d", res.Delivered, deliverITMessages)
	}
	batches, seqs := responsesSeen(t, a, names, deliverITMessages/deliverITBatchSize)
	if batches != deliverITMessages/deliverITBatchSize {
		t.Fatalf("responses topic holds %d batches, want %d", batches, deliverITMessages/deliverITBatchSize)
	}
	checkEachSeqOnce(t, seqs, deliverITMessages)
}

func TestDeliverSegmentRefusesOffsetsOutsideTheTopic(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "range")
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, 500)
	env := deliverITEnv(a)
	token := obtainToken(t, env, a, ObtainTokenInput{})
	_, err := env.ExecuteActivity(a.DeliverSegment, SegmentInput{
		Names: names, Segment: 0, Offsets: map[int32]int64{0: 1_000_000}, MaxMessages: 500, BatchSize: 100,
		Token: token, IdleTimeoutMillis: 5000,
	})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.OffsetOutOfRange || !appErr.NonRetryable() {
		t.Fatalf("err = %v, want a non-retryable OffsetOutOfRange", err)
	}
	if batches, _ := responsesSeen(t, a, names, 0); batches != 0 {
		t.Fatalf("responses topic holds %d batches after the refused segment", batches)
	}
}
