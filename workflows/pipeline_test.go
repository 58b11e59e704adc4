package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/activities/preflight"
	"github.com/flowproof/flowproof/activities/produce"
	"github.com/flowproof/flowproof/activities/results"
	"github.com/flowproof/flowproof/activities/runmetrics"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/activities/wiring"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/health"
)

// These are unit tests of workflow logic: activities are replaced by the
// test suite's mocks, which record the order of calls. The real activities
// are tested against the real stack in package activities and end to end in
// the e2e tests.

// fakeStack is the in-memory behaviour the mocked activities share.
type fakeStack struct {
	mu         sync.Mutex
	calls      []string
	produced   int64
	delivered  int64
	tokens     int
	lagSamples []int64 // returned in order by PollLag; the last one repeats
	polls      int
	rejectOnce bool
	// plans counts PlanSegment calls; segmentInputs are DeliverSegment's
	// inputs, in order.
	plans         int
	segmentInputs []deliver.SegmentInput
	cleanups      []kafkaadmin.CleanupInput
	// healthErr fails the health check; missing makes verification find
	// that many messages missing.
	healthErr error
	missing   int64
	// latency and flowMillis are what verification measures; retries are
	// the HTTP retries of each delivery segment.
	latency    verify.Percentiles
	flowMillis int64
	retries    int
	// deliverFailAt fails the deliverFailAt-th DeliverSegment and every
	// one after it (0: never) with deliverErr.
	deliverFailAt, segmentCalls int
	deliverErr                  error
	// flinkChecks counts CheckFlinkJobs calls; from the flinkFailAt-th on
	// (0: never) the enrich job is reported FAILED.
	flinkChecks, flinkFailAt int
	// runMetrics are RecordRunMetrics' inputs; runMetricsErr fails it.
	runMetrics    []runmetrics.Run
	runMetricsErr error
	// stored are StoreRunResult's inputs; storeErr fails it.
	stored   []results.StoreInput
	storeErr error
	// notices are NotifyRunFailed's inputs; noticeErr fails it.
	notices   []notify.Failure
	noticeErr error
	// checkpoints are CheckpointFlinkJob's inputs; checkpointErr fails it.
	// verifyTakes is how long Verify takes on the test's clock.
	checkpoints   []flink.CheckpointInput
	checkpointErr error
	verifyTakes   time.Duration
	// health and prepare are the inputs of the last CheckHealth and
	// PrepareTopics.
	health  preflight.CheckHealthInput
	prepare kafkaadmin.PrepareTopicsInput
}

func (f *fakeStack) record(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 || f.calls[len(f.calls)-1] != name {
		f.calls = append(f.calls, name)
	}
}

