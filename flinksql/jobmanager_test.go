package flinksql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// capturedJob is the job whose answers were captured from the local
// stack's JobManager (Flink 2.2.0) into testdata/jobmanager_*.json.
const capturedJob = "750d928a9aff2becbeb4652240a7306c"

// serveCaptured answers the JobManager's paths with the captured bodies.
func serveCaptured(t *testing.T) *JobManager {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var savepointPolls, overviewPolls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		job := "/jobs/" + capturedJob
		var body []byte
		status := http.StatusOK
		switch p := r.URL.Path; {
		case p == "/overview":
			body = read("jobmanager_overview.json")
		case p == "/jobs/overview":
			// Two jobs a moment after they became RUNNING, tasks still
			// deploying, then with every task running.
			if overviewPolls.Add(1) == 1 {
				body = read("jobmanager_jobs_overview_starting.json")
			} else {
				body = read("jobmanager_jobs_overview_running.json")
			}
		case p == "/taskmanagers":
			body = read("jobmanager_taskmanagers.json")
		case p == job && r.Method == "GET":
			body = read("jobmanager_job.json")
		case p == job+"/status":
			body = read("jobmanager_job_status.json")
		case p == job+"/checkpoints":
			body = read("jobmanager_checkpoints.json")
		case p == job+"/exceptions":
			body = read("jobmanager_exceptions.json")
		case p == job+"/metrics":
			body = read("jobmanager_job_metrics.json")
		case strings.HasPrefix(p, job+"/vertices/") && strings.HasSuffix(p, "/subtasks/metrics"):
			body = read("jobmanager_vertex_metrics.json")
		case p == job+"/stop" && r.Method == "POST":
			status, body = http.StatusAccepted, []byte(`{"request-id":"2c615e4b38b6ce152dd8a5d80d3774ff"}`)
		case p == job+"/savepoints/2c615e4b38b6ce152dd8a5d80d3774ff":
			if savepointPolls.Add(1) == 1 {
				body = read("jobmanager_savepoint_in_progress.json")
			} else {
				body = read("jobmanager_savepoint_completed.json")
			}
		case p == "/jobs/0123456789abcdef0123456789abcdef/status":
			status, body = http.StatusInternalServerError, read("jobmanager_job_status_unknown_error.json")
		case strings.HasPrefix(p, "/jobs/0123456789abcdef0123456789abcdef"):
			status, body = http.StatusNotFound, read("jobmanager_unknown_job_error.json")
		default:
			status, body = http.StatusNotFound, []byte(`{"errors":["Not found: `+p+`"]}`)
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	jm, err := NewJobManager(srv.URL, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	return jm
}

func TestJobManagerDecodesCapturedAnswers(t *testing.T) {
	ctx := context.Background()
	jm := serveCaptured(t)

	ov, err := jm.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ov.TaskManagers != 3 || ov.SlotsTotal != 12 || ov.SlotsAvailable != 10 || ov.FlinkVersion != "2.2.0" || ov.JobsRunning != 1 {
		t.Errorf("overview = %+v", ov)
	}
	tms, err := jm.TaskManagers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tms) != 3 || tms[0].ID != "flink-taskmanager-1" || tms[0].SlotsNumber != 4 || tms[0].Hardware.CPUCores != 2 {
		t.Errorf("taskmanagers = %+v", tms)
	}

	job, err := jm.Job(ctx, capturedJob)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != JobRunning || job.Name != "capture.enrich" || len(job.Vertices) != 1 {
		t.Fatalf("job = %+v", job)
	}
	v := job.Vertices[0]
	if v.Parallelism != 2 || v.Status != "RUNNING" || !strings.HasPrefix(v.Name, "Source: capture_enrich_raw[") || !strings.Contains(v.Name, "Correlate[") {
		t.Errorf("vertex = %+v", v)
	}
	if job.Timestamps["RUNNING"] == 0 {
		t.Errorf("no RUNNING timestamp: %v", job.Timestamps)
	}
	if st, err := jm.WaitForState(ctx, capturedJob, JobRunning); err != nil || st != JobRunning {
		t.Errorf("WaitForState = %s, %v", st, err)
	}
	for _, want := range []TaskCounts{{Total: 2, Running: 0}, {Total: 2, Running: 2}} {
		jobs, err := jm.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 8 || jobs[0].State != JobRunning || jobs[0].Tasks != want || jobs[2].State != JobCanceled {
			t.Errorf("jobs = %+v, want the first RUNNING with tasks %+v", jobs, want)
		}
	}

	cps, err := jm.Checkpoints(ctx, capturedJob)
	if err != nil {
		t.Fatal(err)
	}
	if cps.Counts.Completed != 13 || cps.Counts.Failed != 0 || cps.Latest.Completed == nil || cps.Latest.Completed.ID != 13 || cps.Latest.Failed != nil {
		t.Errorf("checkpoints = %+v", cps)
	}
	exc, err := jm.Exceptions(ctx, capturedJob)
	if err != nil || len(exc) != 0 {
		t.Errorf("exceptions = %v, %v", exc, err)
	}
	if n, err := jm.Restarts(ctx, capturedJob); err != nil || n != 0 {
		t.Errorf("restarts = %d, %v", n, err)
	}
	m, err := jm.VertexMetrics(ctx, capturedJob, v.ID, "capture_enrich_enriched[167]__Writer.numRecordsSend", "accumulateBusyTimeMs")
	if err != nil {
		t.Fatal(err)
	}
	if busy := m["accumulateBusyTimeMs"]; busy.Sum != 3059 || busy.Max != 1553 {
		t.Errorf("busy time = %+v", busy)
	}
	if _, ok := m["capture_enrich_enriched[167]__Writer.numRecordsSend"]; !ok {
		t.Errorf("writer metric missing: %v", m)
	}

	loc, err := jm.StopWithSavepoint(ctx, capturedJob, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, "file:/") || !strings.Contains(loc, "savepoint-750d92-") {
		t.Errorf("savepoint location = %q", loc)
	}
}

func TestMetricNumberTakesFlinksStrings(t *testing.T) {
	var m []Metric
	body := `[{"id":"a","min":"NaN","max":"Infinity","avg":"-Infinity","sum":0.0},{"id":"b","min":1.5,"max":2,"avg":1.75,"sum":3.5}]`
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(m[0].Min)) || !math.IsInf(float64(m[0].Max), 1) || !math.IsInf(float64(m[0].Avg), -1) || m[1].Sum != 3.5 {
		t.Errorf("decoded %+v", m)
	}
	var bad MetricNumber
	if err := json.Unmarshal([]byte(`"lots"`), &bad); err == nil {
		t.Error(`"lots" decoded as a number`)
	}
}

func TestJobManagerUnknownJob(t *testing.T) {
	jm := serveCaptured(t)
	_, err := jm.Job(context.Background(), "0123456789abcdef0123456789abcdef")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("Job(unknown) = %v, want a 404 *APIError", err)
	}
	if !strings.Contains(err.Error(), "Job 0123456789abcdef0123456789abcdef not found") {
		t.Errorf("Error() = %v", err)
	}
	// Flink answers the status of a job it does not know with a 500.
	if _, err := jm.JobStatus(context.Background(), "0123456789abcdef0123456789abcdef"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("JobStatus(unknown) = %v, want a 404 *APIError", err)
	}
}

// A job that started a moment ago has no numRestarts metric yet: it has
// not restarted.
func TestRestartsOfAJobWithoutTheMetricYetIsZero(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `[]`)
	}))
	defer srv.Close()
	jm, err := NewJobManager(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := jm.Restarts(context.Background(), "0123456789abcdef0123456789abcdef"); err != nil || n != 0 {
		t.Errorf("restarts = %d, %v; want 0 and no error", n, err)
	}
}
