//go:build integration

package kafkaadmin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/activities/produce"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// These tests run against the Kafka of the local stack (bin/stackctl up
// --only kafka). Every test uses topics of its own run id and deletes them.

const itPartitions = 12

// prepareRun creates the run's topics and deletes them when the test ends.
func prepareRun(t *testing.T, conn *kafkaeos.Conn, names activities.RunNames, partitions int) PrepareTopicsResult {
	t.Helper()
	acts := New(conn, nil)
	res, err := activitytest.Execute[PrepareTopicsResult](t, activitytest.Env(acts), acts.PrepareTopics,
		PrepareTopicsInput{Names: names, Partitions: partitions, ReplicationFactor: 3})
	if err != nil {
		t.Fatalf("PrepareTopics: %v", err)
	}
	activitytest.DeleteRunAtCleanup(t, conn, names)
	return res
}

func TestPrepareTopicsIsIdempotent(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn, nil)
	names := activitytest.UniqueNames(t, "")
	first := prepareRun(t, conn, names, itPartitions)
	if len(first.Created) != 5 || len(first.Existed) != 0 || first.Brokers != 3 {
		t.Fatalf("first PrepareTopics: %+v; want 5 created, 3 brokers", first)
	}
	env := activitytest.Env(acts)
	second, err := activitytest.Execute[PrepareTopicsResult](t, env, acts.PrepareTopics, PrepareTopicsInput{Names: names, Partitions: itPartitions, ReplicationFactor: 3})
	if err != nil {
		t.Fatalf("second PrepareTopics: %v", err)
	}
	if len(second.Created) != 0 || len(second.Existed) != 5 {
		t.Fatalf("second PrepareTopics: %+v; want all 5 existed", second)
	}

	ctx := context.Background()
	details, err := conn.Admin.ListTopics(ctx, names.Topics()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range names.Topics() {
		want := itPartitions
		if topic == names.LedgerTopic {
			want = 1
		}
		d := details[topic]
		if d.Err != nil || len(d.Partitions) != want || len(d.Partitions[0].Replicas) != 3 {
			t.Errorf("%s: err %v, %d partitions (want %d), replicas %v", topic, d.Err, len(d.Partitions), want, d.Partitions[0].Replicas)
		}
	}
	configs, err := conn.Admin.DescribeTopicConfigs(ctx, names.FinalTopic, names.LedgerTopic, names.RawTopic)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ topic, key, want string }{
		{names.FinalTopic, "message.timestamp.type", "LogAppendTime"},
		{names.LedgerTopic, "cleanup.policy", "compact"},
		{names.RawTopic, "message.timestamp.type", "CreateTime"},
		{names.RawTopic, "min.insync.replicas", "2"},
	} {
		rc, err := configs.On(c.topic, nil)
		if err != nil {
			t.Fatalf("configs of %s: %v", c.topic, err)
		}
		got := ""
		for _, kv := range rc.Configs {
			if kv.Key == c.key && kv.Value != nil {
				got = *kv.Value
			}
		}
		if got != c.want {
			t.Errorf("%s %s = %q, want %q", c.topic, c.key, got, c.want)
		}
	}

	// The same names with another partition count must not pass.
	_, err = activitytest.Execute[PrepareTopicsResult](t, env, acts.PrepareTopics, PrepareTopicsInput{Names: names, Partitions: itPartitions + 1, ReplicationFactor: 3})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.TopicMismatch || !strings.Contains(err.Error(), names.RawTopic) {
		t.Errorf("mismatching partitions: got %v, want a %s error naming %s", err, errtype.TopicMismatch, names.RawTopic)
	}

	// Deleting twice is fine; afterwards the topics are gone.
	for range 2 {
		if err := acts.deleteTopics(ctx, names.Topics(), activitytest.Discard); err != nil {
			t.Fatalf("deleteTopics: %v", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		details, err := kafkaeos.FreshTopicDetails(ctx, conn.Client, names.Topics()...)
		if err == nil && !details.Has(names.RawTopic) && !details.Has(names.LedgerTopic) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics still listed 30 s after deleteTopics: %v", details.Names())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestPollLag(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn, nil)
	names := activitytest.UniqueNames(t, "")
	prepareRun(t, conn, names, itPartitions)
	writer := produce.NewWriter(conn)
	defer writer.Close()
	producer := produce.New(writer)
	chunk := produce.ChunkInput{Names: names, Count: 10_000, LogicalQueues: 1000, PayloadBytes: 128}
	producedFrom := time.Now().UnixMilli()
	if _, err := activitytest.Execute[produce.ChunkResult](t, activitytest.Env(producer), producer.ProduceChunk, chunk); err != nil {
		t.Fatalf("ProduceChunk: %v", err)
	}
	producedTo := time.Now().UnixMilli()
	ctx := context.Background()

	// Records per partition, from a consumer; the chunk was one
	// transaction, so each partition holds its records at offsets 0..n-1
	// and one commit marker at n.
	perPartition := map[int32]int64{}
	for _, r := range activitytest.ConsumeCommitted(t, names.RawTopic, 10_000, 2*time.Second) {
		perPartition[r.Partition]++
	}
	markers := int64(len(perPartition))

	// Three groups, all on the raw topic: enrich has consumed half of every
	// partition, split all of partition 0 (marker included) and nothing
	// else, and deliver does not exist.
	enrich, split := kadm.Offsets{}, kadm.Offsets{}
	var enrichConsumed int64
	for p, n := range perPartition {
		enrich.AddOffset(names.RawTopic, p, n/2, -1)
		enrichConsumed += n / 2
	}
	split.AddOffset(names.RawTopic, 0, perPartition[0]+1, -1)
	for group, offsets := range map[string]kadm.Offsets{names.EnrichGroup: enrich, names.SplitGroup: split} {
		resp, err := conn.Admin.CommitOffsets(ctx, group, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit offsets of %s: %v", group, err)
		}
		t.Cleanup(func() { _, _ = conn.Admin.DeleteGroup(context.Background(), group) })
	}

	lagNames := names
	lagNames.EnrichedTopic, lagNames.ResponsesTopic = names.RawTopic, names.RawTopic
	sample, err := activitytest.Execute[LagSample](t, activitytest.Env(acts), acts.PollLag, PollLagInput{Names: lagNames})
	if err != nil {
		t.Fatalf("PollLag: %v", err)
	}
	wantEnrich := 10_000 - enrichConsumed + markers
	wantDeliver := 10_000 + markers
	wantSplit := 10_000 - perPartition[0] + markers - 1
	if sample.Enrich != wantEnrich || sample.Deliver != wantDeliver || sample.Split != wantSplit {
		t.Errorf("lag enrich %d deliver %d split %d; want %d %d %d", sample.Enrich, sample.Deliver, sample.Split, wantEnrich, wantDeliver, wantSplit)
	}
	// Positions are where each group has got to: no commit counts from
	// the start offset, 0 on a new topic.
	wantPositions := [3]int64{enrichConsumed, 0, perPartition[0] + 1}
	if got := [3]int64{sample.EnrichPosition, sample.DeliverPosition, sample.SplitPosition}; got != wantPositions {
		t.Errorf("positions enrich, deliver, split %v; want %v", got, wantPositions)
	}
	if age := time.Since(time.UnixMilli(sample.AtUnixMillis)); age < 0 || age > time.Minute {
		t.Errorf("sample time %d is %s old", sample.AtUnixMillis, age)
	}
	// Every group lags somewhere, so each has an oldest unconsumed record:
	// one of the chunk's, timestamped while it was produced.
	for group, oldest := range map[string]int64{"enrich": sample.EnrichOldestMillis, "deliver": sample.DeliverOldestMillis, "split": sample.SplitOldestMillis} {
		if oldest < producedFrom || oldest > producedTo {
			t.Errorf("%s: oldest unconsumed record at %d, want one produced in [%d, %d]", group, oldest, producedFrom, producedTo)
		}
	}

	// The real topics of the run: enriched and responses are empty.
	sample, err = activitytest.Execute[LagSample](t, activitytest.Env(acts), acts.PollLag, PollLagInput{Names: names})
	if err != nil {
		t.Fatalf("PollLag: %v", err)
	}
	if sample.Enrich != wantEnrich || sample.Deliver != 0 || sample.Split != 0 || sample.EnrichPosition != enrichConsumed || sample.DeliverPosition != 0 || sample.SplitPosition != 0 {
		t.Errorf("lag on the run's topics: %+v", sample)
	}
	// Groups with nothing left have no oldest record.
	if sample.EnrichOldestMillis < producedFrom || sample.EnrichOldestMillis > producedTo || sample.DeliverOldestMillis != 0 || sample.SplitOldestMillis != 0 {
		t.Errorf("oldest unconsumed records on the run's topics: enrich %d (want in [%d, %d]), deliver %d and split %d (want 0)",
			sample.EnrichOldestMillis, producedFrom, producedTo, sample.DeliverOldestMillis, sample.SplitOldestMillis)
	}
}

// A topic config the brokers refuse is the run's input, which no retry
// changes: a non-retryable InvalidInput that shows what was asked for.
func TestPrepareTopicsRefusedConfigIsInvalidInput(t *testing.T) {
	conn := activitytest.Conn(t)
	acts := New(conn, nil)
	names := activitytest.UniqueNames(t, "badconfig")
	activitytest.DeleteRunAtCleanup(t, conn, names)
	_, err := activitytest.Execute[PrepareTopicsResult](t, activitytest.Env(acts), acts.PrepareTopics, PrepareTopicsInput{
		Names: names, Partitions: 1, ReplicationFactor: 1, TopicConfigs: map[string]string{"retention.ms": "soon"},
	})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
		t.Fatalf("err = %v, want a non-retryable %s", err, errtype.InvalidInput)
	}
	if !strings.Contains(err.Error(), "retention.ms=soon") || !strings.Contains(err.Error(), "the brokers refuse it") {
		t.Errorf("error %q does not show the refused config", err)
	}
}