func newEnv(t *testing.T, f *fakeStack) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newBareEnv()

	env.OnActivity(preflightActs.CheckHealth, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in preflight.CheckHealthInput) (preflight.CheckHealthResult, error) {
			f.record("health")
			f.mu.Lock()
			f.health = in
			f.mu.Unlock()
			if f.healthErr != nil {
				return preflight.CheckHealthResult{}, f.healthErr
			}
			return preflight.CheckHealthResult{Components: []health.Result{{Component: "kafka", Healthy: true, Detail: "3 brokers"}}}, nil
		})
	env.OnActivity(kafkaAdminActs.PrepareTopics, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in kafkaadmin.PrepareTopicsInput) (kafkaadmin.PrepareTopicsResult, error) {
			f.record("prepare")
			f.mu.Lock()
			f.prepare = in
			f.mu.Unlock()
			return kafkaadmin.PrepareTopicsResult{Created: in.Names.Topics(), Brokers: 3}, nil
		})
	env.OnActivity(flinkActs.SubmitFlinkJobs, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ flink.SubmitInput) (activities.FlinkJobs, error) {
			f.record("flink")
			return activities.FlinkJobs{EnrichJobName: "enrich", EnrichJobID: "enrich-1", SplitJobName: "split", SplitJobID: "split-1"}, nil
		})
	env.OnActivity(flinkActs.CheckFlinkJobs, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in flink.CheckInput) (flink.CheckResult, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.flinkChecks++
			return fakeFlinkCheck(in, f.flinkFailAt > 0 && f.flinkChecks >= f.flinkFailAt), nil
		})
	env.OnActivity(kafkaAdminActs.PollLag, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ kafkaadmin.PollLagInput) (kafkaadmin.LagSample, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			lag := int64(0)
			if len(f.lagSamples) > 0 {
				lag = f.lagSamples[min(f.polls, len(f.lagSamples)-1)]
			}
			f.polls++
			return kafkaadmin.LagSample{Deliver: lag}, nil
		})
	env.OnActivity(produceActs.ProduceChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in produce.ChunkInput) (produce.ChunkResult, error) {
			f.record("produce")
			f.mu.Lock()
			f.produced += int64(in.Count)
			f.mu.Unlock()
			return produce.ChunkResult{Produced: in.Count, DurationMillis: 100}, nil
		})
	env.OnActivity(deliverActs.ObtainToken, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ deliver.ObtainTokenInput) (deliver.SealedToken, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.tokens++
			return deliver.SealedToken{Sealed: []byte("ciphertext"), ExpiresAtUnix: time.Now().Add(time.Hour).Unix(), Quota: 10_000}, nil
		})
	env.OnActivity(deliverActs.PlanSegment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in deliver.PlanSegmentInput) (deliver.SegmentPlan, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.plans++
			// Partition 0 holds every message, one offset each.
			return deliver.SegmentPlan{Ends: map[int32]int64{0: in.Offsets[0] + int64(in.MaxMessages)}, Records: in.MaxMessages}, nil
		})
	env.OnActivity(deliverActs.DeliverSegment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in deliver.SegmentInput) (deliver.SegmentResult, error) {
			f.record("deliver")
			f.mu.Lock()
			defer f.mu.Unlock()
			f.segmentInputs = append(f.segmentInputs, in)
			if f.segmentCalls++; f.deliverFailAt > 0 && f.segmentCalls >= f.deliverFailAt {
				return deliver.SegmentResult{}, f.deliverErr
			}
			n := in.MaxMessages
			rejected := false
			if f.rejectOnce && f.delivered > 0 {
				f.rejectOnce, rejected, n = false, true, n/2
			}
			f.delivered += int64(n)
			res := deliver.SegmentResult{
				Offsets: map[int32]int64{0: f.delivered}, Delivered: n, Batches: n / in.BatchSize, Retries: f.retries,
				TokenRejected: rejected, RejectReason: map[bool]string{true: "quota exhausted"}[rejected],
			}
			if rejected && in.Plan != nil {
				res.Rest = &deliver.SegmentPlan{Ends: in.Plan.Ends, Records: in.Plan.Records - n}
			}
			return res, nil
		})
	env.OnActivity(flinkActs.CheckpointFlinkJob, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in flink.CheckpointInput) (flink.CheckpointResult, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.checkpoints = append(f.checkpoints, in)
			return flink.CheckpointResult{CheckpointID: 7}, f.checkpointErr
		})
	env.OnActivity(verifyActs.Verify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in verify.Input) (verify.Result, error) {
			f.record("verify")
			arrived := in.Messages - f.missing
			return verify.Result{
				Expected: in.Messages, Records: arrived, Unique: arrived, Missing: f.missing,
				Latency: f.latency, FlowMillis: f.flowMillis,
			}, nil
		}).After(f.verifyTakes)
	env.OnActivity(kafkaAdminActs.Cleanup, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in kafkaadmin.CleanupInput) error {
			f.record("cleanup")
			f.mu.Lock()
			defer f.mu.Unlock()
			f.cleanups = append(f.cleanups, in)
			return nil
		})
	env.OnActivity(runMetricsActs.RecordRunMetrics, mock.Anything, mock.Anything).Return(
		func(_ context.Context, run runmetrics.Run) error {
			f.record("run-metrics")
			f.mu.Lock()
			defer f.mu.Unlock()
			f.runMetrics = append(f.runMetrics, run)
			return f.runMetricsErr
		})
	env.OnActivity(resultsActs.StoreRunResult, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in results.StoreInput) error {
			f.record("store-result")
			f.mu.Lock()
			defer f.mu.Unlock()
			f.stored = append(f.stored, in)
			return f.storeErr
		})
	env.OnActivity(notifyActs.NotifyRunFailed, mock.Anything, mock.Anything).Return(
		func(_ context.Context, failure notify.Failure) (notify.Result, error) {
			f.record("notify")
			f.mu.Lock()
			defer f.mu.Unlock()
			f.notices = append(f.notices, failure)
			return notify.Result{Sent: f.noticeErr == nil}, f.noticeErr
		})
	return env
}

