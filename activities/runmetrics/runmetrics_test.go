package runmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/flowproof/flowproof/activities/verify"
)

func registryOf(t *testing.T, r *Recorder) *prometheus.Registry {
	t.Helper()
	registry := prometheus.NewPedanticRegistry()
	require.NoError(t, registry.Register(r))
	return registry
}

func TestRecorderExportsOnlyZeroCountsBeforeAnyRun(t *testing.T) {
	registry := registryOf(t, NewRecorder())
	require.NoError(t, testutil.GatherAndCompare(registry, strings.NewReader(`
# HELP flowproof_runs_total Runs this worker recorded the end of, by status (Succeeded, Failed, Canceled).
# TYPE flowproof_runs_total counter
flowproof_runs_total{status="Canceled"} 0
flowproof_runs_total{status="Failed"} 0
flowproof_runs_total{status="Succeeded"} 0
`)))
	count, err := testutil.GatherAndCount(registry)
	require.NoError(t, err)
	require.Equal(t, 3, count, "no last-run or last-success series before a run")
}

func TestRecorderExportsTheLastRun(t *testing.T) {
	r := NewRecorder()
	registry := registryOf(t, r)
	r.Record(Run{RunID: "nightly-1", Status: "Succeeded", EndedAtUnixMillis: 1_764_633_600_000})
	r.Record(Run{
		RunID: "nightly-2", Status: "Failed", EndedAtUnixMillis: 1_764_720_000_500, DurationMillis: 95_250,
		Messages: 1_000, Produced: 1_000, Delivered: 1_000, Verified: 998,
		Hops: []verify.HopCount{
			{Hop: "raw", Unique: 1_000},
			{Hop: "final", Unique: 998, Missing: 2, Duplicated: 1},
			{Hop: "endpoint (its own count)", Skipped: true},
		},
		Latency:            verify.Percentiles{P50: 120, P95: 480, P99: 910.5, P999: 1_500, Max: 2_000},
		ProductionReported: true, DeliveryReported: true,
		MaxLag:        40_400,
		MaxLagSeconds: 3.5,
		SampledMaxLag: map[string]int64{"enrich": 40_400, "split": 7},
		Holds:         2, HeldMillis: 3_000,
		TokenRenewals: 5, TokenRejected: 1, HTTPRetries: 4,
	})

	require.NoError(t, testutil.GatherAndCompare(registry, strings.NewReader(`
# HELP flowproof_runs_total Runs this worker recorded the end of, by status (Succeeded, Failed, Canceled).
# TYPE flowproof_runs_total counter
flowproof_runs_total{status="Canceled"} 0
flowproof_runs_total{status="Failed"} 1
flowproof_runs_total{status="Succeeded"} 1
# HELP flowproof_last_success_timestamp_seconds End of the last successful run this worker recorded, in Unix seconds; absent until there is one.
# TYPE flowproof_last_success_timestamp_seconds gauge
flowproof_last_success_timestamp_seconds 1.7646336e+09
# HELP flowproof_last_run_timestamp_seconds End of the last run this worker recorded, in Unix seconds; the flowproof_last_run_* series describe that run.
# TYPE flowproof_last_run_timestamp_seconds gauge
flowproof_last_run_timestamp_seconds 1.7647200005e+09
# HELP flowproof_last_run_status 1 for the status the last run ended with, 0 for the others.
# TYPE flowproof_last_run_status gauge
flowproof_last_run_status{status="Canceled"} 0
flowproof_last_run_status{status="Failed"} 1
flowproof_last_run_status{status="Succeeded"} 0
# HELP flowproof_last_run_duration_seconds Duration of the last run, from its start to the end of its cleanup.
# TYPE flowproof_last_run_duration_seconds gauge
flowproof_last_run_duration_seconds 95.25
# HELP flowproof_last_run_messages Messages of the last run: expected (its input), produced and delivered (the workers' counts), verified (unique on the final topic).
# TYPE flowproof_last_run_messages gauge
flowproof_last_run_messages{count="delivered"} 1000
flowproof_last_run_messages{count="expected"} 1000
flowproof_last_run_messages{count="produced"} 1000
flowproof_last_run_messages{count="verified"} 998
# HELP flowproof_last_run_hop_messages Distinct messages (seqs) of the last run that passed each hop, as verification counted them from the data.
# TYPE flowproof_last_run_hop_messages gauge
flowproof_last_run_hop_messages{hop="final"} 998
flowproof_last_run_hop_messages{hop="raw"} 1000
# HELP flowproof_last_run_hop_missing_messages Messages of the last run missing at each hop.
# TYPE flowproof_last_run_hop_missing_messages gauge
flowproof_last_run_hop_missing_messages{hop="final"} 2
flowproof_last_run_hop_missing_messages{hop="raw"} 0
# HELP flowproof_last_run_hop_duplicated_messages Messages of the last run that passed each hop more than once.
# TYPE flowproof_last_run_hop_duplicated_messages gauge
flowproof_last_run_hop_duplicated_messages{hop="final"} 1
flowproof_last_run_hop_duplicated_messages{hop="raw"} 0
# HELP flowproof_last_run_latency_seconds End-to-end latency (produced to final topic) of the last run's verified messages at each quantile (0.5, 0.95, 0.99, 0.999); quantile 1 is the maximum. Absent when the run verified nothing.
# TYPE flowproof_last_run_latency_seconds gauge
flowproof_last_run_latency_seconds{quantile="0.5"} 0.12
flowproof_last_run_latency_seconds{quantile="0.95"} 0.48
flowproof_last_run_latency_seconds{quantile="0.99"} 0.9105
flowproof_last_run_latency_seconds{quantile="0.999"} 1.5
flowproof_last_run_latency_seconds{quantile="1"} 2
# HELP flowproof_last_run_max_lag_messages Largest consumer lag of any group at any poll of the last run. This and the other lag and backpressure series are absent when the run ended before production reported.
# TYPE flowproof_last_run_max_lag_messages gauge
flowproof_last_run_max_lag_messages 40400
# HELP flowproof_last_run_max_lag_seconds Largest lag of the last run in seconds of draining (when its threshold in seconds applied).
# TYPE flowproof_last_run_max_lag_seconds gauge
flowproof_last_run_max_lag_seconds 3.5
# HELP flowproof_last_run_sampled_max_lag_messages Largest lag of each consumer group among the lag samples the last run kept (spread over the run; a short peak can fall between them).
# TYPE flowproof_last_run_sampled_max_lag_messages gauge
flowproof_last_run_sampled_max_lag_messages{group="enrich"} 40400
flowproof_last_run_sampled_max_lag_messages{group="split"} 7
# HELP flowproof_last_run_backpressure_holds Times the last run held production for consumer lag.
# TYPE flowproof_last_run_backpressure_holds gauge
flowproof_last_run_backpressure_holds 2
# HELP flowproof_last_run_backpressure_held_seconds Time the last run's production was held for consumer lag.
# TYPE flowproof_last_run_backpressure_held_seconds gauge
flowproof_last_run_backpressure_held_seconds 3
# HELP flowproof_last_run_token_renewals Tokens the last run's delivery obtained.
# TYPE flowproof_last_run_token_renewals gauge
flowproof_last_run_token_renewals 5
# HELP flowproof_last_run_token_rejections Delivery segments of the last run that the endpoint cut short with a 401, or whose token could not be opened.
# TYPE flowproof_last_run_token_rejections gauge
flowproof_last_run_token_rejections 1
# HELP flowproof_last_run_http_retries HTTP batches of the last run that were sent again.
# TYPE flowproof_last_run_http_retries gauge
flowproof_last_run_http_retries 4
`)))
}

