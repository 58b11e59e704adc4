//go:build integration

package deliver

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// A token sealed by a worker with key A reaches a worker that holds only
// key B, as during a key rotation: the segment fences its earlier attempts,
// sends nothing and hands its whole plan back as a refused token; the
// token is renewed (sealed with B) and the plan is delivered in full, each
// message once.
func TestDeliverSegmentRenewsATokenSealedWithAnUnknownKey(t *testing.T) {
	sealer := deliverITActivities(t)    // key A
	deliverer := deliverITActivities(t) // key B
	names := deliverITNames(t, "keyring")
	deliverITTopics(t, deliverer, names)
	fillEnriched(t, deliverer, names, deliverITMessages)
	sealerEnv, env := deliverITEnv(sealer), deliverITEnv(deliverer)

	plan, err := activitytest.Execute[SegmentPlan](t, env, deliverer.PlanSegment, PlanSegmentInput{Names: names, MaxMessages: deliverITMessages, IdleTimeoutMillis: 3000})
	if err != nil || plan.Records != deliverITMessages {
		t.Fatalf("plan %+v, err %v; want all %d messages", plan, err, deliverITMessages)
	}
	// An earlier attempt of segment 0 (on a worker with key A) still has a
	// transaction open, with a response in it: it must be fenced before
	// the segment gives up, or it could still commit.
	zombie, err := deliverer.kafka.NewClient(kgo.TransactionalID(names.ResponsesTopic + ".segment-0"))
	if err != nil {
		t.Fatal(err)
	}
	defer zombie.Close()
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	ghost, _ := json.Marshal(responseRecord{RunID: names.RunID, BatchID: "ghost", BatchNumber: 1, Messages: []responseMessage{{Seq: 0}}})
	if err := zombie.ProduceSync(context.Background(), &kgo.Record{Topic: names.ResponsesTopic, Key: []byte("ghost"), Value: ghost}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sealedWithA := obtainToken(t, sealerEnv, sealer, ObtainTokenInput{})
	first, _ := deliver(t, env, deliverer, SegmentInput{
		Names: names, Segment: 0, MaxMessages: plan.Records, BatchSize: deliverITBatchSize,
		Token: sealedWithA, Plan: &plan, IdleTimeoutMillis: 3000,
	})
	t.Logf("segment 0 on a token sealed with key %s: %+v", sealedWithA.KeyID, first)
	if !first.TokenRejected || first.Delivered != 0 || first.Batches != 0 || first.Rest == nil || first.Rest.Records != plan.Records {
		t.Fatalf("result %+v, want a refused token, nothing delivered and the whole plan as the rest", first)
	}
	if err := zombie.EndTransaction(context.Background(), kgo.TryCommit); err == nil {
		t.Fatal("the earlier attempt committed after the segment gave up: it was not fenced")
	}

	// What the workflow does next: a new token, and the rest as the next segment.
	renewed := obtainToken(t, env, deliverer, ObtainTokenInput{Renewal: 1})
	if renewed.KeyID == sealedWithA.KeyID {
		t.Fatalf("renewed token sealed with key %s, the one the worker lacks", renewed.KeyID)
	}
	second, _ := deliver(t, env, deliverer, SegmentInput{
		Names: names, Segment: 1, Offsets: first.Offsets, MaxMessages: first.Rest.Records, BatchSize: deliverITBatchSize,
		Token: renewed, Plan: first.Rest, IdleTimeoutMillis: 3000,
	})
	t.Logf("segment 1 on the renewed token (key %s): %+v", renewed.KeyID, second)
	if second.TokenRejected || second.Delivered != deliverITMessages {
		t.Fatalf("result %+v, want all %d delivered", second, deliverITMessages)
	}
	batches, seqs := responsesSeen(t, deliverer, names, deliverITMessages/deliverITBatchSize)
	if batches != deliverITMessages/deliverITBatchSize {
		t.Fatalf("responses topic holds %d batches, want %d", batches, deliverITMessages/deliverITBatchSize)
	}
	checkEachSeqOnce(t, seqs, deliverITMessages)
}
