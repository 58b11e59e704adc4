//go:build integration

package flinksql

// These tests talk to the local stack (bin/stackctl up --only kafka,flink):
// the SQL Gateway submits real jobs to the Flink session cluster, which
// reads and writes real topics on the 3-broker Kafka cluster.

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/internal/localstack"
)

const (
	itPartitions  = 6
	itReplication = 3
	itMessages    = 10_000
	itQueues      = 64
	// itCheckpoint is short so exactly-once output (committed per
	// checkpoint) becomes visible to read_committed readers quickly.
	itCheckpoint = 2 * time.Second
)

type stackClients struct {
	addrs   localstack.Addresses
	gateway *Gateway
	jm      *JobManager
	kafka   *kgo.Client
	admin   *kadm.Client
}

func newStackClients(t *testing.T) *stackClients {
	t.Helper()
	addrs := localstack.FromEnv()
	gw, err := NewGateway(addrs.SQLGatewayURL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	jm, err := NewJobManager(addrs.FlinkURL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(addrs.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return &stackClients{addrs: addrs, gateway: gw, jm: jm, kafka: kc, admin: kadm.NewClient(kc)}
}

func uniqueName(t *testing.T, what string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return fmt.Sprintf("flinksql-it.%s.%s.%s", name, hex.EncodeToString(b), what)
}

// createTopics creates the topics and deletes them when the test ends.
func (s *stackClients) createTopics(t *testing.T, ctx context.Context, configs map[string]*string, topics ...string) {
	t.Helper()
	resp, err := s.admin.CreateTopics(ctx, itPartitions, itReplication, configs, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create topics %v: %v", topics, err)
	}
	// A new topic reaches every broker's metadata a moment after the
	// controller answers; wait until each partition has a leader.
	for ready := false; !ready; {
		details, err := s.admin.ListTopics(ctx, topics...)
		ready = err == nil && details.Error() == nil && len(details) == len(topics)
		for _, d := range details {
			ready = ready && len(d.Partitions) == itPartitions
			for _, p := range d.Partitions {
				ready = ready && p.Err == nil && p.Leader >= 0 && len(p.ISR) == itReplication
			}
		}
		if !ready {
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				t.Fatalf("topics %v never got leaders: %v", topics, err)
			}
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if resp, err := s.admin.DeleteTopics(ctx, topics...); err != nil || resp.Error() != nil {
			t.Logf("delete topics %v: %v %v", topics, err, resp.Error())
		}
	})
}

func (s *stackClients) openSession(t *testing.T, ctx context.Context) *Session {
	t.Helper()
	sess, err := s.gateway.OpenSession(ctx, SessionConfig{
		Name:           "flinksql-it-" + t.Name(),
		Properties:     map[string]string{"execution.runtime-mode": "streaming"},
		HeartbeatEvery: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sess.Close(ctx); err != nil {
			t.Logf("close session: %v", err)
		}
	})
	return sess
}

// cancelOnCleanup makes sure a job started by a failing test does not keep
// its slots.
func (s *stackClients) cancelOnCleanup(t *testing.T, jobID string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		job, err := s.jm.Job(ctx, jobID)
		if err == nil && !job.State.Terminal() {
			if err := s.jm.Cancel(ctx, jobID); err != nil {
				t.Logf("cancel job %s: %v", jobID, err)
			}
		}
	})
}

