//go:build integration

package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/workflows"
)

// sweepRun is one fake run of TestCleanupRemovesOnlyFinishedRuns.
type sweepRun struct {
	names activities.RunNames
	owner kafkaadmin.Owner
}

// prepareSweepRun creates run's topics as its workflow's Prepare would,
// and deletes whatever is left of them when the test ends.
func prepareSweepRun(t *testing.T, conn *kafkaeos.Conn, run string, owner kafkaadmin.Owner) sweepRun {
	t.Helper()
	names := activities.RunNamesOf(run)
	t.Cleanup(func() { _, _ = conn.Admin.DeleteTopics(context.Background(), names.Topics()...) })
	in := kafkaadmin.PrepareTopicsInput{Names: names, Partitions: 1, ReplicationFactor: 3, Owner: owner}
	if _, err := kafkaadmin.CreateRunTopics(context.Background(), conn, in, log.NewStructuredLogger(slog.New(slog.DiscardHandler))); err != nil {
		t.Fatalf("prepare %s: %v", run, err)
	}
	return sweepRun{names: names, owner: owner}
}

// startParked starts a PipelineWorkflow on a task queue no worker polls:
// it stays Running until terminated.
func startParked(t *testing.T, c client.Client, id string) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: id, TaskQueue: uniqueName("flowproof-it-noworker"),
	}, workflows.PipelineWorkflow, workflows.PipelineInput{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), id, "", "test cleanup") })
	return run
}

func topicsExist(t *testing.T, conn *kafkaeos.Conn, topics []string, want bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		details, err := kafkaeos.FreshTopicDetails(context.Background(), conn.Client, topics...)
		wrong := []string{}
		for _, topic := range topics {
			if err != nil || (details[topic].Err == nil) != want {
				wrong = append(wrong, topic)
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s, topics %v: exist is not %v (%v)", wrong, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCleanupRemovesOnlyFinishedRuns: of four fake runs, the one whose
// workflow Temporal never knew and the one whose workflow was terminated
// are leftovers; the running one and topics without an owner record are
// left alone. --dry-run lists and removes nothing.
func TestCleanupRemovesOnlyFinishedRuns(t *testing.T) {
	c := dialForTest(t)
	conn, err := kafkaeos.Dial(localstack.FromEnv().KafkaBrokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx := context.Background()
	prefix := uniqueName("it-sweep")

	gone := prepareSweepRun(t, conn, prefix+"-gone", kafkaadmin.Owner{Namespace: "default", WorkflowID: prefix + "-never-started", FirstRunID: "x"})
	doneID := prefix + "-done"
	done := startParked(t, c, doneID)
	if err := c.TerminateWorkflow(ctx, doneID, "", "finished before its cleanup"); err != nil {
		t.Fatal(err)
	}
	terminated := prepareSweepRun(t, conn, prefix+"-terminated", kafkaadmin.Owner{Namespace: "default", WorkflowID: doneID, FirstRunID: done.GetRunID()})
	runningID := prefix + "-running"
	running := prepareSweepRun(t, conn, prefix+"-running",
		kafkaadmin.Owner{Namespace: "default", WorkflowID: runningID, FirstRunID: startParked(t, c, runningID).GetRunID()})
	ownerless := activities.RunNamesOf(prefix + "-ownerless")
	for _, topic := range []string{ownerless.LedgerTopic, ownerless.RawTopic} {
		if _, err := conn.Admin.CreateTopic(ctx, 1, 3, nil, topic); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = conn.Admin.DeleteTopics(context.Background(), topic) })
	}
	topicsExist(t, conn, []string{ownerless.LedgerTopic}, true)
	if err := conn.Client.ProduceSync(ctx, &kgo.Record{Topic: ownerless.LedgerTopic, Value: []byte("not a flowproof record")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	leftovers := func(args ...string) cleanupReport {
		t.Helper()
		code, out, errOut := starter(t, append([]string{"cleanup", "--json", "--run-id-prefix", prefix}, args...)...)
		var report cleanupReport
		if code != 0 || json.Unmarshal([]byte(out), &report) != nil {
			t.Fatalf("cleanup %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
		return report
	}
	runIDs := func(r cleanupReport) []string {
		var ids []string
		for _, l := range r.Leftovers {
			ids = append(ids, l.RunID)
		}
		slices.Sort(ids)
		return ids
	}
	want := []string{gone.names.RunID, terminated.names.RunID}
	everything := slices.Concat(gone.names.Topics(), terminated.names.Topics(), running.names.Topics(), []string{ownerless.LedgerTopic, ownerless.RawTopic})

	dry := leftovers("--dry-run")
	if got := runIDs(dry); !slices.Equal(got, want) {
		t.Errorf("--dry-run listed %v, want %v", got, want)
	}
	topicsExist(t, conn, everything, true)

	removed := leftovers()
	if got := runIDs(removed); !slices.Equal(got, want) {
		t.Errorf("cleanup removed %v, want %v", got, want)
	}
	for _, l := range removed.Leftovers {
		if !l.Removed || len(l.Topics) != 6 || len(l.Groups) != 3 {
			t.Errorf("leftover %+v: want removed, 6 topics and 3 groups", l)
		}
	}
	topicsExist(t, conn, slices.Concat(gone.names.Topics(), terminated.names.Topics()), false)
	topicsExist(t, conn, slices.Concat(running.names.Topics(), []string{ownerless.LedgerTopic, ownerless.RawTopic}), true)
	if again := leftovers(); len(again.Leftovers) != 0 {
		t.Errorf("a second cleanup found %v", runIDs(again))
	}
}
