package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/errtype"
)

func samplesEvery(start time.Time, step time.Duration, counts ...int64) []drillapi.Sample {
	out := make([]drillapi.Sample, len(counts))
	for i, c := range counts {
		out[i] = drillapi.Sample{At: start.Add(time.Duration(i) * step), Count: c}
	}
	return out
}

func TestRateBeforeUsesTheLastTenSeconds(t *testing.T) {
	t0 := time.Unix(0, 0)
	// 20 s at 100/s, then 10 s at 1,000/s: the baseline is the recent rate.
	var counts []int64
	for i := 0; i <= 20; i++ {
		counts = append(counts, int64(i*100))
	}
	for i := 1; i <= 10; i++ {
		counts = append(counts, 2000+int64(i*1000))
	}
	require.InDelta(t, 1000, rateBefore(samplesEvery(t0, time.Second, counts...)), 1)
	require.Zero(t, rateBefore(samplesEvery(t0, time.Second, 0, 10)), "two seconds cannot give a baseline")
}

func TestRecoveryIsTheStartOfTheFirstWindowBackAtEightyPercent(t *testing.T) {
	t0 := time.Unix(100, 0)
	// Baseline 1,000/s. The fault at t0 stops the counter for 7 s, then it
	// runs at 900/s.
	counts := []int64{0, 0, 0, 0, 0, 0, 0, 0}
	for i := 1; i <= 10; i++ {
		counts = append(counts, int64(i*900))
	}
	rec := recoveryOf(samplesEvery(t0, time.Second, counts...), t0, 1000, 1_000_000, false)
	require.True(t, rec.Recovered)
	require.Equal(t, 7*time.Second, rec.After)

	// At 700/s it never counts as recovered ...
	slow := []int64{0}
	for i := 1; i <= 10; i++ {
		slow = append(slow, int64(i*700))
	}
	require.False(t, recoveryOf(samplesEvery(t0, time.Second, slow...), t0, 1000, 1_000_000, false).Recovered)
	// ... unless it completes: the stage is done.
	rec = recoveryOf(samplesEvery(t0, time.Second, slow...), t0, 1000, 7000, false)
	require.True(t, rec.Recovered)
	require.Equal(t, 10*time.Second, rec.After)
}

func TestRecoveryCountsFromAnImpactThatComesLater(t *testing.T) {
	t0 := time.Unix(100, 0)
	// The run goes on at 1,000/s for 5 s on what it had (a token's quota),
	// stalls for 60 s, then runs at 1,000/s again.
	counts := []int64{0, 1000, 2000, 3000, 4000, 5000}
	for i := 0; i < 60; i++ {
		counts = append(counts, 5000)
	}
	for i := 1; i <= 10; i++ {
		counts = append(counts, 5000+int64(i*1000))
	}
	rec := recoveryOf(samplesEvery(t0, time.Second, counts...), t0, 1000, 1_000_000, false)
	require.True(t, rec.Recovered)
	// The stall ends at 65 s; the 5 s from 64 s on average 800/s.
	require.Equal(t, 64*time.Second, rec.After, "back when the stall ends, not at once because the first seconds still ran")
}

func TestRecoveryIsNotTheEndOfTheStage(t *testing.T) {
	t0 := time.Unix(100, 0)
	// 1,000/s to the end; the last window is short of it.
	counts := []int64{0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 7500}
	rec := recoveryOf(samplesEvery(t0, time.Second, counts...), t0, 1000, 7500, false)
	require.True(t, rec.Recovered)
	require.Zero(t, rec.After, "the stage ending is no dip")
}

func TestARunThatEndedIncompleteDidNotRecover(t *testing.T) {
	t0 := time.Unix(100, 0)
	// Steady until the run failed (a lost Flink job) short of its total.
	steady := samplesEvery(t0, time.Second, 0, 1000, 2000, 3000, 4000, 5000, 6000)
	require.False(t, recoveryOf(steady, t0, 1000, 1_000_000, true).Recovered)
	require.True(t, recoveryOf(steady, t0, 1000, 1_000_000, false).Recovered, "still running: it never fell")
}