// produceTransactional writes records in transactions of chunk records, as
// the Produce activity does, so the jobs' read_committed sources are
// exercised against transaction markers.
func (s *stackClients) produceTransactional(t *testing.T, ctx context.Context, records []*kgo.Record, chunk int) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.addrs.KafkaBrokers...),
		kgo.TransactionalID("flinksql-it-producer-"+hex.EncodeToString(b)),
		kgo.TransactionTimeout(time.Minute),
		kgo.UnknownTopicRetries(50),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for start := 0; start < len(records); start += chunk {
		end := min(start+chunk, len(records))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("begin transaction: %v", err)
		}
		var produceErr error
		for _, r := range records[start:end] {
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil && produceErr == nil {
					produceErr = err
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		commit := kgo.TryCommit
		if produceErr != nil {
			commit = kgo.TryAbort
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
		if produceErr != nil {
			t.Fatalf("produce: %v", produceErr)
		}
	}
}

// consumeCommitted reads topic with read_committed until want records are
// seen, then keeps reading for settle to catch any duplicate. It returns
// what it read, which may be more or fewer than want.
func (s *stackClients) consumeCommitted(t *testing.T, ctx context.Context, topic string, want int, settle time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.addrs.KafkaBrokers...),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	var settleUntil time.Time
	for {
		if !settleUntil.IsZero() && time.Now().After(settleUntil) {
			return out
		}
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			t.Logf("consume %s: stopped after %d of %d records: %v", topic, len(out), want, ctx.Err())
			return out
		}
		fetches.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("consume %s/%d: %v", tp, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		if len(out) >= want && settleUntil.IsZero() {
			settleUntil = time.Now().Add(settle)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func correlationID(runID string, seq int64) string {
	sum := md5.Sum([]byte(fmt.Sprintf("%s:%d", runID, seq)))
	return hex.EncodeToString(sum[:])
}

func logicalQueue(seq int64) string { return fmt.Sprintf("q-%04d", seq%itQueues) }

type rawValue struct {
	RunID        string `json:"run_id"`
	Seq          int64  `json:"seq"`
	LogicalQueue string `json:"logical_queue"`
	ProducedAt   string `json:"produced_at"`
	Payload      string `json:"payload"`
}

type enrichedValue struct {
	rawValue
	CorrelationID string `json:"correlation_id"`
}

// waitAllVerticesRunning returns when every vertex of the job runs; the job
// is RUNNING earlier, while its tasks are still being deployed.
func (s *stackClients) waitAllVerticesRunning(ctx context.Context, jobID string) (Job, error) {
	for {
		job, err := s.jm.Job(ctx, jobID)
		if err != nil {
			return job, err
		}
		running := job.State == JobRunning && len(job.Vertices) > 0
		for _, v := range job.Vertices {
			running = running && v.Status == "RUNNING"
		}
		if running {
			return job, nil
		}
		if job.State.Terminal() {
			return job, fmt.Errorf("job %s is %s", jobID, job.State)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return job, err
		}
	}
}

func TestGatewayServesV4(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newStackClients(t)
	versions, err := s.gateway.APIVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SQL Gateway REST API versions: %v", versions)
	if err := s.gateway.CheckVersion(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := s.gateway.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := s.jm.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tms, err := s.jm.TaskManagers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gateway %s %s; cluster: Flink %s, %d TaskManagers, %d/%d slots free", info.ProductName, info.Version, ov.FlinkVersion, ov.TaskManagers, ov.SlotsAvailable, ov.SlotsTotal)
	if info.Version != ov.FlinkVersion {
		t.Errorf("gateway runs Flink %s, cluster %s", info.Version, ov.FlinkVersion)
	}
	if len(tms) != ov.TaskManagers || len(tms) == 0 {
		t.Errorf("TaskManagers lists %d, overview says %d", len(tms), ov.TaskManagers)
	}
}

func TestSessionLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newStackClients(t)
	sess, err := s.gateway.OpenSession(ctx, SessionConfig{
		Name:       "flinksql-it-lifecycle",
		Properties: map[string]string{"execution.runtime-mode": "streaming", "parallelism.default": "2", "pipeline.name": "it-lifecycle"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := sess.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg["parallelism.default"] != "2" || cfg["pipeline.name"] != "it-lifecycle" {
		t.Errorf("session config lacks the properties it was opened with: parallelism.default=%q pipeline.name=%q", cfg["parallelism.default"], cfg["pipeline.name"])
	}
	res, err := sess.Execute(ctx, "SELECT 40 + 2 AS answer, 'it''s' AS quoted")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0].String(0) != "42" || res.Rows[0].String(1) != "it's" {
		t.Errorf("SELECT rows = %+v, want [42 it's]", res.Rows)
	}
	if len(res.Columns) != 2 || res.Columns[0].Name != "answer" {
		t.Errorf("columns = %+v", res.Columns)
	}

	// An unbounded query runs until cancelled; cancelling the operation
	// also ends the Flink job the gateway started for it.
	if _, err := sess.Execute(ctx, "CREATE TEMPORARY TABLE ticks (n BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '5')"); err != nil {
		t.Fatal(err)
	}
	op, err := sess.Submit(ctx, "SELECT n FROM ticks", nil)
	if err != nil {
		t.Fatal(err)
	}
	var page ResultPage
	var token int64
	for page.JobID == "" || len(page.Results.Data) == 0 {
		if page, err = op.FetchPage(ctx, token); err != nil {
			t.Fatal(err)
		}
		next, more := page.NextToken()
		if !more {
			t.Fatalf("unbounded query ended: %+v", page)
		}
		token = next
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("no rows from the unbounded query: %v", err)
		}
	}
	t.Logf("unbounded query: job %s, %d rows in page %d", page.JobID, len(page.Results.Data), token-1)
	s.cancelOnCleanup(t, page.JobID)
	// A query's operation is FINISHED once its job is submitted; closing
	// the operation is what ends the job.
	if st, err := op.Close(ctx); err != nil || st != OperationClosed {
		t.Errorf("close query: status %s, %v; want CLOSED", st, err)
	}
	if js, err := s.jm.WaitForState(ctx, page.JobID, JobCanceled); err != nil {
		t.Errorf("query job %s after closing its operation: %s, %v", page.JobID, js, err)
	}

	// With table.dml-sync an INSERT's operation runs as long as its job:
	// that is an operation Cancel can stop.
	if _, err := sess.Execute(ctx, "CREATE TEMPORARY TABLE sink (n BIGINT) WITH ('connector' = 'blackhole')"); err != nil {
		t.Fatal(err)
	}
	insert, err := sess.Submit(ctx, "INSERT INTO sink SELECT n FROM ticks", map[string]string{"table.dml-sync": "true"})
	if err != nil {
		t.Fatal(err)
	}
	var insertJob string
	for insertJob == "" {
		jobs, err := s.jm.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.Name == "it-lifecycle" && j.State == JobRunning && j.ID != page.JobID {
				insertJob = j.ID
			}
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("the synchronous INSERT's job never ran: %v", err)
		}
	}
	s.cancelOnCleanup(t, insertJob)
	if st, err := insert.Status(ctx); err != nil || st != OperationRunning {
		t.Errorf("synchronous INSERT: status %s, %v; want RUNNING", st, err)
	}
	if st, err := insert.Cancel(ctx); err != nil || st != OperationCanceled {
		t.Errorf("cancel: status %s, %v; want CANCELED", st, err)
	}
	if _, err := insert.Close(ctx); err != nil {
		t.Errorf("close cancelled operation: %v", err)
	}
	// Whether the gateway also cancels the job of a cancelled synchronous
	// INSERT has varied between runs on Flink 2.2.0, so the job is ended
	// through the JobManager, which is what callers must do too.
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
	js, err := s.jm.WaitForState(waitCtx, insertJob, JobCanceled)
	waitCancel()
	t.Logf("synchronous INSERT job %s five seconds after its operation was cancelled and closed: %s", insertJob, js)
	if err != nil {
		if err := s.jm.Cancel(ctx, insertJob); err != nil {
			t.Fatal(err)
		}
		if js, err := s.jm.WaitForState(ctx, insertJob, JobCanceled); err != nil {
			t.Errorf("INSERT job %s after JobManager.Cancel: %s, %v", insertJob, js, err)
		}
	}

	if err := sess.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var apiErr *APIError
	if err := sess.Heartbeat(ctx); !errors.As(err, &apiErr) {
		t.Errorf("heartbeat on a closed session: %v, want an *APIError", err)
	} else {
		t.Logf("heartbeat after close: %v", err)
	}
}

func TestSyntaxErrorReachesCaller(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newStackClients(t)
	sess := s.openSession(t, ctx)
	_, err := sess.Execute(ctx, "SELECT * FROM (VALUES (1)) AS t(x) WHERE")
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("Execute(a statement ending in WHERE) = %v, want an *APIError", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), `Encountered "<EOF>" at line 1, column 40.`) || apiErr.RootCause() == "" {
		t.Errorf("the parser's message did not reach the error:\nError(): %v\nRootCause(): %s", err, apiErr.RootCause())
	}
	if strings.Contains(err.Error(), "\tat ") {
		t.Errorf("Error() carries a stack trace: %v", err)
	}
}

func TestUnknownConnectorOptionReachesCaller(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newStackClients(t)
	sess := s.openSession(t, ctx)
	if _, err := sess.Execute(ctx, "CREATE TEMPORARY TABLE bad (x STRING) WITH ('connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = '127.0.0.1:1', 'format' = 'json', 'no.such.option' = 'x')"); err != nil {
		t.Fatalf("create table: %v", err) // options are checked when the table is used
	}
	_, err := sess.Execute(ctx, "EXPLAIN SELECT * FROM bad")
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("EXPLAIN with an unknown option = %v, want an *APIError", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "no.such.option") {
		t.Errorf("the unknown option is not named in the error: %v", err)
	}
}

func TestEnrichJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newStackClients(t)
	raw, enriched := uniqueName(t, "raw"), uniqueName(t, "enriched")
	s.createTopics(t, ctx, nil, raw)
	// Broker-side timestamps on the output give the writer's wall-clock
	// window, which the metrics (refreshed every few seconds) cannot.
	s.createTopics(t, ctx, map[string]*string{"message.timestamp.type": kadm.StringPtr("LogAppendTime")}, enriched)
	runID := "it-run-" + strings.Split(raw, ".")[2]
	job := EnrichJob{
		Name:                  uniqueName(t, "enrich"),
		Brokers:               s.addrs.KafkaBrokers,
		SourceTopic:           raw,
		SinkTopic:             enriched,
		GroupID:               uniqueName(t, "enrich"),
		TransactionalIDPrefix: uniqueName(t, "enrich"),
		Parallelism:           2,
		CheckpointInterval:    itCheckpoint,
	}

	sess := s.openSession(t, ctx)
	submitted := time.Now()
	jobID, err := sess.SubmitJob(ctx, job)
	if err != nil {
		t.Fatalf("submit enrich job: %v", err)
	}
	s.cancelOnCleanup(t, jobID)
	accepted := time.Since(submitted)
	if _, err := s.jm.WaitForState(ctx, jobID, JobRunning); err != nil {
		t.Fatal(err)
	}
	toRunning := time.Since(submitted)
	details, err := s.waitAllVerticesRunning(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	toTasks := time.Since(submitted)
	t.Logf("enrich job %s: statements accepted after %v, job RUNNING after %v, all %d vertices RUNNING after %v",
		jobID, accepted.Round(time.Millisecond), toRunning.Round(time.Millisecond), len(details.Vertices), toTasks.Round(time.Millisecond))
	checkVertices(t, details, job.Name, tableName(job.Name, "raw"), tableName(job.Name, "enriched"))

	// The job's start-up work counts as busy time too, so the baseline is
	// taken once it is done, before there is anything to read.
	probe := startThroughputProbe(t, ctx, s.jm, jobID, details.Vertices[0])

	records := make([]*kgo.Record, itMessages)
	producedAt := time.Now().UTC()
	for i := range records {
		seq := int64(i)
		v, _ := json.Marshal(rawValue{RunID: runID, Seq: seq, LogicalQueue: logicalQueue(seq),
			ProducedAt: producedAt.Add(time.Duration(i) * time.Microsecond).Format("2006-01-02T15:04:05.000000Z"),
			Payload:    strings.Repeat("x", 64)})
		records[i] = &kgo.Record{Topic: raw, Key: []byte(logicalQueue(seq)), Value: v,
			Headers: []kgo.RecordHeader{{Key: "logical.queue", Value: []byte(logicalQueue(seq))}}}
	}
	produceStart := time.Now()
	s.produceTransactional(t, ctx, records, 1000)
	t.Logf("produced %d raw records in 10 transactions in %v", itMessages, time.Since(produceStart).Round(time.Millisecond))
	throughput := probe.finish(t, ctx, itMessages)

	got := s.consumeCommitted(t, ctx, enriched, itMessages, 3*itCheckpoint)
	verifyEnriched(t, got, runID)
	t.Logf("enrich job throughput from metrics: %s", throughput)
	if len(got) > 1 {
		first, last := got[0].Timestamp, got[0].Timestamp
		for _, r := range got {
			first, last = minTime(first, r.Timestamp), maxTime(last, r.Timestamp)
		}
		if window := last.Sub(first); window > 0 {
			t.Logf("enrich job output window on the brokers (LogAppendTime): %d records in %v = %.0f records/s", len(got), window.Round(time.Millisecond), float64(len(got))/window.Seconds())
		}
	}

	waitGroupCaughtUp(t, ctx, s.admin, job.GroupID, raw)
	logJobHealth(t, ctx, s.jm, jobID)

	if err := s.jm.Cancel(ctx, jobID); err != nil {
		t.Fatal(err)
	}
	if st, err := s.jm.WaitForState(ctx, jobID, JobCanceled); err != nil {
		t.Fatalf("after cancel: %v", err)
	} else {
		t.Logf("enrich job %s after cancel: %s", jobID, st)
	}
}

func verifyEnriched(t *testing.T, got []*kgo.Record, runID string) {
	t.Helper()
	if len(got) != itMessages {
		t.Errorf("enriched topic has %d committed records, want exactly %d", len(got), itMessages)
	}
	seen := make(map[int64]int, len(got))
	ids := make(map[string]int64, len(got))
	for _, r := range got {
		var v enrichedValue
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("enriched value %q: %v", r.Value, err)
		}
		seen[v.Seq]++
		cid, ok := header(r, "correlation.id")
		switch {
		case !ok:
			t.Fatalf("seq %d: no correlation.id header; headers %v", v.Seq, r.Headers)
		case cid != v.CorrelationID:
			t.Fatalf("seq %d: correlation.id header %q != JSON field %q", v.Seq, cid, v.CorrelationID)
		case cid != correlationID(runID, v.Seq):
			t.Fatalf("seq %d: correlation id %q, want MD5(%s:%d) = %s", v.Seq, cid, runID, v.Seq, correlationID(runID, v.Seq))
		}
		if prev, dup := ids[cid]; dup {
			t.Fatalf("correlation id %s on seq %d and seq %d", cid, prev, v.Seq)
		}
		ids[cid] = v.Seq
		if q, _ := header(r, "logical.queue"); q != logicalQueue(v.Seq) || string(r.Key) != q || v.LogicalQueue != q {
			t.Fatalf("seq %d: logical.queue header %q, key %q, field %q; want %q", v.Seq, q, r.Key, v.LogicalQueue, logicalQueue(v.Seq))
		}
		if v.RunID != runID || v.Payload != strings.Repeat("x", 64) || !strings.HasSuffix(v.ProducedAt, "Z") {
			t.Fatalf("seq %d: raw fields changed: %+v", v.Seq, v.rawValue)
		}
	}
	for seq := int64(0); seq < itMessages; seq++ {
		if seen[seq] != 1 {
			t.Errorf("seq %d seen %d times", seq, seen[seq])
		}
	}
}

type batchMessage struct {
	Seq           int64  `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	CorrelationID string `json:"correlation_id"`
	SendingID     string `json:"sending_id"`
	ProducedAt    string `json:"produced_at"`
}

type responseValue struct {
	RunID       string         `json:"run_id"`
	BatchID     string         `json:"batch_id"`
	BatchNumber int64          `json:"batch_number"`
	Messages    []batchMessage `json:"messages"`
}

type finalValue struct {
	RunID         string `json:"run_id"`
	Seq           int64  `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	ProducedAt    string `json:"produced_at"`
	CorrelationID string `json:"correlation_id"`
	SendingID     string `json:"sending_id"`
	BatchNumber   int64  `json:"batch_number"`
}

// splitJobOfItsOwn creates a responses topic and a final topic (stamped by
// the broker, as the pipeline's is) for the calling test, and returns them
// with a run id and a split job between them: parallelism 2, checkpoints
// every itCheckpoint.
func (s *stackClients) splitJobOfItsOwn(t *testing.T, ctx context.Context) (responses, final, runID string, job SplitJob) {
	t.Helper()
	responses, final = uniqueName(t, "responses"), uniqueName(t, "final")
	s.createTopics(t, ctx, nil, responses)
	s.createTopics(t, ctx, map[string]*string{"message.timestamp.type": kadm.StringPtr("LogAppendTime")}, final)
	runID = "it-run-" + strings.Split(responses, ".")[2]
	job = SplitJob{
		Name:                  uniqueName(t, "split"),
		Brokers:               s.addrs.KafkaBrokers,
		SourceTopic:           responses,
		SinkTopic:             final,
		GroupID:               uniqueName(t, "split"),
		TransactionalIDPrefix: uniqueName(t, "split"),
		Parallelism:           2,
		CheckpointInterval:    itCheckpoint,
	}
	return responses, final, runID, job
}

// responseRecords are the endpoint's answers to batches of perBatch
// messages each, seqs from 0, as records of topic keyed by batch id.
func responseRecords(runID, topic string, batches, perBatch int, producedAt string) []*kgo.Record {
	records := make([]*kgo.Record, 0, batches)
	for b := range batches {
		batch := responseValue{RunID: runID, BatchID: fmt.Sprintf("%s-b%d", runID, b*perBatch), BatchNumber: int64(b + 1)}
		for i := range perBatch {
			seq := int64(b*perBatch + i)
			batch.Messages = append(batch.Messages, batchMessage{Seq: seq, LogicalQueue: logicalQueue(seq),
				CorrelationID: correlationID(runID, seq), SendingID: fmt.Sprintf("send-%d", seq), ProducedAt: producedAt})
		}
		v, _ := json.Marshal(batch)
		records = append(records, &kgo.Record{Topic: topic, Key: []byte(batch.BatchID), Value: v})
	}
	return records
}

func TestSplitJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newStackClients(t)
	responses, final, runID, job := s.splitJobOfItsOwn(t, ctx)
	const batches, perBatch = 100, 100
	producedAt := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
	s.produceTransactional(t, ctx, responseRecords(runID, responses, batches, perBatch, producedAt), 10)

	sess := s.openSession(t, ctx)
	submitted := time.Now()
	jobID, err := sess.SubmitJob(ctx, job)
	if err != nil {
		t.Fatalf("submit split job: %v", err)
	}
	s.cancelOnCleanup(t, jobID)
	// The job belongs to the cluster, not to the session that submitted it.
	if err := sess.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.jm.WaitForState(ctx, jobID, JobRunning); err != nil {
		t.Fatal(err)
	}
	toRunning := time.Since(submitted)
	details, err := s.waitAllVerticesRunning(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("split job %s: RUNNING after %v, all %d vertices RUNNING after %v", jobID, toRunning.Round(time.Millisecond), len(details.Vertices), time.Since(submitted).Round(time.Millisecond))
	checkVertices(t, details, job.Name, tableName(job.Name, "responses"), tableName(job.Name, "final"))

	got := s.consumeCommitted(t, ctx, final, batches*perBatch, 3*itCheckpoint)
	if len(got) != batches*perBatch {
		t.Errorf("final topic has %d committed records, want exactly %d", len(got), batches*perBatch)
	}
	seen := make(map[int64]int)
	for _, r := range got {
		var v finalValue
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("final value %q: %v", r.Value, err)
		}
		seen[v.Seq]++
		want := map[string]string{
			"correlation.id": correlationID(runID, v.Seq),
			"sending.id":     fmt.Sprintf("send-%d", v.Seq),
			"logical.queue":  logicalQueue(v.Seq),
			"batch.number":   fmt.Sprint(v.Seq/perBatch + 1),
		}
		for k, w := range want {
			if h, ok := header(r, k); !ok || h != w {
				t.Fatalf("seq %d: header %s = %q (present %v), want %q", v.Seq, k, h, ok, w)
			}
		}
		if string(r.Key) != logicalQueue(v.Seq) || v.LogicalQueue != logicalQueue(v.Seq) || v.RunID != runID ||
			v.CorrelationID != correlationID(runID, v.Seq) || v.SendingID != want["sending.id"] ||
			v.BatchNumber != v.Seq/perBatch+1 || v.ProducedAt != producedAt {
			t.Fatalf("seq %d: record key %q value %+v does not match its batch", v.Seq, r.Key, v)
		}
	}
	for seq := int64(0); seq < batches*perBatch; seq++ {
		if seen[seq] != 1 {
			t.Errorf("seq %d seen %d times", seq, seen[seq])
		}
	}
	waitGroupCaughtUp(t, ctx, s.admin, job.GroupID, responses)
	logJobHealth(t, ctx, s.jm, jobID)

	// Stopping with a savepoint ends the job FINISHED, the way a pipeline
	// is shut down without losing its position.
	location, err := s.jm.StopWithSavepoint(ctx, jobID, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.jm.WaitForState(ctx, jobID, JobFinished); err != nil {
		t.Fatalf("after stop: %v", err)
	} else {
		t.Logf("split job %s after stop-with-savepoint: %s, savepoint %s", jobID, st, location)
	}
}

// A checkpoint asked for commits what the job wrote: with periodic
// checkpoints half an hour apart (the first one comes at a random moment
// within the first interval), the split job's records become visible
// through Checkpoint.
func TestCheckpointOnRequestCommitsTheJobsRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newStackClients(t)
	responses, final, runID, job := s.splitJobOfItsOwn(t, ctx)
	job.Parallelism = 1
	job.CheckpointInterval, job.TransactionTimeout = 30*time.Minute, MaxTransactionTimeout
	const batches, perBatch = 10, 10
	producedAt := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
	s.produceTransactional(t, ctx, responseRecords(runID, responses, batches, perBatch, producedAt), batches)

	sess := s.openSession(t, ctx)
	jobID, err := sess.SubmitJob(ctx, job)
	if err != nil {
		t.Fatalf("submit split job: %v", err)
	}
	s.cancelOnCleanup(t, jobID)
	if _, err := s.waitAllVerticesRunning(ctx, jobID); err != nil {
		t.Fatal(err)
	}
	// The job may not have read every response by the first checkpoint;
	// what it has read by a later one is committed by that one.
	var got []*kgo.Record
	for attempt := 1; attempt <= 20 && len(got) < batches*perBatch; attempt++ {
		id, err := s.jm.Checkpoint(ctx, jobID)
		if err != nil {
			t.Fatalf("checkpoint %d: %v", attempt, err)
		}
		readCtx, stop := context.WithTimeout(ctx, 3*time.Second)
		got = s.consumeCommitted(t, readCtx, final, batches*perBatch, 0)
		stop()
		t.Logf("after checkpoint %d (attempt %d): %d of %d records committed", id, attempt, len(got), batches*perBatch)
	}
	if len(got) != batches*perBatch {
		t.Fatalf("final topic has %d committed records after the checkpoints asked for, want %d", len(got), batches*perBatch)
	}
}

func TestEnrichExplainComputesCorrelationIDOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newStackClients(t)
	job := EnrichJob{
		Name:                  uniqueName(t, "enrich"),
		Brokers:               s.addrs.KafkaBrokers,
		SourceTopic:           uniqueName(t, "raw"),
		SinkTopic:             uniqueName(t, "enriched"),
		GroupID:               uniqueName(t, "enrich"),
		TransactionalIDPrefix: uniqueName(t, "enrich"),
		CheckpointInterval:    itCheckpoint,
	}
	stmts, err := job.Statements()
	if err != nil {
		t.Fatal(err)
	}
	sess := s.openSession(t, ctx)
	for _, stmt := range stmts[:len(stmts)-1] {
		if _, err := sess.Execute(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	res, err := sess.Execute(ctx, "EXPLAIN "+stmts[len(stmts)-1])
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("EXPLAIN returned %d rows", len(res.Rows))
	}
	plan := res.Rows[0].String(0)
	t.Logf("EXPLAIN:\n%s", plan)
	_, optimized, found := strings.Cut(plan, "== Optimized Execution Plan ==")
	if !found {
		t.Fatalf("no optimized execution plan in EXPLAIN output")
	}
	// One node of the plan per line; a Correlate prints its invocation
	// twice (invocation=[...] and correlate=[...]), so nodes are counted,
	// not occurrences.
	var hashing []string
	for _, line := range strings.Split(optimized, "\n") {
		if strings.Contains(line, "MD5(") {
			hashing = append(hashing, strings.TrimLeft(line, " +-"))
		}
	}
	if len(hashing) != 1 || !strings.HasPrefix(hashing[0], "Correlate(") {
		t.Fatalf("want exactly one plan node computing MD5, a Correlate; got %d:\n%s", len(hashing), strings.Join(hashing, "\n"))
	}
	for _, line := range strings.Split(optimized, "\n") {
		if node := strings.TrimLeft(line, " +-"); strings.HasPrefix(node, "Calc(") && strings.Contains(node, "correlation.id") {
			if strings.Contains(node, "MD5(") {
				t.Errorf("the Calc building the headers hashes again: %s", node)
			}
			t.Logf("header Calc reuses the correlate's column: %s", node)
		}
	}
}

