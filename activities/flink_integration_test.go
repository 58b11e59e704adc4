//go:build integration

package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/flinksql"
)

// createRunTopics creates every topic of names (RF 3) and deletes them when
// the test ends.
func createRunTopics(t *testing.T, a *Activities, names RunNames, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range []string{names.RawTopic, names.EnrichedTopic, names.ResponsesTopic, names.FinalTopic} {
		resp, err := a.admin.CreateTopic(ctx, partitions, 3, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.admin.DeleteTopics(ctx, names.RawTopic, names.EnrichedTopic, names.ResponsesTopic, names.FinalTopic); err != nil {
			t.Errorf("delete topics: %v", err)
		}
		_, _ = a.admin.DeleteGroups(ctx, names.EnrichGroup, names.DeliverGroup, names.SplitGroup)
	})
}

// produceRaw writes n raw records as the contract describes, in one
// committed transaction.
func produceRaw(t *testing.T, a *Activities, names RunNames, n int, queues int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	producer, err := a.newClient(kgo.TransactionalID(names.RawTopic+".it-producer"), kgo.DefaultProduceTopic(names.RawTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, 0, n)
	for seq := range int64(n) {
		queue := fmt.Sprintf("q-%04d", seq%int64(queues))
		value, _ := json.Marshal(map[string]any{
			"run_id": names.RunID, "seq": seq, "logical_queue": queue,
			"produced_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"), "payload": strings.Repeat("p", 32),
		})
		recs = append(recs, &kgo.Record{Key: []byte(queue), Value: value, Headers: []kgo.RecordHeader{{Key: "logical.queue", Value: []byte(queue)}}})
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

func jobState(t *testing.T, a *Activities, id string) flinksql.JobState {
	t.Helper()
	job, err := a.flink.jobs.Job(context.Background(), id)
	if err != nil {
		t.Fatalf("job %s: %v", id, err)
	}
	return job.State
}

// TestFlinkJobsCarryMessagesThroughDelivery submits the run's two jobs,
// sends raw messages through enrich, DeliverSegment and split, and reads
// them from the final topic; then cancels the jobs.
func TestFlinkJobsCarryMessagesThroughDelivery(t *testing.T) {
	const messages = 600
	a := deliverITActivities(t)
	names := deliverITNames(t, "flink")
	createRunTopics(t, a, names, 3)
	env := deliverITEnv(a)

	in := SubmitFlinkJobsInput{Names: names, Parallelism: 1, CheckpointIntervalMillis: 1000}
	val, err := env.ExecuteActivity(a.SubmitFlinkJobs, in)
	if err != nil {
		t.Fatalf("SubmitFlinkJobs: %v", err)
	}
	var jobs FlinkJobs
	if err := val.Get(&jobs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.CancelFlinkJobs(context.Background(), jobs); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	t.Logf("jobs %+v", jobs)
	if jobs.EnrichJobID == "" || jobs.SplitJobID == "" || jobs.EnrichJobID == jobs.SplitJobID || jobs.SubmitToRunningMillis <= 0 {
		t.Fatalf("jobs = %+v", jobs)
	}
	for _, id := range []string{jobs.EnrichJobID, jobs.SplitJobID} {
		if st := jobState(t, a, id); st != flinksql.JobRunning {
			t.Fatalf("job %s is %s, want RUNNING", id, st)
		}
	}

	// A retried submission finds the running jobs and submits nothing.
	val, err = env.ExecuteActivity(a.SubmitFlinkJobs, in)
	if err != nil {
		t.Fatalf("SubmitFlinkJobs again: %v", err)
	}
	var again FlinkJobs
	if err := val.Get(&again); err != nil {
		t.Fatal(err)
	}
	if again.EnrichJobID != jobs.EnrichJobID || again.SplitJobID != jobs.SplitJobID {
		t.Fatalf("second submission gave %+v, want the running jobs %+v", again, jobs)
	}

	produceRaw(t, a, names, messages, 40)
	token := obtainToken(t, env, a, ObtainTokenInput{})
	res, took := deliver(t, env, a, DeliverSegmentInput{
		Names: names, Segment: 0, MaxMessages: messages, BatchSize: 50, Token: token,
		// The enrich job commits on checkpoints, so the first enriched
		// records appear a checkpoint interval or more after the raw ones.
		IdleTimeoutMillis: 30_000,
	})
	t.Logf("delivered %+v in %s", res, took.Round(time.Millisecond))
	if res.Delivered != messages {
		t.Fatalf("delivered %d, want %d", res.Delivered, messages)
	}

	// The split job turns each response into one final record per message.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	consumer, err := a.newClient(kgo.ConsumeTopics(names.FinalTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[int64]bool{}
	for len(seen) < messages && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var v struct {
				Seq           int64  `json:"seq"`
				CorrelationID string `json:"correlation_id"`
				SendingID     string `json:"sending_id"`
				BatchNumber   int64  `json:"batch_number"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Errorf("final record is not JSON: %v", err)
				return
			}
			if seen[v.Seq] {
				t.Errorf("seq %d twice in the final topic", v.Seq)
			}
			seen[v.Seq] = true
			if v.CorrelationID != correlationIDOf(names.RunID, v.Seq) || v.SendingID == "" || v.BatchNumber <= 0 {
				t.Errorf("final record %+v", v)
			}
		})
	}
	if len(seen) != messages {
		t.Fatalf("final topic holds %d distinct messages, want %d", len(seen), messages)
	}

	if err := a.CancelFlinkJobs(context.Background(), jobs); err != nil {
		t.Fatalf("CancelFlinkJobs: %v", err)
	}
	for _, id := range []string{jobs.EnrichJobID, jobs.SplitJobID} {
		if st := jobState(t, a, id); st != flinksql.JobCanceled {
			t.Fatalf("job %s is %s after cancel, want CANCELED", id, st)
		}
	}
	// Cancelling again is harmless.
	if err := a.CancelFlinkJobs(context.Background(), jobs); err != nil {
		t.Fatalf("CancelFlinkJobs again: %v", err)
	}
}

// TestCancelFlinkJobsByName cancels a run's jobs whose ids never reached
// the workflow.
func TestCancelFlinkJobsByName(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "flinkname")
	createRunTopics(t, a, names, 1)
	env := deliverITEnv(a)
	val, err := env.ExecuteActivity(a.SubmitFlinkJobs, SubmitFlinkJobsInput{Names: names, Parallelism: 1, CheckpointIntervalMillis: 2000})
	if err != nil {
		t.Fatalf("SubmitFlinkJobs: %v", err)
	}
	var jobs FlinkJobs
	if err := val.Get(&jobs); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(a.CancelFlinkJobs, FlinkJobsOf(names)); err != nil {
		t.Fatalf("CancelFlinkJobs by name: %v", err)
	}
	for _, id := range []string{jobs.EnrichJobID, jobs.SplitJobID} {
		if st := jobState(t, a, id); st != flinksql.JobCanceled {
			t.Fatalf("job %s is %s after cancel by name, want CANCELED", id, st)
		}
	}
}
