package workflows

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/produce"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/errtype"
)

// derivedInputChecks judges every child and activity input that a run of
// in (defaults applied) hands out, each by the validation of the child or
// activity that receives it, plus the run's own timing rules. The inputs
// are built as PipelineWorkflow, ProduceWorkflow and DeliverWorkflow
// build them.
func derivedInputChecks(in PipelineInput) map[string]error {
	names := in.runNames()
	prod := in.produceInput("parent", names)
	del := DeliverInput{
		ParentWorkflowID: "parent", Names: names, Messages: in.Messages, BatchSize: in.BatchSize,
		TokenRenewEvery: in.TokenRenewEvery, StallSeconds: max(300, 3*in.VerifyIdleSeconds),
	}
	submit := flink.SubmitInput{Names: names, Parallelism: in.FlinkParallelism, CheckpointIntervalMillis: int64(in.CheckpointIntervalSeconds) * 1000}
	enrichJob, splitJob := flink.JobSettings(submit, flink.Kafka{Brokers: []string{"127.0.0.1:19092"}})
	jobs := activities.FlinkJobsOf(names)
	jobs.EnrichJobID, jobs.SplitJobID = strings.Repeat("a", 32), strings.Repeat("b", 32)

	chunks := (in.Messages + int64(in.ChunkSize) - 1) / int64(in.ChunkSize)
	chunk := func(c int64) produce.ChunkInput {
		first := c * int64(in.ChunkSize)
		return produce.ChunkInput{
			Names: names, Chunk: int(c), FirstSeq: first, Count: int(min(int64(in.ChunkSize), in.Messages-first)),
			LogicalQueues: in.LogicalQueues, PayloadBytes: in.PayloadBytes, RatePerSecond: prod.chunkRate(first),
		}
	}
	segment := deliver.SegmentInput{
		Names: names, MaxMessages: int(min(int64(in.TokenRenewEvery), in.Messages)), BatchSize: in.BatchSize,
		Token: deliver.SealedToken{Sealed: []byte("sealed")}, IdleTimeoutMillis: segmentIdle.Milliseconds(),
	}
	prepare := kafkaadmin.PrepareTopicsInput{Names: names, Partitions: in.Partitions, DerivedPartitions: in.DerivedPartitions,
		ReplicationFactor: in.ReplicationFactor, MinInsyncReplicas: in.MinInsyncReplicas, TopicConfigs: in.TopicConfigs}
	return map[string]error{
		"ProduceWorkflow":     prod.validate(),
		"DeliverWorkflow":     del.validate(),
		"PrepareTopics":       kafkaadmin.ValidatePrepareTopicsInput(prepare),
		"SubmitFlinkJobs":     flink.ValidateSubmitInput(submit),
		"enrich job":          enrichJob.Validate(),
		"split job":           splitJob.Validate(),
		"CheckFlinkJobs":      flink.ValidateCheckInput(flink.CheckInput{Jobs: jobs, MaxRestarts: in.MaxFlinkRestarts}),
		"first ProduceChunk":  produce.ValidateChunkInput(chunk(0)), // within the warmup, if the run has one
		"last ProduceChunk":   produce.ValidateChunkInput(chunk(chunks - 1)),
		"DeliverSegment":      deliver.ValidateSegmentInput(segment),
		"Verify":              verify.ValidateInput(verify.Input{Names: names, Messages: in.Messages, IdleTimeoutMillis: int64(in.VerifyIdleSeconds) * 1000}),
		"verify in time":      failIf(time.Duration(in.VerifyIdleSeconds)*time.Second > verifyTimeout/2, "the idle wait takes more than half of Verify's timeout"),
		"production in time":  failIf(float64(in.Messages)/in.productionRate() >= float64(in.TimeoutSeconds), "production at the rate cap outlasts the deadline"),
		"backpressure resume": failIf(holdProduction(true, int64(in.Partitions), in.LagThreshold, in.LagResume), "a consumed topic's marker lag holds production for good"),
	}
}

func failIf(failed bool, why string) error {
	if failed {
		return errors.New(why)
	}
	return nil
}

// TestValidatedInputsPassEveryChildAndActivityCheck walks the input space
// with a seeded random walk: whenever Validate accepts an input, each
// input derived from it passes the validation of its child or activity,
// so an accepted input cannot fail later for a reason of the input.
func TestValidatedInputsPassEveryChildAndActivityCheck(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 2026))
	const walks = 100_000
	accepted := 0
	refusedBy := map[string]int{}
	for i := range walks {
		raw, workflowID := randomInput(r)
		in := raw.WithDefaults(workflowID)
		if err := in.Validate(); err != nil {
			refusedBy[refusedField(t, err)]++
			continue
		}
		accepted++
		for what, err := range derivedInputChecks(in) {
			if err != nil {
				t.Fatalf("walk %d: Validate accepted %+v (workflow id %q), but %s refuses what the run derives from it: %v",
					i, raw, workflowID, what, err)
			}
		}
	}
	t.Logf("%d of %d inputs accepted; refused by field: %v", accepted, walks, refusedBy)
	if accepted < walks/50 {
		t.Errorf("only %d of %d inputs accepted: the walk says little about valid inputs", accepted, walks)
	}
	for _, field := range []string{"chunk_size", "timeout_seconds", "lag_resume", "run_id", "messages", "verify_idle_seconds",
		"replication_factor", "min_insync_replicas", "brokers", "topic_configs"} {
		if refusedBy[field] == 0 {
			t.Errorf("no input was refused for %s: the walk does not reach that check", field)
		}
	}
}

