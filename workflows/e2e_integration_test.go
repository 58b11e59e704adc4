//go:build integration

package workflows_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/wiring"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/temporalclient"
	"github.com/flowproof/flowproof/workflows"
)

// End-to-end tests: a real worker (in this process) against the real local
// stack — Temporal, Kafka, Flink, the token service and the endpoint.

// jwtPattern matches any JWT (header.payload.signature, base64url); a
// token in plain text anywhere would match it.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}`)

type e2e struct {
	client   client.Client
	logs     *observer.ObservedLogs
	taskQ    string
	shutdown func()
}

// startWorker runs a worker on a task queue of its own; configure, if
// given, changes its activities' configuration first.
func startWorker(t *testing.T, configure ...func(*wiring.Config)) *e2e {
	t.Helper()
	addrs := localstack.FromEnv()
	// Activities log through the client's logger (activity.GetLogger), so
	// the observer sees every line the worker would write.
	core, logs := observer.New(zap.DebugLevel)
	// The connection settings come from the environment, as the worker's
	// do, so the test runs on either profile of the stack.
	clientOpts, err := temporalclient.Options(temporalclient.Overrides{}, observedLogger(core))
	require.NoError(t, err)
	c, err := client.Dial(clientOpts)
	require.NoError(t, err, "dial Temporal: is the local stack up (make up)?")
	kafkaSecurity, kafkaOptions := stackKafkaSecurity(t)
	flinkKafka, err := flink.KafkaFromEnv(os.Getenv, kafkaSecurity, addrs.KafkaBrokers)
	require.NoError(t, err)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := wiring.Config{
		KafkaBrokers:         addrs.KafkaBrokers,
		KafkaOptions:         kafkaOptions,
		KafkaSecurity:        kafkaSecurity,
		FlinkKafka:           flinkKafka,
		FlinkURL:             addrs.FlinkURL,
		SQLGatewayURL:        addrs.SQLGatewayURL,
		Temporal:             clientOpts,
		EndpointURL:          addrs.EndpointURL,
		ReferenceEndpointURL: addrs.EndpointURL,
		TokenURL:             addrs.TokenURL,
		TokenClientID:        "flowproof",
		TokenClientSecret:    localstack.TokenClientSecret,
		TokenKey:             key,
	}
	for _, change := range configure {
		change(&cfg)
	}
	acts, err := wiring.New(cfg)
	require.NoError(t, err)

	// A task queue of its own, so a worker left running elsewhere (make
	// demo) cannot pick up this test's tasks.
	taskQ := fmt.Sprintf("flowproof-e2e-%d", time.Now().UnixNano())
	w := worker.New(c, taskQ, worker.Options{})
	workflows.Register(w, acts)
	require.NoError(t, w.Start())
	return &e2e{client: c, logs: logs, taskQ: taskQ, shutdown: func() {
		w.Stop()
		acts.Close()
		c.Close()
	}}
}

// requireMeasurements checks the richer measurements of a complete run of
// m.Messages on the real stack, and that its HTML report draws every chart.
func requireMeasurements(t *testing.T, m workflows.Metrics) {
	t.Helper()
	series, hist := m.Verification.Series, m.Verification.LatencyHistogram
	require.NotNil(t, series, "per-interval series")
	require.NotNil(t, hist, "latency histogram")
	sum := func(points []int64) (n int64) {
		for _, p := range points {
			n += p
		}
		return n
	}
	for hop, points := range map[string][]int64{"produced": series.Produced, "enriched": series.Enriched, "delivered": series.Delivered, "verified": series.Verified} {
		require.Equal(t, m.Messages, sum(points), "messages in the %s series (%d points of %d ms)", hop, len(points), series.IntervalMillis)
	}
	require.Equal(t, m.Messages, hist.Count)
	require.NotEmpty(t, hist.HDR, "the HdrHistogram's encoding")
	for _, s := range m.Stages {
		require.Positive(t, s.StartedUnixMillis, "start of stage %s", s.Stage)
	}
	t.Logf("series: %d points of %d ms; latency histogram: %d buckets, HDR %d bytes",
		len(series.Produced), series.IntervalMillis, len(hist.Buckets), len(hist.HDR))
}

// requireReport runs `starter report` on the finished run workflowID: its
// HTML report draws every chart.
func requireReport(t *testing.T, ctx context.Context, workflowID string) {
	t.Helper()
	page := filepath.Join(t.TempDir(), "report.html")
	out, err := exec.CommandContext(ctx, "go", "run", "../starter", "report", workflowID, "--html", page).CombinedOutput()
	require.NoError(t, err, "starter report: %s", out)
	html, err := os.ReadFile(page)
	require.NoError(t, err)
	require.Equal(t, 4, strings.Count(string(html), "<svg"), "charts drawn in the report of a real run")
	require.NotContains(t, string(html), "not recorded:")
	require.Contains(t, string(html), "Succeeded")
	t.Logf("starter report %s: %d bytes", workflowID, len(html))
}