// checkVertices asserts the job is the one asked for: named as the
// settings say, with a vertex reading the source table and one writing the
// sink table.
func checkVertices(t *testing.T, job Job, name, source, sink string) {
	t.Helper()
	if job.Name != name {
		t.Errorf("job name %q, want %q", job.Name, name)
	}
	var names []string
	for _, v := range job.Vertices {
		names = append(names, fmt.Sprintf("%s (parallelism %d, %s)", v.Name, v.Parallelism, v.Status))
	}
	t.Logf("vertices: %s", strings.Join(names, "; "))
	hasSource := slices.ContainsFunc(job.Vertices, func(v Vertex) bool { return strings.Contains(v.Name, source) && strings.Contains(v.Name, "Source") })
	hasSink := slices.ContainsFunc(job.Vertices, func(v Vertex) bool { return strings.Contains(v.Name, sink) })
	if !hasSource || !hasSink {
		t.Errorf("vertices %v lack a source of %s or a sink to %s", names, source, sink)
	}
}

// throughputProbe reads a job's throughput from its metrics: the sink
// writer's count of records sent to Kafka, and the tasks' accumulated busy
// time. The JobManager serves metrics from a cache refreshed every
// metrics.fetcher.update-interval (10s by default), so wall-clock windows
// measured by polling are coarse; busy time is not, and records per busy
// second is the rate a subtask sustains while it has work.
type throughputProbe struct {
	jm          *JobManager
	jobID       string
	vertex      Vertex
	counter     string
	baseBusy    float64
	baseRecords float64
}