// refusedField is the JSON field a validation error names first.
func refusedField(t *testing.T, err error) string {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
		t.Fatalf("Validate: %v, want a non-retryable %s", err, errtype.InvalidInput)
	}
	field, _, _ := strings.Cut(strings.TrimPrefix(appErr.Message(), "invalid input: "), " ")
	return field
}

// randomInput draws an input whose fields are each left to their default,
// set inside their range, set near or beyond its edges, or negative; and
// a workflow id (the default run id) that may be long.
func randomInput(r *rand.Rand) (PipelineInput, string) {
	// draw returns 0 (the default) half the time, else mostly a
	// log-uniform value from 1 to limit, sometimes one up to ten times
	// beyond it, now and then a negative one.
	draw := func(limit float64) float64 {
		switch x := r.Float64(); {
		case x < 0.5:
			return 0
		case x < 0.52:
			return -math.Ceil(r.Float64() * limit)
		case x < 0.92:
			return math.Exp(r.Float64() * math.Log(limit))
		default:
			return limit * math.Exp(r.Float64()*math.Log(10))
		}
	}
	whole := func(limit float64) int { return int(math.Round(draw(limit))) }
	in := PipelineInput{
		Messages: int64(math.Round(draw(1e8))), LogicalQueues: whole(1e4), Partitions: whole(1e3), DerivedPartitions: whole(1e3),
		PayloadBytes: whole(1e5), ChunkSize: whole(1e6), ChunkConcurrency: whole(32),
		RatePerSecond: draw(1e6), RatePerQueue: draw(1e4), BatchSize: whole(1e3), TokenRenewEvery: whole(1e5),
		LagThreshold: int64(whole(1e6)), LagResume: int64(whole(1e6)), LagPollEverySeconds: whole(300),
		LagThresholdSeconds: draw(86_400), LagResumeSeconds: draw(86_400),
		FlinkParallelism: whole(64), CheckpointIntervalSeconds: whole(600), Brokers: whole(5), TaskManagers: whole(4),
		VerifyIdleSeconds: whole(3_600), TimeoutSeconds: whole(1e6), FlinkWatchSeconds: whole(300), MaxFlinkRestarts: whole(1_000),
	}
	// Most runs keep the cluster settings' defaults; drawn as often as
	// the others, they would leave too few inputs accepted.
	if r.IntN(4) == 0 {
		in.ReplicationFactor, in.MinInsyncReplicas = whole(5), whole(5)
	}
	if r.IntN(4) == 0 {
		in.WarmupMessages, in.WarmupRatePerSecond = int64(whole(1e6)), draw(1e6)
	}
	if r.IntN(4) == 0 {
		in.RunID = randomName(r, 1+r.IntN(220))
	}
	if r.IntN(20) == 0 {
		in.Topics.Raw = randomName(r, 1+r.IntN(260))
	}
	if r.IntN(10) == 0 {
		in.TopicConfigs = map[string]string{"retention.ms": "86400000"}
		if r.IntN(3) == 0 {
			in.TopicConfigs[[]string{"min.insync.replicas", "message.timestamp.type", "Bad Name"}[r.IntN(3)]] = "1"
		}
	}
	return in, "wf-" + randomName(r, r.IntN(220))
}