// start starts PipelineWorkflow by its type name, as the UI and the CLI do;
// with no args the workflow gets no input payload at all.
func (e *e2e) start(t *testing.T, ctx context.Context, id string, args ...any) client.WorkflowRun {
	t.Helper()
	run, err := e.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: e.taskQ, StaticSummary: "flowproof e2e test: " + id,
	}, "PipelineWorkflow", args...)
	require.NoError(t, err)
	t.Logf("started %s: %s/namespaces/default/workflows/%s/%s/history", id, localstack.FromEnv().TemporalUIURL, id, run.GetRunID())
	return run
}

func TestEndToEnd(t *testing.T) {
	e := startWorker(t)
	defer e.shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	suffix := time.Now().UTC().Format("150405")

	t.Run("50k messages reach Succeeded with exact counts", func(t *testing.T) {
		id := "e2e-50k-" + suffix
		run := e.start(t, ctx, id, workflows.PipelineInput{Messages: 50_000, Partitions: 12, LogicalQueues: 100})
		var res workflows.PipelineResult
		require.NoError(t, run.Get(ctx, &res))
		m := res.Metrics
		t.Logf("status %s; produced %d delivered %d verified %d; renewals %d; retries %d; holds %d (%d ms); latency %+v; total %d ms",
			res.Status, m.Produced, m.Delivered, m.Verified, m.TokenRenewals, m.HTTPRetries, m.Backpressure.Holds, m.Backpressure.HeldMillis, m.Latency, m.TotalMillis)
		bp := m.Backpressure
		t.Logf("backpressure: max lag %d, max %.1f s; last %.1f s (%s); drain rates %+v", bp.MaxLag, bp.MaxLagSeconds, bp.LagSeconds, bp.LagSecondsGroup, bp.DrainRates)
		for _, s := range bp.LagSamples {
			t.Logf("lag sample %+v", s)
		}
		for _, s := range m.Stages {
			t.Logf("stage %-8s %8d msgs %8d ms %10.0f/s", s.Stage, s.Messages, s.DurationMillis, s.PerSecond)
		}
		for _, j := range m.Flink {
			t.Logf("flink %s: %s, %d restarts, %d checkpoints (%d failed, last %d ms, %d bytes), records in %d out %d",
				j.Name, j.State, j.Restarts, j.CheckpointsCompleted, j.CheckpointsFailed, j.LastCheckpointMillis, j.LastCheckpointBytes, j.RecordsIn, j.RecordsOut)
		}
		require.Equal(t, workflows.StatusSucceeded, res.Status, m.FailureMessage)
		require.Len(t, m.Flink, 2, "both Flink jobs' figures")
		require.Positive(t, m.Flink[0].RecordsOut, "the enrich job wrote records")
		require.Positive(t, m.Flink[1].CheckpointsCompleted, "the split job checkpointed")
		require.Equal(t, int64(50_000), m.Produced)
		require.Equal(t, int64(50_000), m.Delivered)
		require.Equal(t, int64(50_000), m.Verified)
		require.Equal(t, int64(0), m.Verification.Duplicates)
		require.Equal(t, int64(0), m.Verification.Missing)
		require.Equal(t, 5, m.TokenRenewals)
		require.Len(t, m.Verification.First, 10)
		require.Len(t, m.Verification.Last, 10)
		require.Equal(t, int64(0), m.Verification.First[0].Seq)
		require.Equal(t, int64(49_999), m.Verification.Last[9].Seq)
		for _, h := range []string{"correlation.id", "sending.id", "logical.queue", "batch.number"} {
			require.NotEmpty(t, m.Verification.First[0].Headers[h], "header %s", h)
		}
		requireMeasurements(t, m)
		requireReport(t, ctx, id)

		// The token never appears in plain text: not in the history of the
		// run or of its children, not in the worker's logs.
		for _, wfID := range []string{id, id + "/produce", id + "/deliver"} {
			events := 0
			iter := e.client.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for iter.HasNext() {
				event, err := iter.Next()
				require.NoError(t, err)
				raw, err := proto.Marshal(event)
				require.NoError(t, err)
				require.False(t, jwtPattern.Match(raw), "a token in plain text in event %d of %s", event.GetEventId(), wfID)
				require.False(t, bytes.Contains(raw, []byte("flowproof-local-secret")), "the client secret in %s", wfID)
				events++
			}
			t.Logf("history of %s: %d events, no token in plain text", wfID, events)
		}
		for _, entry := range e.logs.All() {
			line := entry.Message + fmt.Sprint(entry.ContextMap())
			require.False(t, jwtPattern.MatchString(line), "a token in the worker log: %q", entry.Message)
		}
	})

	t.Run("invalid input fails naming the field", func(t *testing.T) {
		run := e.start(t, ctx, "e2e-invalid-"+suffix, workflows.PipelineInput{Messages: 10, BatchSize: 5_000})
		err := run.Get(ctx, nil)
		require.Error(t, err)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), "%v", err)
		require.Equal(t, errtype.InvalidInput, appErr.Type())
		require.Contains(t, appErr.Error(), "batch_size")
	})

	t.Run("a run past its deadline ends Failed with its result", func(t *testing.T) {
		// 500,000 messages take minutes on two cores; the deadline cuts the
		// run after 60 s, in production or delivery.
		run := e.start(t, ctx, "e2e-deadline-"+suffix, workflows.PipelineInput{
			Messages: 500_000, Partitions: 12, LogicalQueues: 100, TimeoutSeconds: 60,
		})
		err := run.Get(ctx, nil)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), "want a failure, got %v", err)
		require.Equal(t, errtype.RunTimedOut, appErr.Type())
		result, ok := workflows.ResultOfEnding(err)
		require.True(t, ok, "the failure carries the result")
		require.Equal(t, workflows.StatusFailed, result.Status)
		require.NotEmpty(t, result.Metrics.FailedStage)
		require.Positive(t, result.Metrics.Produced, "counts so far")
		desc, err := e.client.DescribeWorkflow(ctx, run.GetID(), run.GetRunID())
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, desc.Status)
	})

	t.Run("a misspelt field is refused, as the UI and CLI send it", func(t *testing.T) {
		run := e.start(t, ctx, "e2e-typo-"+suffix, json.RawMessage(`{"mesages": 5000}`))
		err := run.Get(ctx, nil)
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), "%v", err)
		require.Equal(t, errtype.InvalidInput, appErr.Type())
		require.Contains(t, appErr.Error(), `unknown field "mesages" (did you mean "messages"?)`)
	})

	t.Run("empty input gets the defaults and cancellation cleans up", func(t *testing.T) {
		id := "e2e-defaults-" + suffix
		run := e.start(t, ctx, id) // no input at all, as the UI sends an empty form
		var progress workflows.Progress
		require.Eventually(t, func() bool {
			v, err := e.client.QueryWorkflow(ctx, id, run.GetRunID(), workflows.ProgressQuery)
			if err != nil || v.Get(&progress) != nil {
				return false
			}
			return progress.Stage == workflows.StageProduce && progress.Produced > 0
		}, 5*time.Minute, time.Second, "the default run should reach production")
		require.Equal(t, int64(1_000_000), progress.Messages)

		require.NoError(t, e.client.CancelWorkflow(ctx, id, run.GetRunID()))
		err := run.Get(ctx, nil)
		var canceled *temporal.CanceledError
		require.True(t, errors.As(err, &canceled), "%v", err)
		// Cleanup ran: the run's raw topic is gone.
		desc, err := e.client.DescribeWorkflow(ctx, id, run.GetRunID())
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, desc.Status)
		prefix := "flowproof." + strings.ReplaceAll(id, "/", "-")
		require.True(t, topicGone(t, ctx, prefix+".raw"))
		require.True(t, groupGone(t, ctx, prefix+".deliver"))
	})
}

