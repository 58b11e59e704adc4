//go:build integration

package deliver

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/internal/errtype"
)

// keptSegments is a run's delivery on two workers (A and B, with the same
// token key) in segments of keptSegmentMessages, each committed under the
// run's one transactional id.
type keptSegments struct {
	t        *testing.T
	names    activities.RunNames
	a, b     *Activities
	token    SealedToken
	offsets  map[int32]int64
	segments []SegmentResult
}

const keptSegmentMessages = deliverITMessages / 5

func newKeptSegments(t *testing.T) *keptSegments {
	cfg := deliverITConfig(t)
	k := &keptSegments{t: t, names: deliverITNames(t, "kept"), a: deliverITActivitiesWith(t, cfg), b: deliverITActivitiesWith(t, cfg)}
	deliverITTopics(t, k.a, k.names)
	fillEnriched(t, k.a, k.names, deliverITMessages)
	k.token = obtainToken(t, deliverITEnv(k.a), k.a, ObtainTokenInput{})
	return k
}

// input is segment's input from the given offsets.
func (k *keptSegments) input(segment int, offsets map[int32]int64) SegmentInput {
	return SegmentInput{
		Names: k.names, Segment: segment, Offsets: offsets, MaxMessages: keptSegmentMessages,
		BatchSize: deliverITBatchSize, Token: k.token, IdleTimeoutMillis: 3000,
		TransactionalID: DeliveryTransactionalID(k.names),
	}
}

// next delivers the run's next segment on worker w, as a first attempt.
func (k *keptSegments) next(w *Activities) SegmentResult {
	k.t.Helper()
	res, err := w.deliverSegment(context.Background(), k.input(len(k.segments), k.offsets), activities.Reporter{Log: activitytest.Discard}, 1)
	if err != nil {
		k.t.Fatalf("segment %d: %v", len(k.segments), err)
	}
	if res.Delivered != keptSegmentMessages || res.TokenRejected {
		k.t.Fatalf("segment %d: %+v, want %d delivered", len(k.segments), res, keptSegmentMessages)
	}
	k.segments = append(k.segments, res)
	k.offsets = res.Offsets
	return res
}

func (k *keptSegments) kept(w *Activities) *kgo.Client {
	return w.clients.producers.Kept(DeliveryTransactionalID(k.names))
}

// checkDelivered checks that the responses topic holds each message of the
// segments delivered once (responsesSeen fails on a batch seen twice), and
// the group the last segment's offsets. A segment without a plan cuts its
// batches where its reads of each partition end, so their number varies.
func (k *keptSegments) checkDelivered() {
	k.t.Helper()
	want := len(k.segments) * keptSegmentMessages
	_, seqs := responsesSeen(k.t, k.a, k.names, want)
	twice := 0
	for _, n := range seqs {
		if n > 1 {
			twice++
		}
	}
	if len(seqs) != want || twice > 0 {
		k.t.Errorf("responses: %d seqs, %d of them more than once; want %d, each once", len(seqs), twice, want)
	}
	checkGroupOffsets(k.t, k.a, k.names, k.offsets, len(k.segments)-1)
}

func TestARunsSegmentsKeepTheirProducer(t *testing.T) {
	k := newKeptSegments(t)
	k.next(k.a)
	first := k.kept(k.a)
	if first == nil {
		t.Fatal("no producer kept after the run's first segment")
	}
	k.next(k.a)
	if kept := k.kept(k.a); kept != first {
		t.Fatal("the run's second segment did not keep using the producer of its first")
	}
	k.checkDelivered()
}

// TestKeptSegmentProducerFencedElsewhereClaimsAnew forces the moment a kept
// producer is stale: worker A keeps the run's producer from segment 0, then
// segment 1 runs on worker B, whose claim of the id fences A's kept
// producer. Segment 2 on A sends its batches, must find its commit refused
// before it writes, claim the id anew and commit. Then segment 2 runs
// again on A as a reset workflow's first attempt would, with the producer
// kept from its first run and no claim: it must find itself committed and
// commit nothing.
func TestKeptSegmentProducerFencedElsewhereClaimsAnew(t *testing.T) {
	k := newKeptSegments(t)
	k.next(k.a)
	stale := k.kept(k.a)
	k.next(k.b)
	k.next(k.a)
	kept := k.kept(k.a)
	if kept == nil || kept == stale {
		t.Fatal("worker A kept no producer, or the stale one, after claiming the id anew")
	}
	k.checkDelivered()

	again, err := k.a.deliverSegment(context.Background(), k.input(2, k.segments[1].Offsets), activities.Reporter{Log: activitytest.Discard}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if again.Delivered != k.segments[2].Delivered || fmt.Sprint(again.Offsets) != fmt.Sprint(k.segments[2].Offsets) {
		t.Fatalf("segment 2 run again returned %+v, want its committed result %+v", again, k.segments[2])
	}
	if k.kept(k.a) != kept {
		t.Error("segment 2 run again did not use, and keep, the producer kept from its first run")
	}
	k.checkDelivered()
}

// TestASegmentRunAgainAfterALaterOneCommittedIsRefused forces what a reset
// of the delivery's workflow does: segments run again after later ones
// committed, whose commits replaced theirs in the group's offsets. Segment
// 0 runs again as a first attempt (sending while it claims) and segment 1
// as a retry (claiming first); each must be refused as a reset, and the
// responses topic and the group must still hold what segments 0 to 2
// committed, once.
func TestASegmentRunAgainAfterALaterOneCommittedIsRefused(t *testing.T) {
	k := newKeptSegments(t)
	for range 3 {
		k.next(k.a)
	}
	for _, again := range []struct {
		segment int
		from    map[int32]int64
		attempt int32
	}{{0, nil, 1}, {1, k.segments[0].Offsets, 2}} {
		res, err := k.a.deliverSegment(context.Background(), k.input(again.segment, again.from), activities.Reporter{Log: activitytest.Discard}, again.attempt)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != errtype.RunReset || !appErr.NonRetryable() {
			t.Fatalf("segment %d run again (attempt %d): %+v, %v; want a non-retryable %s", again.segment, again.attempt, res, err, errtype.RunReset)
		}
		t.Logf("segment %d run again (attempt %d): %v", again.segment, again.attempt, err)
	}
	k.checkDelivered()
}