func randomName(r *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789._-"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// TestCrossFieldChecksNameTheField shows each cross-field check refusing an
// input whose fields are each in range.
func TestCrossFieldChecksNameTheField(t *testing.T) {
	cases := []struct {
		name  string
		in    PipelineInput
		field string
		want  string
	}{
		{"more messages than a verification checks", PipelineInput{Messages: verify.MaxMessages + 1}, "messages", "the most one verification checks"},
		{"a chunk outlasts its transaction", PipelineInput{ChunkSize: 100_000, RatePerSecond: 100, TimeoutSeconds: 604_800}, "chunk_size", "longer than a Kafka transaction may stay open"},
		{"a rate per queue too low for the chunk", PipelineInput{RatePerQueue: 0.01, LogicalQueues: 10, ChunkSize: 1_000, Messages: 1_000}, "chunk_size", "the rate cap 0.1 over"},
		{"production outlasts the deadline", PipelineInput{Messages: 1_000_000, RatePerSecond: 1_000, TimeoutSeconds: 600}, "timeout_seconds", "production alone takes 1000s"},
		{"the warmup's slower rate counts toward the deadline", PipelineInput{Messages: 5_000_000, WarmupMessages: 1_200_000, TimeoutSeconds: 150}, "timeout_seconds", "production alone takes 176s"},
		{"a verify idle time beyond Verify's own limit", PipelineInput{VerifyIdleSeconds: 3_600}, "verify_idle_seconds", "between 1 and 600"},
		{"a resume mark below the partitions' marker lag", PipelineInput{Partitions: 100, LagThreshold: 50, LagResume: 20}, "lag_resume", "at least partitions (100)"},
		{"a run id too long for a Flink job's transactional id", PipelineInput{RunID: strings.Repeat("r", 180)}, "run_id", "must be 1 to 179 characters"},
		{"a batch larger than a token's quota", PipelineInput{BatchSize: 500, TokenRenewEvery: 100}, "token_renew_every", "at least batch_size"},
		{"a warmup chunk outlasts its transaction", PipelineInput{WarmupRatePerSecond: 10}, "warmup_rate_per_second", "a chunk of the warmup takes 2000s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.in.WithDefaults("wf").Validate()
			if err == nil {
				t.Fatalf("%+v accepted, want it refused for %s", c.in, c.field)
			}
			if got := refusedField(t, err); got != c.field || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q: want it to name %s and say %q", err, c.field, c.want)
			}
		})
	}
	// Right at the limits, the same fields pass.
	for _, in := range []PipelineInput{
		{RunID: strings.Repeat("r", 179)},
		{Messages: verify.MaxMessages, TimeoutSeconds: 604_800},
		{ChunkSize: 45_000, RatePerSecond: 100, ChunkConcurrency: 1, Messages: 45_000},
		{Partitions: 100, LagThreshold: 100, LagResume: 100},
		{VerifyIdleSeconds: 600},
	} {
		if err := in.WithDefaults("wf").Validate(); err != nil {
			t.Errorf("%+v: %v, want it accepted", in, err)
		}
	}
}

// TestChildWorkflowsRefuseInvalidInput starts each child on its own with
// an input its parent would never derive.
func TestChildWorkflowsRefuseInvalidInput(t *testing.T) {
	names := PipelineInput{RunID: "child"}.runNames()
	cases := []struct {
		name     string
		workflow any
		in       any
		want     string
	}{
		{"produce at rate 0", ProduceWorkflow, ProduceInput{Names: names, Messages: 10, ChunkSize: 10, ChunkConcurrency: 1,
			LogicalQueues: 1, LagThreshold: 10, LagResume: 5, LagPollEvery: 1}, "ProduceWorkflow: rate_per_second 0"},
		{"produce without names", ProduceWorkflow, ProduceInput{Messages: 10}, "ProduceWorkflow: names"},
		{"produce resuming above its threshold in seconds", ProduceWorkflow, ProduceInput{Names: names, Messages: 10, ChunkSize: 10, ChunkConcurrency: 1,
			LogicalQueues: 1, RatePerSecond: 10, LagThreshold: 10, LagResume: 5, LagPollEvery: 1, LagThresholdSeconds: 5, LagResumeSeconds: 6},
			"ProduceWorkflow: lag_resume_seconds 6"},
		{"produce with a negative threshold in seconds", ProduceWorkflow, ProduceInput{Names: names, Messages: 10, ChunkSize: 10, ChunkConcurrency: 1,
			LogicalQueues: 1, RatePerSecond: 10, LagThreshold: 10, LagResume: 5, LagPollEvery: 1, LagThresholdSeconds: -1},
			"ProduceWorkflow: lag_threshold_seconds -1"},
		{"deliver with no batch size", DeliverWorkflow, DeliverInput{Names: names, Messages: 10, TokenRenewEvery: 10, StallSeconds: 60},
			"DeliverWorkflow: batch_size 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeStack{}
			env := newEnv(t, f)
			env.ExecuteWorkflow(c.workflow, c.in)
			err := env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
				t.Fatalf("error %v: want a non-retryable %s", err, errtype.InvalidInput)
			}
			if !strings.Contains(appErr.Message(), c.want) {
				t.Errorf("message %q: want %q", appErr.Message(), c.want)
			}
			if len(f.calls) != 0 || f.polls != 0 || f.tokens != 0 {
				t.Errorf("activities ran for an invalid input: %v", f.calls)
			}
		})
	}
}

// A workflow id too long for the run's names is shortened (with a hash of
// the whole id, see sanitizeRunID) to a run id that fits every name.
func TestADefaultRunIDFromALongWorkflowIDFits(t *testing.T) {
	in := PipelineInput{}.WithDefaults(strings.Repeat("w", 195))
	if err := in.Validate(); err != nil {
		t.Fatalf("run id %q derived from a long workflow id is refused: %v", in.RunID, err)
	}
}