func TestRecoveryIgnoresSamplesBeforeTheFault(t *testing.T) {
	t0 := time.Unix(100, 0)
	samples := samplesEvery(t0.Add(-5*time.Second), time.Second, 0, 1000, 2000, 3000, 4000, 5000, 5000, 5000, 5000, 5000, 5000, 5000)
	require.False(t, recoveryOf(samples, t0, 1000, 1_000_000, false).Recovered, "the fast samples before the fault must not count")
	require.True(t, recoveryOf(samplesEvery(t0, time.Second, 0, 1000, 2000, 3000, 4000, 5000), t0, 1000, 1e6, false).Recovered)
	require.Zero(t, recoveryOf(samplesEvery(t0, time.Second, 0, 1000, 2000, 3000, 4000, 5000), t0, 1000, 1e6, false).After, "a fault nobody noticed recovers at once")
}

func TestDrillInputDefaultsAndChecks(t *testing.T) {
	plan, err := DrillInput{}.plan("drill-1")
	require.NoError(t, err)
	require.Equal(t, DefaultDrill, plan.spec.Name)
	require.Equal(t, int64(DefaultDrillMessages), plan.pipeline.Messages)
	require.Equal(t, "drill-1-run", plan.childID)
	require.Equal(t, "drill-1-run", plan.pipeline.RunID)

	for name, in := range map[string]DrillInput{
		"unknown drill":   {Drill: "kill-everything"},
		"unknown fault":   {Faults: []FaultStep{{Fault: "kill-everything", At: "produced:10%"}}},
		"bad counter":     {Faults: []FaultStep{{Fault: drillapi.KillBroker, At: "verified:10%"}}},
		"bad share":       {Faults: []FaultStep{{Fault: drillapi.KillBroker, At: "produced:100%"}}},
		"no percent sign": {Faults: []FaultStep{{Fault: drillapi.KillBroker, At: "produced:10"}}},
		"negative hold":   {Faults: []FaultStep{{Fault: drillapi.KillBroker, At: "produced:10%", HoldSeconds: -1}}},
		"bad pipeline":    {Pipeline: PipelineInput{BatchSize: 5000}},
	} {
		_, err := in.plan("drill-1")
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr, name)
		require.Equal(t, errtype.InvalidInput, appErr.Type(), name)
	}
}

func TestEveryFaultHasADrill(t *testing.T) {
	for _, fault := range drillapi.Faults {
		spec, ok := DrillNamed(fault)
		require.True(t, ok, fault)
		for _, step := range spec.Faults {
			require.NoError(t, step.validate(), fault)
		}
	}
	require.Len(t, Drills, len(drillapi.Faults))
}

func exactHops(n int64) []verify.HopCount {
	var hops []verify.HopCount
	for _, hop := range []string{"raw", "enriched", "endpoint", "final"} {
		hops = append(hops, verify.HopCount{Hop: hop, Records: n, Unique: n})
	}
	return hops
}

func TestJudgeDrill(t *testing.T) {
	spec, _ := DrillNamed(drillapi.KillJobManager)
	applied := []FaultOutcome{{FaultStep: spec.Faults[0], Reached: true, Recovered: true}}
	ok := PipelineResult{Status: StatusSucceeded, Metrics: Metrics{Hops: exactHops(10)}}

	status, verdict := judgeDrill(spec, 10, ok, nil, applied)
	require.Equal(t, DrillPassed, status, verdict)

	lost := PipelineResult{Status: StatusSucceeded, Metrics: Metrics{Hops: exactHops(10)}}
	lost.Metrics.Hops[2].Unique, lost.Metrics.Hops[2].Missing = 9, 1
	status, verdict = judgeDrill(spec, 10, lost, nil, applied)
	require.Equal(t, DrillFailed, status, "a Succeeded run with a missing message is a false Succeeded")
	require.Contains(t, verdict, "hop endpoint")

	failed := PipelineResult{Status: StatusFailed, Metrics: Metrics{FailureMessage: "job lost"}}
	byDesign := temporal.NewNonRetryableApplicationError("job lost", errtype.FlinkJobFailed, nil)
	status, verdict = judgeDrill(spec, 10, failed, byDesign, applied)
	require.Equal(t, DrillPassed, status, verdict)
	require.Contains(t, verdict, "by design (FlinkJobFailed): job lost")

	broker, _ := DrillNamed(drillapi.KillBroker)
	status, _ = judgeDrill(broker, 10, failed, byDesign, applied)
	require.Equal(t, DrillFailed, status, "a broker kill is to be survived")

	notReached := []FaultOutcome{{FaultStep: spec.Faults[0]}}
	status, verdict = judgeDrill(spec, 10, ok, nil, notReached)
	require.Equal(t, DrillFailed, status)
	require.Contains(t, verdict, "never injected")

	slowStop := []FaultOutcome{{FaultStep: spec.Faults[0], Reached: true, Problems: []string{"exited after 95 s"}}}
	status, _ = judgeDrill(spec, 10, ok, nil, slowStop)
	require.Equal(t, DrillFailed, status)
}