const busyMetric = "accumulateBusyTimeMs"

func startThroughputProbe(t *testing.T, ctx context.Context, jm *JobManager, jobID string, vertex Vertex) *throughputProbe {
	t.Helper()
	p := &throughputProbe{jm: jm, jobID: jobID, vertex: vertex}
	for p.counter == "" {
		names, err := jm.MetricNames(ctx, jobID, vertex.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			// "0.<sink table>[35]__Writer.numRecordsSend": subtask 0's writer.
			if _, op, ok := strings.Cut(n, "."); ok && strings.HasSuffix(op, "__Writer.numRecordsSend") {
				p.counter = op
				break
			}
		}
		if p.counter == "" {
			if err := sleep(ctx, 500*time.Millisecond); err != nil {
				t.Fatalf("job %s: no writer metric registered: %v", jobID, err)
			}
		}
	}
	// Busy time moves with every checkpoint even when idle, so a change of
	// value marks a cache refresh; the value after the second refresh no
	// longer contains the start-up work.
	var refreshes int
	last := -1.0
	for refreshes < 2 {
		m, err := jm.VertexMetrics(ctx, jobID, vertex.ID, p.counter, busyMetric)
		if err != nil {
			t.Fatal(err)
		}
		if busy := float64(m[busyMetric].Sum); busy != last {
			if last >= 0 {
				refreshes++
			}
			last = busy
			p.baseBusy, p.baseRecords = busy, float64(m[p.counter].Sum)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("job %s: metrics never refreshed: %v", jobID, err)
		}
	}
	return p
}

