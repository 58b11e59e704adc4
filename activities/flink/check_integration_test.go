//go:build integration

package flink

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/flinksql"
)

// submitRunJobs creates a tiny run's topics, submits its two jobs and
// cancels them when the test ends.
func submitRunJobs(t *testing.T, a *stage, label string) (activities.RunNames, activities.FlinkJobs) {
	t.Helper()
	names := activitytest.UniqueNames(t, label)
	createRunTopics(t, a, names, 1)
	jobs, err := activitytest.Execute[activities.FlinkJobs](t, a.env, a.flink.SubmitFlinkJobs,
		SubmitInput{Names: names, Parallelism: 1, CheckpointIntervalMillis: 1000})
	if err != nil {
		t.Fatalf("SubmitFlinkJobs: %v", err)
	}
	t.Cleanup(func() {
		if err := a.cancelJobs(t, names, jobs); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return names, jobs
}

// checkUntilFailure runs CheckFlinkJobs until it reports a failure or the
// time is up, and returns the last result.
func checkUntilFailure(t *testing.T, a *stage, in CheckInput, within time.Duration) CheckResult {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := activitytest.Execute[CheckResult](t, a.env, a.flink.CheckFlinkJobs, in)
		if err != nil {
			t.Fatalf("CheckFlinkJobs: %v", err)
		}
		if res.Failure != "" || time.Now().After(deadline) {
			return res
		}
		time.Sleep(2 * time.Second)
	}
}

// TestCheckFlinkJobsReportsARestartingJobWithItsRootCause feeds the enrich
// job a record that is not JSON: it fails on it, restarts and fails again,
// and the check reports it as soon as it restarted more than allowed, with
// Flink's root cause. Healthy, both jobs report their records and
// checkpoints.
func TestCheckFlinkJobsReportsARestartingJobWithItsRootCause(t *testing.T) {
	a := localStage(t)
	names, jobs := submitRunJobs(t, a, "checkfail")
	const messages = 50
	produceRaw(t, a, names, messages, 5)
	// One endpoint response of three messages: the split job reads one
	// record and writes three, which tells records in from records out.
	produceRecord(t, a, names.ResponsesTopic, []byte(`{"run_id":"`+names.RunID+`","batch_id":"b1","batch_number":1,"messages":[`+
		`{"seq":0,"logical_queue":"q","correlation_id":"c0","sending_id":"s0","produced_at":"2026-12-01T00:00:00.000000Z"},`+
		`{"seq":1,"logical_queue":"q","correlation_id":"c1","sending_id":"s1","produced_at":"2026-12-01T00:00:00.000000Z"},`+
		`{"seq":2,"logical_queue":"q","correlation_id":"c2","sending_id":"s2","produced_at":"2026-12-01T00:00:00.000000Z"}]}`))

	in := CheckInput{Jobs: jobs, MaxRestarts: 1}
	healthy := checkUntilRecords(t, a, in, messages)
	t.Logf("healthy: %+v", healthy)
	for _, j := range healthy.Jobs {
		if j.State != flinksql.JobRunning || j.Restarts != 0 || j.CheckpointsCompleted == 0 || j.RootCause != "" {
			t.Errorf("healthy job %+v: want RUNNING, no restart, a completed checkpoint, no root cause", j)
		}
	}
	if enrich := healthy.Jobs[0]; enrich.RecordsIn != messages || enrich.RecordsOut != messages {
		t.Errorf("enrich job read %d and wrote %d records, want %d each", enrich.RecordsIn, enrich.RecordsOut, messages)
	}
	if split := healthy.Jobs[1]; split.RecordsIn != 1 || split.RecordsOut != 3 {
		t.Errorf("split job read %d and wrote %d records, want 1 response in and 3 messages out", split.RecordsIn, split.RecordsOut)
	}

	produceRecord(t, a, names.RawTopic, []byte("not json at all"))
	res := checkUntilFailure(t, a, in, 2*time.Minute)
	t.Logf("after a poisoned record: %+v", res)
	if !strings.Contains(res.Failure, jobs.EnrichJobName) || !strings.Contains(res.Failure, "restarted") {
		t.Fatalf("failure %q: want the enrich job named and its restarts", res.Failure)
	}
	enrich := res.Jobs[0]
	if enrich.Restarts <= 1 || enrich.RootCause == "" || !strings.Contains(res.Failure, enrich.RootCause) {
		t.Errorf("enrich job %+v: want more than one restart and a root cause that the failure carries", enrich)
	}
	if !strings.Contains(strings.ToLower(enrich.RootCause), "json") && !strings.Contains(strings.ToLower(enrich.RootCause), "deserializ") {
		t.Errorf("root cause %q: want Flink's JSON parse error", enrich.RootCause)
	}
}

// TestCheckFlinkJobsReportsACancelledJob cancels the split job behind the
// run's back through the REST API; a streaming job that ends is a failure
// of the run.
func TestCheckFlinkJobsReportsACancelledJob(t *testing.T) {
	a := localStage(t)
	_, jobs := submitRunJobs(t, a, "checkcancel")
	in := CheckInput{Jobs: jobs, MaxRestarts: 3}
	if res := checkUntilFailure(t, a, in, 0); res.Failure != "" {
		t.Fatalf("fresh jobs: failure %q, want none", res.Failure)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.flink.jobs.Cancel(ctx, jobs.SplitJobID); err != nil {
		t.Fatal(err)
	}
	res := checkUntilFailure(t, a, in, time.Minute)
	t.Logf("after cancel: %+v", res)
	if !strings.Contains(res.Failure, jobs.SplitJobName) || !strings.Contains(res.Failure, "CANCEL") {
		t.Fatalf("failure %q: want the split job named as cancelled", res.Failure)
	}
}

// checkUntilRecords checks until the enrich job has written want records
// and both jobs have completed a checkpoint.
func checkUntilRecords(t *testing.T, a *stage, in CheckInput, want int64) CheckResult {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := activitytest.Execute[CheckResult](t, a.env, a.flink.CheckFlinkJobs, in)
		if err != nil {
			t.Fatalf("CheckFlinkJobs: %v", err)
		}
		done := len(res.Jobs) == 2 && res.Jobs[0].RecordsOut >= want && res.Jobs[1].RecordsOut >= 3 &&
			res.Jobs[0].CheckpointsCompleted > 0 && res.Jobs[1].CheckpointsCompleted > 0
		if done || res.Failure != "" || time.Now().After(deadline) {
			return res
		}
		time.Sleep(time.Second)
	}
}

// produceRecord writes one record, committed, to topic.
func produceRecord(t *testing.T, a *stage, topic string, value []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	producer, err := a.kafka.NewClient(kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte("poison"), Value: value}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}
