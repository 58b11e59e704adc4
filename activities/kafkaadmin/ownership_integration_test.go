//go:build integration

package kafkaadmin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
)

// withFlink are the activities with the local stack's Flink, which
// Cleanup asks for the run's jobs.
func withFlink(t *testing.T, conn *kafkaeos.Conn) *Activities {
	t.Helper()
	jobs, err := flinksql.NewJobManager(localstack.FromEnv().FlinkURL, flinksql.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return New(conn, jobs)
}

// ownedNames are a test run's names with the accepted topic, and the
// workflow that owns them.
func ownedNames(t *testing.T) (activities.RunNames, Owner) {
	names := activitytest.UniqueNames(t, "")
	names.AcceptedTopic = "flowproof." + names.RunID + ".accepted"
	// activitytest.DeleteRunAtCleanup knows no accepted topic.
	t.Cleanup(func() {
		if conn, err := kafkaeos.Dial(localstack.FromEnv().KafkaBrokers); err == nil {
			_, _ = conn.Admin.DeleteTopics(context.Background(), names.AcceptedTopic)
			conn.Close()
		}
	})
	return names, Owner{Namespace: "default", WorkflowID: "wf-" + names.RunID, FirstRunID: "first-run", TemporalRunID: "first-run"}
}

func prepareAs(t *testing.T, acts *Activities, names activities.RunNames, owner Owner) (PrepareTopicsResult, error) {
	t.Helper()
	return activitytest.Execute[PrepareTopicsResult](t, activitytest.Env(acts), acts.PrepareTopics,
		PrepareTopicsInput{Names: names, Partitions: 3, ReplicationFactor: 3, Owner: owner})
}

func cleanupAs(t *testing.T, acts *Activities, names activities.RunNames, owner Owner) {
	t.Helper()
	if _, err := activitytest.Env(acts).ExecuteActivity(acts.Cleanup, CleanupInput{Names: names, Owner: owner}); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
}

// wantErrType wants a non-retryable application error of errType whose
// message names every one of names.
func wantErrType(t *testing.T, err error, errType string, names ...string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errType || !appErr.NonRetryable() {
		t.Fatalf("got %v; want a non-retryable %s error", err, errType)
	}
	for _, name := range names {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

// foreignTopic creates topic outside any run, with records, and deletes it
// when the test ends.
func foreignTopic(t *testing.T, conn *kafkaeos.Conn, topic string, records int) kadm.ListedOffsets {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Admin.CreateTopic(ctx, 3, 3, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	t.Cleanup(func() { _, _ = conn.Admin.DeleteTopics(context.Background(), topic) })
	waitTopic(t, conn, topic, true)
	for i := range records {
		rec := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte("somebody else's record")}
		if err := conn.Client.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	return endOffsets(t, conn, topic)
}

func endOffsets(t *testing.T, conn *kafkaeos.Conn, topic string) kadm.ListedOffsets {
	t.Helper()
	ends, err := conn.Admin.ListEndOffsets(context.Background(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	return ends
}

// waitTopic waits until topic exists (or, with !exists, is gone).
func waitTopic(t *testing.T, conn *kafkaeos.Conn, topic string, exists bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := topicExists(context.Background(), conn, topic)
		if err == nil && got == exists {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: exists %v after 30 s, want %v (%v)", topic, got, exists, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkUntouched wants topic to exist with the end offsets it had.
func checkUntouched(t *testing.T, conn *kafkaeos.Conn, topic string, before kadm.ListedOffsets) {
	t.Helper()
	waitTopic(t, conn, topic, true)
	after := endOffsets(t, conn, topic)
	for p, o := range before[topic] {
		if after[topic][p].Offset != o.Offset {
			t.Errorf("%s partition %d: end offset %d, was %d", topic, p, after[topic][p].Offset, o.Offset)
		}
	}
	if records := activitytest.ConsumeCommitted(t, topic, 0, 2*time.Second); len(records) != int(sumEnds(before, topic)) {
		t.Errorf("%s holds %d records, had %d", topic, len(records), sumEnds(before, topic))
	}
}

func sumEnds(listed kadm.ListedOffsets, topic string) int64 {
	var sum int64
	for _, o := range listed[topic] {
		sum += o.Offset
	}
	return sum
}

// TestPrepareLeavesATopicItDidNotCreateAlone: a topic that exists before
// the run, with records, under the run's own name or as an overridden
// name, fails Prepare naming it; the topic and its records are untouched,
// the run creates nothing beside it, and Cleanup deletes only the run's
// ledger.
func TestPrepareLeavesATopicItDidNotCreateAlone(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := withFlink(t, conn)
	for _, override := range []bool{false, true} {
		t.Run(map[bool]string{false: "own-name", true: "overridden"}[override], func(t *testing.T) {
			names, owner := ownedNames(t)
			activitytest.DeleteRunAtCleanup(t, conn, activitytest.Names(names.RunID))
			if override {
				names.FinalTopic = "it-somebodys-" + names.RunID
			}
			before := foreignTopic(t, conn, names.FinalTopic, 50)

			_, err := prepareAs(t, acts, names, owner)
			wantErrType(t, err, errtype.TopicExists, names.FinalTopic)
			checkUntouched(t, conn, names.FinalTopic, before)
			for _, topic := range []string{names.RawTopic, names.EnrichedTopic, names.AcceptedTopic} {
				if exists, err := topicExists(context.Background(), conn, topic); err != nil || exists {
					t.Errorf("%s created beside a taken name (%v)", topic, err)
				}
			}

			cleanupAs(t, acts, names, owner)
			waitTopic(t, conn, names.LedgerTopic, false)
			checkUntouched(t, conn, names.FinalTopic, before)
		})
	}
}

// TestPrepareLeavesAnotherRunAlone: a second workflow with the same names
// fails on the ledger, and its Cleanup deletes none of the first run's
// topics and groups.
func TestPrepareLeavesAnotherRunAlone(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := withFlink(t, conn)
	names, first := ownedNames(t)
	activitytest.DeleteRunAtCleanup(t, conn, names)
	if _, err := prepareAs(t, acts, names, first); err != nil {
		t.Fatalf("first run's Prepare: %v", err)
	}
	raw := endOffsets(t, conn, names.RawTopic)

	second := Owner{Namespace: "default", WorkflowID: "wf-other-" + names.RunID, FirstRunID: "other", TemporalRunID: "other"}
	_, err := prepareAs(t, acts, names, second)
	wantErrType(t, err, errtype.TopicExists, names.LedgerTopic, first.WorkflowID)
	cleanupAs(t, acts, names, second)
	for _, topic := range names.Topics() {
		waitTopic(t, conn, topic, true)
	}
	checkUntouched(t, conn, names.RawTopic, raw)
	if again, err := prepareAs(t, acts, names, first); err != nil || len(again.Existed) != 6 {
		t.Errorf("first run's Prepare after the other's cleanup: %+v, %v; want all 6 of its topics", again, err)
	}
}

// TestPrepareFailsOnAGroupWithOffsets: a consumer group of the run that
// has committed offsets before the run fails Prepare, and Cleanup leaves
// the group alone.
func TestPrepareFailsOnAGroupWithOffsets(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := withFlink(t, conn)
	names, owner := ownedNames(t)
	activitytest.DeleteRunAtCleanup(t, conn, names)
	foreignTopic(t, conn, "it-group-source-"+names.RunID, 1)
	offsets := kadm.Offsets{}
	offsets.AddOffset("it-group-source-"+names.RunID, 0, 1, -1)
	ctx := context.Background()
	if resp, err := conn.Admin.CommitOffsets(ctx, names.DeliverGroup, offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit offsets: %v %v", err, resp.Error())
	}
	_, err := prepareAs(t, acts, names, owner)
	wantErrType(t, err, errtype.GroupExists, names.DeliverGroup)
	cleanupAs(t, acts, names, owner)
	if fetched, err := conn.Admin.FetchOffsets(ctx, names.DeliverGroup); err != nil || len(fetched) == 0 {
		t.Errorf("group %s after Cleanup: %v, %v; want its offsets kept", names.DeliverGroup, fetched, err)
	}
}

// TestRetriedPrepareRecognisesItsOwnTopics: a retried Prepare of the same
// workflow, also one that stopped between creating a topic and recording
// it, goes on with its topics; a reset workflow does too until it has
// produced, and is refused after; Cleanup deletes every topic and group of
// the run.
func TestRetriedPrepareRecognisesItsOwnTopics(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := withFlink(t, conn)
	names, owner := ownedNames(t)
	activitytest.DeleteRunAtCleanup(t, conn, names)
	first, err := prepareAs(t, acts, names, owner)
	if err != nil || len(first.Created) != 6 {
		t.Fatalf("Prepare: %+v, %v; want 6 topics created", first, err)
	}
	again, err := prepareAs(t, acts, names, owner)
	if err != nil || len(again.Existed) != 6 || len(again.Created) != 0 || again.ResetFromRunID != "" {
		t.Fatalf("retried Prepare: %+v, %v; want all 6 existed", again, err)
	}

	// An attempt that stopped right after creating the final topic: only
	// its "creating" record is there.
	ctx := context.Background()
	if err := writeTopicState(ctx, conn, names.LedgerTopic, names.FinalTopic, topicCreating); err != nil {
		t.Fatal(err)
	}
	if again, err = prepareAs(t, acts, names, owner); err != nil || len(again.Existed) != 6 {
		t.Fatalf("Prepare after a stop between creating and recording: %+v, %v", again, err)
	}

	reset := owner
	reset.TemporalRunID = "reset-run"
	if again, err = prepareAs(t, acts, names, reset); err != nil || again.ResetFromRunID != owner.TemporalRunID {
		t.Fatalf("Prepare of the reset workflow before producing: %+v, %v; want it to go on, reset noticed", again, err)
	}
	if err := writeLedger(ctx, conn, names.LedgerTopic, "chunk-0", map[string]int{"chunk": 0}); err != nil {
		t.Fatal(err)
	}
	_, err = prepareAs(t, acts, names, reset)
	wantErrType(t, err, errtype.RunReset, names.RunID)

	cleanupAs(t, acts, names, owner)
	for _, topic := range names.Topics() {
		waitTopic(t, conn, topic, false)
	}
}

// TestPrepareRefusesAResetWhoseTopicsAreGone: a later Temporal run of a
// workflow whose ledger is gone (its first run cleaned up) is refused and
// creates nothing.
func TestPrepareRefusesAResetWhoseTopicsAreGone(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := withFlink(t, conn)
	names, owner := ownedNames(t)
	activitytest.DeleteRunAtCleanup(t, conn, names)
	owner.TemporalRunID = "reset-run"
	_, err := prepareAs(t, acts, names, owner)
	wantErrType(t, err, errtype.RunReset, owner.WorkflowID)
	if exists, err := topicExists(context.Background(), conn, names.LedgerTopic); err != nil || exists {
		t.Errorf("ledger created by a refused reset (%v)", err)
	}
}
