//go:build integration

package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/activities/wiring"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/workflows"
)

// TestTooTightThresholdsFailTheRun runs a small pipeline on the real stack
// whose every message arrives exactly once, with thresholds no pipeline
// can keep (a p99 latency of 1 ms, a billion messages a second) and one it
// keeps: the run ends Failed naming both broken ones, after verification,
// with its full figures.
//
// The worker has a failure webhook (an HTTP server standing for the
// user's chat system, failing its first request): the run's failure notice
// reaches it after a retry, naming the broken thresholds, linking the run.
func TestTooTightThresholdsFailTheRun(t *testing.T) {
	receiver := newWebhookReceiver(t, 1)
	counts := notify.NewCounts()
	const uiBase = "https://temporal-ui.example.com"
	e := startWorker(t, func(cfg *wiring.Config) {
		cfg.Notify = notify.Config{WebhookURL: receiver.url + "/hooks/T000/B000/secret-part", TemporalUIURL: uiBase}
		cfg.NotifyCounts = counts
	})
	defer e.shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	id := "e2e-thresholds-" + time.Now().UTC().Format("150405")
	run := e.start(t, ctx, id, workflows.PipelineInput{
		Messages: 20_000, Partitions: 12, LogicalQueues: 100,
		Thresholds: workflows.Thresholds{
			MaxP99LatencySeconds: 0.001, MinThroughputMsgsPerSec: 1e9, MaxDurationSeconds: 3600,
		},
	})
	err := run.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want a failure, got %v", err)
	require.Equal(t, errtype.ThresholdsBroken, appErr.Type(), appErr.Message())
	result, ok := workflows.ResultOfEnding(err)
	require.True(t, ok, "the failure carries the result")
	m := result.Metrics
	t.Logf("failure: %s", m.FailureMessage)
	for _, c := range m.Thresholds {
		t.Logf("threshold %s", c)
	}
	t.Logf("latency %+v; flow %d ms, %.0f msg/s; total %d ms", m.Latency, m.Verification.FlowMillis, m.EndToEndPerSecond, m.TotalMillis)

	require.Equal(t, workflows.StatusFailed, result.Status)
	require.Equal(t, workflows.FailedThresholds, m.FailedStage)
	require.True(t, strings.HasPrefix(m.FailureMessage, "thresholds broken: end-to-end throughput "), m.FailureMessage)
	require.Contains(t, m.FailureMessage, " msg/s < 1000000000 msg/s; p99 latency ")
	require.True(t, strings.HasSuffix(m.FailureMessage, " s > 0.001 s"), m.FailureMessage)
	require.NotContains(t, m.FailureMessage, "duration", "a kept threshold is not named as broken")
	require.Len(t, m.Thresholds, 3)
	require.True(t, m.Thresholds[0].Passed, "the run took less than an hour: %s", m.Thresholds[0])

	// After verification, with the full figures, measured for real.
	require.True(t, m.Verification.Passed(), "every message arrived exactly once")
	require.Equal(t, int64(20_000), m.Verified)
	require.Greater(t, m.Latency.P99, 1.0, "p99 latency in ms")
	require.GreaterOrEqual(t, m.Latency.P999, m.Latency.P99)
	require.GreaterOrEqual(t, m.Latency.Max, m.Latency.P999)
	require.Positive(t, m.Verification.FlowMillis)
	require.InDelta(t, float64(m.Verified)/(float64(m.Verification.FlowMillis)/1000), m.EndToEndPerSecond, 0.01)
	require.NotEmpty(t, m.Hops)
	require.Equal(t, "cleanup", m.Stages[len(m.Stages)-1].Stage)

	desc, err := e.client.DescribeWorkflow(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, desc.Status)

	notices := receiver.received()
	require.Len(t, notices, 1, "one notice, delivered on the second attempt")
	require.Equal(t, 2, receiver.attempts())
	text := notices[0].Text
	t.Logf("notice:\n%s", text)
	require.Contains(t, text, "flowproof run "+m.RunID+" failed in stage thresholds")
	require.Contains(t, text, "Broken threshold: p99 latency ")
	require.Contains(t, text, "Broken threshold: end-to-end throughput ")
	require.NotContains(t, text, "Broken threshold: duration")
	require.Contains(t, text, uiBase+"/namespaces/default/workflows/"+id+"/"+run.GetRunID()+"/history")
	require.Contains(t, text, "starter report "+id+" --html report.html")
	require.NotEmpty(t, notices[0].Blocks)
	require.Equal(t, 1.0, testutil.ToFloat64(counts.Sent()))
	for _, line := range e.logs.All() {
		require.NotContains(t, line.Message+fmt.Sprint(line.Context), "secret-part", "the webhook URL is a secret")
	}
	assertHistoryLacks(t, ctx, e, id, run.GetRunID(), "secret-part")
}

// webhookReceiver stands for the user's chat system: it keeps every
// notice posted to it and fails the first failFirst requests with 503.
type webhookReceiver struct {
	url string

	mu        sync.Mutex
	failFirst int
	requests  int
	notices   []notify.SlackMessage
}

func newWebhookReceiver(t *testing.T, failFirst int) *webhookReceiver {
	t.Helper()
	r := &webhookReceiver{failFirst: failFirst}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests++
		if r.requests <= r.failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var msg notify.SlackMessage
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(req.Body).Decode(&msg) != nil || msg.Text == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.notices = append(r.notices, msg)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *webhookReceiver) received() []notify.SlackMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.SlackMessage(nil), r.notices...)
}

func (r *webhookReceiver) attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// assertHistoryLacks fails when the run's history holds secret anywhere.
func assertHistoryLacks(t *testing.T, ctx context.Context, e *e2e, workflowID, runID, secret string) {
	t.Helper()
	iter := e.client.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		event, err := iter.Next()
		require.NoError(t, err)
		require.NotContains(t, event.String(), secret, "event %d (%s)", event.GetEventId(), event.GetEventType())
	}
}