// newBareEnv is a test environment with flowproof's workflows and
// activities registered and no activity behaviour yet; it logs warnings only.
func newBareEnv() *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	RegisterWorkflows(env)
	RegisterActivities(env, &wiring.Activities{})
	return env
}

// While Verify reads, the split job is asked for a checkpoint a second
// after the one before, for at most one checkpoint interval (5 s by
// default); a failed checkpoint ends the asking, and the run goes on.
func TestVerifyStageCheckpointsTheSplitJob(t *testing.T) {
	split := flink.CheckpointInput{JobName: "split", JobID: "split-1"}
	cases := []struct {
		name        string
		verifyTakes time.Duration
		fails       bool
		want        int
	}{
		{"verify takes 2.5 s", 2500 * time.Millisecond, false, 3},
		{"verify outlasts the interval", time.Minute, false, 5},
		{"the first checkpoint fails", time.Minute, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeStack{verifyTakes: c.verifyTakes}
			if c.fails {
				f.checkpointErr = temporal.NewNonRetryableApplicationError("JobManager unreachable", "test", nil)
			}
			env := newEnv(t, f)
			runToSuccess(t, env, smallRun())
			require.Equal(t, slices.Repeat([]flink.CheckpointInput{split}, c.want), f.checkpoints)
		})
	}
}

// runToSuccess runs the pipeline with in and requires it to end Succeeded.
func runToSuccess(t *testing.T, env *testsuite.TestWorkflowEnvironment, in PipelineInput) PipelineResult {
	t.Helper()
	env.ExecuteWorkflow(PipelineWorkflow, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res PipelineResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, StatusSucceeded, res.Status)
	return res
}

func smallRun() PipelineInput {
	return PipelineInput{RunID: "unit", Messages: 50_000, ChunkSize: 10_000, TokenRenewEvery: 10_000, BatchSize: 100}
}

func TestPipelineRunsStagesInOrder(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	res := runToSuccess(t, env, smallRun())
	require.Equal(t, int64(50_000), res.Metrics.Produced)
	require.Equal(t, int64(50_000), res.Metrics.Delivered)
	require.Equal(t, int64(50_000), res.Metrics.Verified)
	require.Equal(t, 5, res.Metrics.TokenRenewals)
	require.Equal(t, "enrich-1", res.Metrics.FlinkJobs.EnrichJobID)

	// Produce and deliver interleave; what matters is what comes before and after.
	order := strings.Join(f.calls, ",")
	require.True(t, strings.HasPrefix(order, "health,prepare,flink,"), order)
	require.True(t, strings.HasSuffix(order, ",verify,cleanup,run-metrics,store-result"), order)
	require.Len(t, f.cleanups, 1)
	require.False(t, f.cleanups[0].KeepTopics)
	require.Equal(t, "flowproof.unit.raw", f.cleanups[0].Names.RawTopic)
}

