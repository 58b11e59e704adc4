//go:build integration

package flink

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/testsuite"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
)

// stage holds the activities a Flink test drives: the jobs, delivery
// between them, and cleanup, which cancels them.
type stage struct {
	kafka   *kafkaeos.Conn
	flink   *Activities
	deliver *deliver.Activities
	cleanup *kafkaadmin.Activities
	env     *testsuite.TestActivityEnvironment
}

// localStage builds the activities for the local stack (bin/stackctl up).
func localStage(t *testing.T) *stage {
	t.Helper()
	addrs := localstack.FromEnv()
	conn := activitytest.Conn(t)
	gateway, err := flinksql.NewGateway(addrs.SQLGatewayURL, flinksql.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := flinksql.NewJobManager(addrs.FlinkURL, flinksql.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deliverClients := deliver.NewClients(conn)
	t.Cleanup(deliverClients.Close)
	deliverActs, err := deliver.New(conn, deliverClients, deliver.Config{
		EndpointURL:       addrs.EndpointURL,
		TokenURL:          addrs.TokenURL,
		TokenClientID:     localstack.TokenClientID,
		TokenClientSecret: activitytest.ClientSecret(),
		TokenKey:          activitytest.TokenKey(t, deliver.TokenKeyBytes),
	})
	if err != nil {
		t.Fatal(err)
	}
	security, err := kafkaconn.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	kafka, err := KafkaFromEnv(os.Getenv, security, addrs.KafkaBrokers)
	if err != nil {
		t.Fatal(err)
	}
	s := &stage{kafka: conn, flink: New(kafka, gateway, jobs), deliver: deliverActs, cleanup: kafkaadmin.New(conn, jobs)}
	s.env = activitytest.Env(s.flink, s.deliver, s.cleanup)
	return s
}

// cancelJobs cancels the run's jobs through Cleanup, keeping the topics.
func (s *stage) cancelJobs(t *testing.T, names activities.RunNames, jobs activities.FlinkJobs) error {
	t.Helper()
	_, err := s.env.ExecuteActivity(s.cleanup.Cleanup, kafkaadmin.CleanupInput{Names: names, Jobs: jobs, KeepTopics: true})
	return err
}

// createRunTopics creates every topic of names (RF 3) and deletes them when
// the test ends.
func createRunTopics(t *testing.T, a *stage, names activities.RunNames, partitions int32) {
	t.Helper()
	activitytest.CreateTopics(t, a.kafka, names, map[string]int32{
		names.RawTopic: partitions, names.EnrichedTopic: partitions, names.ResponsesTopic: partitions, names.FinalTopic: partitions,
	})
}

// produceRaw writes n raw records as the contract describes, in one
// committed transaction.
func produceRaw(t *testing.T, a *stage, names activities.RunNames, n int, queues int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	producer, err := a.kafka.NewClient(kgo.TransactionalID(names.RawTopic+".it-producer"), kgo.DefaultProduceTopic(names.RawTopic))
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

func jobState(t *testing.T, a *stage, id string) flinksql.JobState {
	t.Helper()
	state, err := a.flink.jobs.JobStatus(context.Background(), id)
	if err != nil {
		t.Fatalf("job %s: %v", id, err)
	}
	return state
}

// TestFlinkJobsCarryMessagesThroughDelivery submits the run's two jobs,
// sends raw messages through enrich, DeliverSegment and split, and reads
// them from the final topic; then cancels the jobs.
func TestFlinkJobsCarryMessagesThroughDelivery(t *testing.T) {
	const messages = 600
	a := localStage(t)
	names := activitytest.UniqueNames(t, "flink")
	createRunTopics(t, a, names, 3)
	env := a.env

	in := SubmitInput{Names: names, Parallelism: 1, CheckpointIntervalMillis: 1000}
	val, err := env.ExecuteActivity(a.flink.SubmitFlinkJobs, in)
	if err != nil {
		t.Fatalf("SubmitFlinkJobs: %v", err)
	}
	var jobs activities.FlinkJobs
	if err := val.Get(&jobs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.cancelJobs(t, names, jobs); err != nil {
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
	val, err = env.ExecuteActivity(a.flink.SubmitFlinkJobs, in)
	if err != nil {
		t.Fatalf("SubmitFlinkJobs again: %v", err)
	}
	var again activities.FlinkJobs
	if err := val.Get(&again); err != nil {
		t.Fatal(err)
	}
	if again.EnrichJobID != jobs.EnrichJobID || again.SplitJobID != jobs.SplitJobID {
		t.Fatalf("second submission gave %+v, want the running jobs %+v", again, jobs)
	}

	produceRaw(t, a, names, messages, 40)
	token, err := activitytest.Execute[deliver.SealedToken](t, env, a.deliver.ObtainToken, deliver.ObtainTokenInput{})
	if err != nil {
		t.Fatalf("ObtainToken: %v", err)
	}
	started := time.Now()
	res, err := activitytest.Execute[deliver.SegmentResult](t, env, a.deliver.DeliverSegment, deliver.SegmentInput{
		Names: names, Segment: 0, MaxMessages: messages, BatchSize: 50, Token: token,
		// The enrich job commits on checkpoints, so the first enriched
		// records appear a checkpoint interval or more after the raw ones.
		IdleTimeoutMillis: 30_000,
	})
	took := time.Since(started)
	if err != nil {
		t.Fatalf("DeliverSegment: %v", err)
	}
	t.Logf("delivered %+v in %s", res, took.Round(time.Millisecond))
	if res.Delivered != messages {
		t.Fatalf("delivered %d, want %d", res.Delivered, messages)
	}

	// The split job turns each response into one final record per message.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	consumer, err := a.kafka.NewClient(kgo.ConsumeTopics(names.FinalTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
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
			if v.CorrelationID != activitytest.CorrelationID(names.RunID, v.Seq) || v.SendingID == "" || v.BatchNumber <= 0 {
				t.Errorf("final record %+v", v)
			}
		})
	}
	if len(seen) != messages {
		t.Fatalf("final topic holds %d distinct messages, want %d", len(seen), messages)
	}

	if err := a.cancelJobs(t, names, jobs); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, id := range []string{jobs.EnrichJobID, jobs.SplitJobID} {
		if st := jobState(t, a, id); st != flinksql.JobCanceled {
			t.Fatalf("job %s is %s after cancel, want CANCELED", id, st)
		}
	}
	// Cancelling again is harmless.
	if err := a.cancelJobs(t, names, jobs); err != nil {
		t.Fatalf("Cleanup again: %v", err)
	}
}

// TestCleanupCancelsFlinkJobsByName cancels a run's jobs whose ids never
// reached the workflow.
func TestCleanupCancelsFlinkJobsByName(t *testing.T) {
	a := localStage(t)
	names := activitytest.UniqueNames(t, "flinkname")
	createRunTopics(t, a, names, 1)
	env := a.env
	val, err := env.ExecuteActivity(a.flink.SubmitFlinkJobs, SubmitInput{Names: names, Parallelism: 1, CheckpointIntervalMillis: 2000})
	if err != nil {
		t.Fatalf("SubmitFlinkJobs: %v", err)
	}
	var jobs activities.FlinkJobs
	if err := val.Get(&jobs); err != nil {
		t.Fatal(err)
	}
	if err := a.cancelJobs(t, names, activities.FlinkJobs{}); err != nil {
		t.Fatalf("Cleanup by name: %v", err)
	}
	for _, id := range []string{jobs.EnrichJobID, jobs.SplitJobID} {
		if st := jobState(t, a, id); st != flinksql.JobCanceled {
			t.Fatalf("job %s is %s after cancel by name, want CANCELED", id, st)
		}
	}
}
