package workflows

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/errtype"
)

// measuredRun are the figures of a run that the thresholds below are held to.
func measuredRun() Metrics {
	return Metrics{
		TotalMillis:       412_300,
		EndToEndPerSecond: 2_431.5,
		Latency:           verify.Percentiles{P50: 3_100, P95: 20_000, P99: 45_900, P999: 61_234, Max: 70_000},
		Backpressure:      Backpressure{Holds: 3, HeldMillis: 146_200, MaxLag: 180_000},
		HTTPRetries:       12,
	}
}

func TestThresholdsNameEveryBrokenOneAgainstItsLimit(t *testing.T) {
	th := Thresholds{
		MaxDurationSeconds: 600, MinThroughputMsgsPerSec: 5_000, MaxP99LatencySeconds: 15,
		MaxP999LatencySeconds: 90, MaxLagMessages: 500_000, MaxBackpressureHoldSeconds: 60, MaxHTTPRetries: 100,
	}
	checks := th.evaluate(measuredRun())
	require.Len(t, checks, 7, "every threshold set is reported")
	verdicts := map[string]bool{}
	for _, c := range checks {
		verdicts[c.Field] = c.Passed
	}
	require.Equal(t, map[string]bool{
		"max_duration_seconds": true, "min_throughput_msgs_per_sec": false, "max_p99_latency_seconds": false,
		"max_p999_latency_seconds": true, "max_lag_messages": true, "max_backpressure_hold_seconds": false,
		"max_http_retries": true,
	}, verdicts)
	require.Equal(t, "thresholds broken: end-to-end throughput 2431.5 msg/s < 5000 msg/s; "+
		"p99 latency 45.9 s > 15 s; backpressure held 146.2 s > 60 s", brokenThresholds(checks))
	require.Equal(t, ThresholdCheck{
		Field: "max_p999_latency_seconds", What: "p99.9 latency", Measured: 61.234, Limit: 90, Unit: "s", Passed: true,
	}, checks[3])
	require.Equal(t, "61.234 s", checks[3].MeasuredText())
	require.Equal(t, "<= 90 s", checks[3].LimitText())
	require.Equal(t, ">= 5000 msg/s", checks[1].LimitText())
}

func TestThresholdsAtTheLimitAreKept(t *testing.T) {
	m := measuredRun()
	checks := Thresholds{MaxHTTPRetries: 12, MinThroughputMsgsPerSec: 2_431.5, MaxLagMessages: 180_000}.evaluate(m)
	require.Len(t, checks, 3)
	require.Empty(t, brokenThresholds(checks), "a figure equal to its limit keeps it")
}

func TestNoThresholdsNoChecks(t *testing.T) {
	require.Nil(t, Thresholds{}.evaluate(measuredRun()))
	require.Empty(t, brokenThresholds(nil))
}

func TestNegativeThresholdIsInvalidInputNamingIt(t *testing.T) {
	var in PipelineInput
	require.NoError(t, json.Unmarshal([]byte(`{"messages": 1000, "thresholds": {"max_p99_latency_seconds": 15, "max_http_retries": -1}}`), &in))
	err := in.WithDefaults("wf").Validate()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, errtype.InvalidInput, appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.True(t, strings.HasPrefix(appErr.Message(), "invalid input: thresholds.max_http_retries -1: "), appErr.Message())
}

func TestThresholdsDecodeAndTyposAreRefused(t *testing.T) {
	var in PipelineInput
	require.NoError(t, json.Unmarshal([]byte(`{"thresholds": {"max_duration_seconds": 600, "min_throughput_msgs_per_sec": 2000,
		"max_p99_latency_seconds": 15, "max_p999_latency_seconds": 30, "max_lag_messages": 500000,
		"max_backpressure_hold_seconds": 60, "max_http_retries": 100}}`), &in))
	require.Equal(t, Thresholds{
		MaxDurationSeconds: 600, MinThroughputMsgsPerSec: 2000, MaxP99LatencySeconds: 15, MaxP999LatencySeconds: 30,
		MaxLagMessages: 500_000, MaxBackpressureHoldSeconds: 60, MaxHTTPRetries: 100,
	}, in.Thresholds)
	require.NoError(t, in.WithDefaults("wf").Validate())

	require.NoError(t, json.Unmarshal([]byte(`{"thresholds": {"max_p99_latncy_seconds": 15}}`), &in))
	err := in.WithDefaults("wf").Validate()
	require.ErrorContains(t, err, `unknown field "thresholds.max_p99_latncy_seconds" (did you mean "thresholds.max_p99_latency_seconds"?)`)

	// Without thresholds the input's JSON stays what older workers and
	// recorded histories know.
	out, err := json.Marshal(PipelineInput{Messages: 5})
	require.NoError(t, err)
	require.JSONEq(t, `{"messages": 5}`, string(out))
}