// finish waits until the writer has sent want more records and reports
// the rate; the refresh that shows the last record also holds the busy
// time spent on it.
func (p *throughputProbe) finish(t *testing.T, ctx context.Context, want int) string {
	t.Helper()
	var records, busy float64
	for {
		m, err := p.jm.VertexMetrics(ctx, p.jobID, p.vertex.ID, p.counter, busyMetric)
		if err != nil {
			t.Fatal(err)
		}
		records, busy = float64(m[p.counter].Sum)-p.baseRecords, float64(m[busyMetric].Sum)-p.baseBusy
		if records >= float64(want) {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("job %s: %s at %.0f of %d: %v", p.jobID, p.counter, records, want, err)
		}
	}
	if busy <= 0 {
		return fmt.Sprintf("%.0f records sent by %s; busy time not refreshed yet", records, p.counter)
	}
	return fmt.Sprintf("%.0f records sent by %s in %.2f busy task-seconds over %d subtasks = %.0f records per busy subtask-second, about %.0f records/s for the job at parallelism %d",
		records, p.counter, busy/1000, p.vertex.Parallelism, records/(busy/1000), float64(p.vertex.Parallelism)*records/(busy/1000), p.vertex.Parallelism)
}

// waitGroupCaughtUp checks the job's consumer group commits offsets (Flink
// commits them on checkpoints), so lag is measurable from outside. Flink
// commits the offset after the last record it emitted; on a topic written
// in transactions the commit marker after the last record takes one more
// offset, so a caught-up partition shows a lag of 0 or 1, never more.
func waitGroupCaughtUp(t *testing.T, ctx context.Context, admin *kadm.Client, group, topic string) {
	t.Helper()
	var last string
	for i := 0; i < 100; i++ {
		lags, err := admin.Lag(ctx, group)
		if err == nil {
			err = lags.Error()
		}
		if err != nil {
			last = err.Error()
		} else if ps := lags[group].Lag[topic]; len(ps) != itPartitions {
			last = fmt.Sprintf("%d partitions with offsets", len(ps))
		} else {
			caughtUp := true
			var parts []string
			for p := int32(0); p < itPartitions; p++ {
				l := ps[p]
				caughtUp = caughtUp && l.Err == nil && l.Lag >= 0 && l.Lag <= 1
				parts = append(parts, fmt.Sprintf("p%d commit %d end %d lag %d", p, l.Commit.At, l.End.Offset, l.Lag))
			}
			last = strings.Join(parts, ", ")
			if caughtUp {
				t.Logf("group %s on %s (state %s): %s", group, topic, lags[group].State, last)
				return
			}
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			break
		}
	}
	t.Errorf("group %s never caught up on %s: %s", group, topic, last)
}

func logJobHealth(t *testing.T, ctx context.Context, jm *JobManager, jobID string) {
	t.Helper()
	restarts, err := jm.Restarts(ctx, jobID)
	if err != nil {
		t.Errorf("restarts: %v", err)
	}
	cps, err := jm.Checkpoints(ctx, jobID)
	if err != nil {
		t.Errorf("checkpoints: %v", err)
	}
	exc, err := jm.Exceptions(ctx, jobID)
	if err != nil {
		t.Errorf("exceptions: %v", err)
	}
	t.Logf("job %s: %d restarts, checkpoints completed %d failed %d, %d exceptions", jobID, restarts, cps.Counts.Completed, cps.Counts.Failed, len(exc))
	if f := cps.Latest.Failed; f != nil {
		t.Logf("job %s: latest failed checkpoint %d: %s", jobID, f.ID, f.FailureMessage)
	} else if cps.Counts.Failed > 0 {
		t.Logf("job %s: %d checkpoints failed; the JobManager gives no detail of the latest failed one", jobID, cps.Counts.Failed)
	}
	if cps.Counts.Completed == 0 {
		t.Errorf("job %s delivered its output without a completed checkpoint", jobID)
	}
}