func TestRecorderDropsTheLatencyOfARunThatVerifiedNothing(t *testing.T) {
	r := NewRecorder()
	registry := registryOf(t, r)
	r.Record(Run{Status: "Succeeded", EndedAtUnixMillis: 1_000_000, Verified: 5, Latency: verify.Percentiles{P99: 100}})
	r.Record(Run{Status: "Failed", EndedAtUnixMillis: 2_000_000})

	latency, err := testutil.GatherAndCount(registry, "flowproof_last_run_latency_seconds")
	require.NoError(t, err)
	require.Zero(t, latency, "a run that verified nothing has no latency, not a latency of 0")
	// The failure leaves the last success where it was.
	require.NoError(t, testutil.GatherAndCompare(registry, strings.NewReader(`
# HELP flowproof_last_success_timestamp_seconds End of the last successful run this worker recorded, in Unix seconds; absent until there is one.
# TYPE flowproof_last_success_timestamp_seconds gauge
flowproof_last_success_timestamp_seconds 1000
`), "flowproof_last_success_timestamp_seconds"))
}

func TestRecorderLeavesOutWhatARunEndedBeforeReporting(t *testing.T) {
	r := NewRecorder()
	registry := registryOf(t, r)
	r.Record(Run{Status: "Canceled", EndedAtUnixMillis: 1_000, Produced: 20_000, Delivered: 681, TokenRenewals: 1})
	for _, name := range []string{
		"flowproof_last_run_max_lag_messages", "flowproof_last_run_max_lag_seconds", "flowproof_last_run_backpressure_holds",
		"flowproof_last_run_backpressure_held_seconds", "flowproof_last_run_http_retries", "flowproof_last_run_token_rejections",
	} {
		count, err := testutil.GatherAndCount(registry, name)
		require.NoError(t, err)
		require.Zero(t, count, "%s of a run whose production and delivery never reported", name)
	}
	renewals, err := testutil.GatherAndCount(registry, "flowproof_last_run_token_renewals")
	require.NoError(t, err)
	require.Equal(t, 1, renewals, "renewals come from progress as well")
}

func TestRecordRunMetricsActivity(t *testing.T) {
	r := NewRecorder()
	require.NoError(t, New(r).RecordRunMetrics(t.Context(), Run{Status: "Canceled"}))
	require.Equal(t, 1.0, testutil.ToFloat64(r.runs.WithLabelValues("Canceled")))

	require.ErrorContains(t, new(Activities).RecordRunMetrics(t.Context(), Run{Status: "Succeeded"}), "no run metrics recorder",
		"the zero Activities (registered for tests) records nowhere and says so")
}