func groupGone(t *testing.T, ctx context.Context, group string) bool {
	t.Helper()
	cl := stackKafkaClient(t)
	defer cl.Close()
	groups, err := kadm.NewClient(cl).ListGroups(ctx)
	require.NoError(t, err)
	return !slices.Contains(groups.Groups(), group)
}

// stackKafkaSecurity is the stack's Kafka security as the environment says
// (stackctl env), so that the test runs on either profile of the stack.
func stackKafkaSecurity(t *testing.T) (kafkaconn.Settings, []kgo.Opt) {
	t.Helper()
	security, err := kafkaconn.FromEnv(os.Getenv)
	require.NoError(t, err)
	opts, err := security.ClientOptions()
	require.NoError(t, err)
	return security, opts
}

func stackKafkaClient(t *testing.T) *kgo.Client {
	t.Helper()
	_, security := stackKafkaSecurity(t)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(localstack.FromEnv().KafkaBrokers...)}, security...)...)
	require.NoError(t, err)
	return cl
}

// quietLogger keeps the SDK's debug lines out of the test output.
func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// observedLogger records every line in observed and keeps all but the
// warnings and errors out of the test output.
func observedLogger(observed zapcore.Core) tlog.Logger {
	stderr := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.Lock(os.Stderr), zap.WarnLevel)
	return temporalclient.Logger(zap.New(zapcore.NewTee(observed, stderr)))
}

func topicGone(t *testing.T, ctx context.Context, topic string) bool {
	t.Helper()
	cl := stackKafkaClient(t)
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	require.NoError(t, err)
	return !topics.Has(topic)
}