// A run whose messages all arrived exactly once but whose figures break
// thresholds ends Failed, after verification and cleanup, naming every
// broken one, with the full metrics.
func TestBrokenThresholdsFailTheRunNamingEach(t *testing.T) {
	f := &fakeStack{
		latency: verify.Percentiles{P50: 2_000, P95: 30_000, P99: 45_900, P999: 52_000, Max: 60_000}, flowMillis: 20_000,
		lagSamples: []int64{150_000, 0}, retries: 3,
	}
	env := newEnv(t, f)
	in := smallRun()
	in.Thresholds = Thresholds{
		MaxP99LatencySeconds: 15, MaxP999LatencySeconds: 60, MinThroughputMsgsPerSec: 1e9,
		MaxLagMessages: 100_000, MaxHTTPRetries: 1_000, MaxDurationSeconds: 7 * 24 * 3600,
	}
	env.ExecuteWorkflow(PipelineWorkflow, in)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want a failure, got %v", err)
	require.Equal(t, errtype.ThresholdsBroken, appErr.Type())
	require.True(t, appErr.NonRetryable())
	var result PipelineResult
	require.NoError(t, appErr.Details(&result))
	require.Equal(t, StatusFailed, result.Status)
	m := result.Metrics
	require.Equal(t, FailedThresholds, m.FailedStage)
	require.Equal(t, "thresholds broken: end-to-end throughput 2500 msg/s < 1000000000 msg/s; "+
		"p99 latency 45.9 s > 15 s; max lag 150000 messages > 100000 messages", m.FailureMessage)
	require.Equal(t, m.FailureMessage, appErr.Message())
	require.Len(t, m.Thresholds, 6)

	// The full metrics: every stage ran, verification passed, cleanup too.
	require.True(t, m.Verification.Passed())
	require.Equal(t, int64(50_000), m.Verified)
	require.Equal(t, int64(50_000), m.Delivered)
	require.Equal(t, 2_500.0, m.EndToEndPerSecond)
	require.Equal(t, 45_900.0, m.Latency.P99)
	require.Equal(t, ThresholdCheck{
		Field: "max_duration_seconds", What: "duration", Measured: float64(m.TotalMillis) / 1000, Limit: 7 * 24 * 3600, Unit: "s", Passed: true,
	}, m.Thresholds[0], "the duration is the run's total, cleanup included")
	require.Equal(t, []string{"health", "prepare", "flink", "produce", "deliver", "verify", "cleanup"}, stageNames(m.Stages))
	require.True(t, strings.HasSuffix(strings.Join(f.calls, ","), ",verify,cleanup,run-metrics,store-result,notify"), "the failure notice last: %v", f.calls)
	require.Len(t, f.runMetrics, 1)
	require.Equal(t, "Failed", f.runMetrics[0].Status, "a run that broke a threshold counts as failed")
}

func TestKeptThresholdsLetTheRunSucceed(t *testing.T) {
	f := &fakeStack{latency: verify.Percentiles{P99: 900, P999: 1_200}, flowMillis: 10_000}
	env := newEnv(t, f)
	in := smallRun()
	in.Thresholds = Thresholds{MaxP99LatencySeconds: 15, MinThroughputMsgsPerSec: 2_000, MaxHTTPRetries: 10}
	env.ExecuteWorkflow(PipelineWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	var result PipelineResult
	require.NoError(t, env.GetWorkflowResult(&result))
	require.Equal(t, StatusSucceeded, result.Status)
	require.Empty(t, result.Metrics.FailureMessage)
	require.Len(t, result.Metrics.Thresholds, 3)
	for _, c := range result.Metrics.Thresholds {
		require.True(t, c.Passed, "%s", c)
	}
}

// A run that lost messages fails as a verification failure; its broken
// thresholds are named too.
func TestFailedVerificationAlsoNamesBrokenThresholds(t *testing.T) {
	f := &fakeStack{missing: 7, latency: verify.Percentiles{P99: 45_900}}
	env := newEnv(t, f)
	in := smallRun()
	in.Thresholds = Thresholds{MaxP99LatencySeconds: 15}
	env.ExecuteWorkflow(PipelineWorkflow, in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	require.Equal(t, errtype.VerificationFailed, appErr.Type())
	require.Contains(t, appErr.Message(), "7 missing")
	require.True(t, strings.HasSuffix(appErr.Message(), "; thresholds broken: p99 latency 45.9 s > 15 s"), appErr.Message())
}

func stageNames(stages []StageMetrics) []string {
	var names []string
	for _, s := range stages {
		names = append(names, s.Stage)
	}
	return names
}