// drillActivities stand in for the drill worker's activities: the
// workflow's logic is under test here, the faults in deploy/local/drills.
type drillActivities struct {
	t0 time.Time
}

func (a drillActivities) AwaitProgress(context.Context, drillapi.ProgressRequest) (drillapi.ProgressSamples, error) {
	return drillapi.ProgressSamples{Samples: samplesEvery(a.t0.Add(-10*time.Second), time.Second, 0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000)}, nil
}

func (a drillActivities) SampleProgress(_ context.Context, req drillapi.ProgressRequest) (drillapi.ProgressSamples, error) {
	return drillapi.ProgressSamples{Samples: samplesEvery(a.t0, time.Second, 0, 0, 0, 0, 1000, 2000, 3000, 4000, 5000, 6000, req.Total)}, nil
}

func (a drillActivities) ApplyFault(_ context.Context, req drillapi.FaultRequest) (drillapi.FaultReport, error) {
	return drillapi.FaultReport{Fault: req.Fault, Target: "kafka-2", InjectedAt: a.t0, LiftedAt: a.t0.Add(20 * time.Second)}, nil
}

func newDrillEnv(t *testing.T, t0 time.Time) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(DrillWorkflow)
	env.RegisterWorkflow(PipelineWorkflow)
	acts := drillActivities{t0: t0}
	for name, fn := range map[string]any{
		drillapi.AwaitProgress: acts.AwaitProgress, drillapi.SampleProgress: acts.SampleProgress, drillapi.ApplyFault: acts.ApplyFault,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env
}

func TestDrillWorkflowPassesARunThatSurvives(t *testing.T) {
	t0 := time.Unix(1_000, 0)
	env := newDrillEnv(t, t0)
	env.OnWorkflow(PipelineWorkflow, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in PipelineInput) (PipelineResult, error) {
		require.Equal(t, int64(DefaultDrillMessages), in.Messages)
		return PipelineResult{Status: StatusSucceeded, Metrics: Metrics{Hops: exactHops(in.Messages)}}, nil
	})
	env.ExecuteWorkflow(DrillWorkflow, DrillInput{})
	require.NoError(t, env.GetWorkflowError())
	var res DrillResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, DrillPassed, res.Status, res.Metrics.Verdict)
	require.Len(t, res.Metrics.Faults, 1)
	f := res.Metrics.Faults[0]
	require.Equal(t, "kafka-2", f.Target)
	require.InDelta(t, 1000, f.BaselinePerSecond, 1)
	require.True(t, f.Recovered)
	require.Equal(t, 2.0, f.RecoverySeconds, "stopped for 4 s: the 5 s from 2 s on average 800/s, 80% of the baseline")
}

func TestDrillWorkflowFailsWithItsResultOnAFalseSucceeded(t *testing.T) {
	env := newDrillEnv(t, time.Unix(1_000, 0))
	env.OnWorkflow(PipelineWorkflow, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in PipelineInput) (PipelineResult, error) {
		hops := exactHops(in.Messages)
		hops[3].Duplicated = 1
		return PipelineResult{Status: StatusSucceeded, Metrics: Metrics{Hops: hops}}, nil
	})
	env.ExecuteWorkflow(DrillWorkflow, DrillInput{Drill: drillapi.KillWorker})
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, errtype.DrillFailed, appErr.Type())
	var res DrillResult
	require.NoError(t, appErr.Details(&res))
	require.Equal(t, DrillFailed, res.Status)
	require.Contains(t, res.Metrics.Verdict, "hop final")
}