// The run's cluster settings reach the health check (which wants as many
// brokers as replicas) and every topic the run creates.
func TestPipelineHandsItsClusterSettingsToHealthAndPrepare(t *testing.T) {
	for _, c := range []struct {
		name   string
		in     PipelineInput
		health preflight.CheckHealthInput
		rf     int
		minISR int
	}{
		{"defaults", smallRun(), preflight.CheckHealthInput{WantBrokers: 3, WantTaskManagers: 1, ReplicationFactor: 3}, 3, 2},
		{"one broker", func() PipelineInput {
			in := smallRun()
			in.ReplicationFactor, in.TopicConfigs = 1, map[string]string{"retention.ms": "3600000"}
			return in
		}(), preflight.CheckHealthInput{WantBrokers: 1, WantTaskManagers: 1, ReplicationFactor: 1}, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeStack{}
			env := newEnv(t, f)
			env.ExecuteWorkflow(PipelineWorkflow, c.in)
			require.NoError(t, env.GetWorkflowError())
			require.Equal(t, c.health, f.health)
			require.Equal(t, c.rf, f.prepare.ReplicationFactor)
			require.Equal(t, c.minISR, f.prepare.MinInsyncReplicas)
			require.Equal(t, c.in.TopicConfigs, f.prepare.TopicConfigs)
		})
	}
}

func TestPipelineEmptyInputGetsDefaults(t *testing.T) {
	in, err := PipelineInput{}.withDefaults("nightly:2026-11-27")
	require.NoError(t, err)
	require.Equal(t, int64(1_000_000), in.Messages)
	require.Equal(t, 1_000, in.LogicalQueues)
	require.Equal(t, 100, in.Partitions)
	require.Equal(t, 10_000, in.ChunkSize)
	require.Equal(t, 100, in.BatchSize)
	require.Equal(t, 10_000, in.TokenRenewEvery)
	require.Equal(t, int64(75_000), in.LagResume)
	require.Equal(t, 5.0, in.LagThresholdSeconds)
	require.Equal(t, 2.5, in.LagResumeSeconds)
	require.Equal(t, sanitizeRunID("nightly:2026-11-27"), in.RunID)
	require.Equal(t, "flowproof."+in.RunID+".final", in.runNames().FinalTopic)
	require.Equal(t, float64(50_000), in.productionRate())
}

func TestPipelineRejectsInvalidInput(t *testing.T) {
	cases := map[string]struct {
		in    PipelineInput
		json  string
		field string
	}{
		"misspelt field":         {json: `{"mesages": 5000}`, field: `unknown field "mesages"`},
		"negative messages":      {PipelineInput{Messages: -5}, "", "messages"},
		"batch over max":         {PipelineInput{BatchSize: 5000}, "", "batch_size"},
		"renew below batch":      {PipelineInput{BatchSize: 500, TokenRenewEvery: 100}, "", "token_renew_every"},
		"resume above threshold": {PipelineInput{LagThreshold: 10, LagResume: 20}, "", "lag_resume"},
		"resume seconds above":   {PipelineInput{LagThresholdSeconds: 2, LagResumeSeconds: 3}, "", "lag_resume_seconds"},
		"negative seconds":       {PipelineInput{LagThresholdSeconds: -1}, "", "lag_threshold_seconds"},
		"seconds beyond a day":   {PipelineInput{LagThresholdSeconds: 100_000}, "", "lag_threshold_seconds"},
		"hostile topic":          {PipelineInput{Topics: TopicNames{Raw: "x', 'properties.bootstrap.servers'='evil"}}, "", "topics.raw"},
		"same topic twice":       {PipelineInput{Topics: TopicNames{Raw: "a", Final: "a"}}, "", "topics."},
		"too few brokers":        {PipelineInput{Brokers: 1}, "", "brokers"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := &fakeStack{}
			env := newEnv(t, f)
			if tc.json != "" {
				// By type name with raw JSON, as the UI and the temporal CLI send it.
				env.ExecuteWorkflow("PipelineWorkflow", json.RawMessage(tc.json))
			} else {
				env.ExecuteWorkflow(PipelineWorkflow, tc.in)
			}
			err := env.GetWorkflowError()
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), err)
			require.True(t, appErr.NonRetryable())
			require.Equal(t, errtype.InvalidInput, appErr.Type())
			require.Contains(t, appErr.Error(), tc.field)
			require.Empty(t, f.calls, "no activity may run for invalid input")
		})
	}
}

