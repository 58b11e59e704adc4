//go:build integration

package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/temporalclient"
	"github.com/flowproof/flowproof/workflows"
)

// dashboardRunMessages at dashboardRatePerSecond keep the run short while
// production alone lasts about 80 s, so however fast the machine, the Flink
// jobs' Kafka clients (which exist only while the run's jobs do) live
// through at least four of Prometheus' 15 s scrapes: rate() needs two
// samples of a series. Unthrottled, a fast machine finished in under 30 s
// and the Flink panels had one sample or none.
const (
	dashboardRunMessages   = 5_000
	dashboardRatePerSecond = 60
)

// TestEveryDashboardQueryReturnsDataAfterARun runs a small pipeline through
// the stack's own worker (the one Prometheus scrapes; test.sh starts it and
// Prometheus: stackctl up --with-worker --with-prometheus), waits until
// Prometheus scraped that worker (and Temporal, Kafka and Flink) twice
// after the run ended, and then asks the live Prometheus every query of
// the dashboard over a window covering the run: each must return data.
func TestEveryDashboardQueryReturnsDataAfterARun(t *testing.T) {
	status := exec.Command("../../bin/stackctl", "status", "--only", "worker,prometheus")
	if out, err := status.CombinedOutput(); err != nil {
		t.Fatalf("the stack's worker and Prometheus must be up (bin/stackctl up --with-worker --with-prometheus): %v\n%s", err, out)
	}
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	prom := "http://" + localstack.Host + ":" + strconv.Itoa(localstack.PrometheusPort)
	requireScraped(ctx, t, prom, "worker", "temporal", "kafka", "flink")
	started := time.Now()
	ended := runPipelineOnTheStacksWorker(ctx, t)
	// Every job twice: a series born near the run's end (Temporal's
	// workflow_success of each workflow type, at its first completion)
	// needs two samples for increase(), and the jobs' scrapes do not
	// coincide, so the worker's two scrapes left Temporal's one at times.
	for _, job := range []string{"worker", "temporal", "kafka", "flink"} {
		waitForScrapesSince(ctx, t, prom, job, ended, 2)
	}

	window := time.Since(started) + time.Minute
	for _, q := range d.Queries(window) {
		n, err := instantQuery(ctx, prom, q.Expr)
		switch {
		case err != nil:
			t.Errorf("panel %q query %s: %v\n%s", q.Panel, q.RefID, err, q.Expr)
		case n == 0:
			t.Errorf("panel %q query %s returned no data after a run:\n%s", q.Panel, q.RefID, q.Expr)
		default:
			t.Logf("panel %q query %s: %d series", q.Panel, q.RefID, n)
		}
	}
}

// requireScraped fails unless Prometheus scrapes every target of each job
// successfully (within a minute of its start).
func requireScraped(ctx context.Context, t *testing.T, prom string, jobs ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, job := range jobs {
		expr := fmt.Sprintf(`min(up{job=%q}) == 1`, job)
		for {
			n, err := instantQuery(ctx, prom, expr)
			if err == nil && n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus does not scrape every target of job %s (%v): a Kafka or Flink started by an older stackctl "+
					"has no JMX exporter agent (bin/stackctl down --only kafka,flink && bin/stackctl up)", job, err)
			}
			time.Sleep(3 * time.Second)
		}
	}
}

// runPipelineOnTheStacksWorker runs a verified pipeline on the stack
// worker's task queue and returns when it ended.
func runPipelineOnTheStacksWorker(ctx context.Context, t *testing.T) time.Time {
	t.Helper()
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	opts, err := temporalclient.Options(temporalclient.Overrides{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(opts)
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	defer c.Close()
	id := fmt.Sprintf("it-dashboard-%d", time.Now().Unix())
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: localstack.TaskQueue, StaticSummary: "flowproof dashboard query check",
	}, "PipelineWorkflow", workflows.PipelineInput{Messages: dashboardRunMessages, RatePerSecond: dashboardRatePerSecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started %s: %s/namespaces/%s/workflows/%s/%s/history", id, localstack.FromEnv().TemporalUIURL, opts.Namespace, id, run.GetRunID())
	var res workflows.PipelineResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	if res.Status != workflows.StatusSucceeded {
		t.Fatalf("run %s ended %s: %s", id, res.Status, res.Metrics.FailureMessage)
	}
	return time.Now()
}

// waitForScrapesSince waits until Prometheus holds at least n scrapes of
// job taken after since.
func waitForScrapesSince(ctx context.Context, t *testing.T, prom, job string, since time.Time, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		seconds := int(math.Ceil(time.Since(since).Seconds()))
		expr := fmt.Sprintf(`count_over_time(up{job=%q}[%ds]) >= %d`, job, seconds, n)
		got, err := instantQuery(ctx, prom, expr)
		if err == nil && got > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not scraped job %s %d times since the run ended (%v): %s", job, n, err, expr)
		}
		time.Sleep(3 * time.Second)
	}
}

// instantQuery asks Prometheus' HTTP API for expr now and returns how many
// series (or a scalar's 1) it returned.
func instantQuery(ctx context.Context, prom, expr string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, prom+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("query Prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, fmt.Errorf("read Prometheus' answer: %w", err)
	}
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return 0, fmt.Errorf("decode Prometheus' answer (status %d): %w", resp.StatusCode, err)
	}
	if answer.Status != "success" {
		return 0, fmt.Errorf("Prometheus: %s", answer.Error)
	}
	if answer.Data.ResultType == "scalar" || answer.Data.ResultType == "string" {
		return 1, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(answer.Data.Result, &series); err != nil {
		return 0, fmt.Errorf("decode %s result: %w", answer.Data.ResultType, err)
	}
	return len(series), nil
}