func TestBackpressureHoldsAndReleasesProduction(t *testing.T) {
	// Lag starts above the threshold, so production must wait for two
	// polls (5 s apart) before the first chunk, then runs freely.
	f := &fakeStack{lagSamples: []int64{500, 400, 10}}
	env := newEnv(t, f)
	env.ExecuteWorkflow(ProduceWorkflow, ProduceInput{
		Names: PipelineInput{RunID: "bp"}.runNames(), Messages: 30_000, ChunkSize: 10_000, ChunkConcurrency: 1,
		LogicalQueues: 10, PayloadBytes: 10, RatePerSecond: 1000, LagThreshold: 100, LagResume: 50, LagPollEvery: 5,
	})
	require.NoError(t, env.GetWorkflowError())
	var res ProduceResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, int64(30_000), res.Produced)
	require.Equal(t, 1, res.Holds)
	require.GreaterOrEqual(t, res.HeldMillis, int64(10_000))
	require.Equal(t, int64(500), res.MaxLag)
	require.GreaterOrEqual(t, len(res.LagSamples), 3)
}

func TestTokenRenewedPerSegmentAndOn401(t *testing.T) {
	f := &fakeStack{rejectOnce: true}
	env := newEnv(t, f)
	env.ExecuteWorkflow(DeliverWorkflow, DeliverInput{
		Names: PipelineInput{RunID: "tok"}.runNames(), Messages: 30_000, BatchSize: 100, TokenRenewEvery: 10_000, StallSeconds: 300,
	})
	require.NoError(t, env.GetWorkflowError())
	var res DeliverResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, int64(30_000), res.Delivered)
	require.Equal(t, 1, res.TokenRejected)
	// 30,000 messages need 3 tokens; the 401 half way through the second
	// segment leaves 5,000 for a fourth.
	require.Equal(t, 4, res.TokenRenewals)
	require.Equal(t, 4, f.tokens)
	require.Empty(t, res.Token.Sealed, "the result hands no token to the parent")
}

func TestDeliverContinuesAsNewWithItsState(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	env.ExecuteWorkflow(DeliverWorkflow, DeliverInput{
		Names: PipelineInput{RunID: "can"}.runNames(), Messages: 30_000, BatchSize: 100, TokenRenewEvery: 10_000, StallSeconds: 300,
		SegmentsPerRun: 2,
	})
	next := deliverContinuedAs(t, env)
	require.Equal(t, int64(20_000), next.State.Delivered)
	require.Equal(t, 2, next.State.Segments)
	require.Equal(t, 2, next.State.TokenRenewals)
	require.Equal(t, 1, next.State.Runs)
	require.Equal(t, map[int32]int64{0: 20_000}, next.State.Offsets)
	require.NotEmpty(t, next.State.Token.Sealed, "the next run goes on with the current token")
}

func TestProduceContinuesAsNew(t *testing.T) {
	f := &fakeStack{}
	env := newEnv(t, f)
	env.ExecuteWorkflow(ProduceWorkflow, ProduceInput{
		Names: PipelineInput{RunID: "can"}.runNames(), Messages: 50_000, ChunkSize: 10_000, ChunkConcurrency: 2,
		LogicalQueues: 10, PayloadBytes: 10, RatePerSecond: 1000, LagThreshold: 100, LagResume: 50, LagPollEvery: 5,
		ChunksPerRun: 2,
	})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "want continue-as-new, got %v", err)
	require.Equal(t, int64(20_000), f.produced, "the first run produces its two chunks before continuing")
}

func TestDeliverFailsWhenStalled(t *testing.T) {
	env := newBareEnv()
	env.OnActivity(deliverActs.ObtainToken, mock.Anything, mock.Anything).Return(
		deliver.SealedToken{Sealed: []byte("x"), ExpiresAtUnix: time.Now().Add(24 * time.Hour).Unix()}, nil)
	env.OnActivity(deliverActs.PlanSegment, mock.Anything, mock.Anything).Return(deliver.SegmentPlan{}, nil)
	env.ExecuteWorkflow(DeliverWorkflow, DeliverInput{
		Names: PipelineInput{RunID: "stall"}.runNames(), Messages: 1_000, BatchSize: 100, TokenRenewEvery: 1_000, StallSeconds: 1,
	})
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "delivery stalled")
}

func TestCancellationCleansUp(t *testing.T) {
	f := &fakeStack{lagSamples: []int64{1_000_000}} // held forever
	env := newEnv(t, f)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	in := smallRun()
	in.KeepTopics = true
	env.ExecuteWorkflow(PipelineWorkflow, in)
	require.True(t, env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.True(t, errors.As(env.GetWorkflowError(), &canceled), "want cancellation, got %v", env.GetWorkflowError())
	require.Len(t, f.cleanups, 1)
	require.Equal(t, "enrich-1", f.cleanups[0].Jobs.EnrichJobID)
	require.True(t, f.cleanups[0].KeepTopics)
}

// deliverContinuedAs is the input a DeliverWorkflow that continued as new
// handed its next run.
func deliverContinuedAs(t *testing.T, env *testsuite.TestWorkflowEnvironment) DeliverInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next DeliverInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	return next
}

// TestProduceRunsChunksInLanes holds chunk 0 back while the others return
// at once: chunk 4, in chunk 0's lane (two lanes per chunk in flight), must
// still wait for chunk 0, and every chunk must name its lane's
// transactional id.
func TestProduceRunsChunksInLanes(t *testing.T) {
	env := newBareEnv()
	env.OnActivity(kafkaAdminActs.PollLag, mock.Anything, mock.Anything).Return(kafkaadmin.LagSample{}, nil)
	var (
		mu     sync.Mutex
		events []string
		ids    = map[int]string{}
	)
	note := func(event string, chunk int) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, fmt.Sprintf("%s %d", event, chunk))
	}
	env.OnActivity(produceActs.ProduceChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in produce.ChunkInput) (produce.ChunkResult, error) {
			note("start", in.Chunk)
			mu.Lock()
			ids[in.Chunk] = in.TransactionalID
			mu.Unlock()
			if in.Chunk == 0 {
				time.Sleep(300 * time.Millisecond)
			}
			note("end", in.Chunk)
			return produce.ChunkResult{Produced: in.Count, DurationMillis: 100}, nil
		})
	names := PipelineInput{RunID: "lanes"}.runNames()
	const chunks, concurrency, lanes = 10, 2, 4
	env.ExecuteWorkflow(ProduceWorkflow, ProduceInput{
		Names: names, Messages: chunks * 10_000, ChunkSize: 10_000, ChunkConcurrency: concurrency,
		LogicalQueues: 10, PayloadBytes: 10, RatePerSecond: 100_000, LagThreshold: 100, LagResume: 50, LagPollEvery: 5,
	})
	require.NoError(t, env.GetWorkflowError())
	for chunk := range chunks {
		require.Equal(t, produce.LaneTransactionalID(names, chunk%lanes), ids[chunk], "chunk %d", chunk)
		if chunk >= lanes {
			require.Less(t, slices.Index(events, fmt.Sprintf("end %d", chunk-lanes)), slices.Index(events, fmt.Sprintf("start %d", chunk)),
				"chunk %d started before its lane's previous chunk ended: %v", chunk, events)
		}
	}
	require.Less(t, slices.Index(events, "start 3"), slices.Index(events, "end 0"),
		"chunks of other lanes did not go on while chunk 0 was held: %v", events)
}
