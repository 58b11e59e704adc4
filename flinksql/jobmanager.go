package flinksql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JobManager is a client of the Flink JobManager's REST API (the same API
// the web UI uses).
type JobManager struct {
	rest *restClient
}

// NewJobManager returns a client of the JobManager REST API at baseURL
// (e.g. http://127.0.0.1:18081).
func NewJobManager(baseURL string, opts Options) (*JobManager, error) {
	rc, err := newRESTClient(baseURL, opts)
	if err != nil {
		return nil, err
	}
	return &JobManager{rest: rc}, nil
}

// ClusterOverview is the cluster's size and job counts.
type ClusterOverview struct {
	TaskManagers   int    `json:"taskmanagers"`
	SlotsTotal     int    `json:"slots-total"`
	SlotsAvailable int    `json:"slots-available"`
	JobsRunning    int    `json:"jobs-running"`
	JobsFinished   int    `json:"jobs-finished"`
	JobsCancelled  int    `json:"jobs-cancelled"`
	JobsFailed     int    `json:"jobs-failed"`
	FlinkVersion   string `json:"flink-version"`
	FlinkCommit    string `json:"flink-commit"`
}

// Overview asks for the cluster overview.
func (jm *JobManager) Overview(ctx context.Context) (ClusterOverview, error) {
	var out ClusterOverview
	if err := jm.rest.do(ctx, "GET", "/overview", retrySafe, nil, &out); err != nil {
		return out, fmt.Errorf("cluster overview: %w", err)
	}
	return out, nil
}

// TaskManager is one registered TaskManager.
type TaskManager struct {
	ID                 string `json:"id"`
	Path               string `json:"path"`
	DataPort           int    `json:"dataPort"`
	TimeSinceHeartbeat int64  `json:"timeSinceLastHeartbeat"`
	SlotsNumber        int    `json:"slotsNumber"`
	FreeSlots          int    `json:"freeSlots"`
	Hardware           struct {
		CPUCores       int   `json:"cpuCores"`
		PhysicalMemory int64 `json:"physicalMemory"`
		FreeMemory     int64 `json:"freeMemory"`
		ManagedMemory  int64 `json:"managedMemory"`
	} `json:"hardware"`
}

// TaskManagers lists the registered TaskManagers.
func (jm *JobManager) TaskManagers(ctx context.Context) ([]TaskManager, error) {
	var out struct {
		TaskManagers []TaskManager `json:"taskmanagers"`
	}
	if err := jm.rest.do(ctx, "GET", "/taskmanagers", retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("list TaskManagers: %w", err)
	}
	return out.TaskManagers, nil
}

// JobState is a Flink job status. FINISHED, CANCELED and FAILED are final
// (SUSPENDED is final for this JobManager only).
type JobState string

// Job states.
const (
	JobInitializing JobState = "INITIALIZING"
	JobCreated      JobState = "CREATED"
	JobRunning      JobState = "RUNNING"
	JobFailing      JobState = "FAILING"
	JobFailed       JobState = "FAILED"
	JobCancelling   JobState = "CANCELLING"
	JobCanceled     JobState = "CANCELED"
	JobFinished     JobState = "FINISHED"
	JobRestarting   JobState = "RESTARTING"
	JobSuspended    JobState = "SUSPENDED"
	JobReconciling  JobState = "RECONCILING"
)

// Terminal reports whether the job can no longer change state.
func (s JobState) Terminal() bool {
	switch s {
	case JobFinished, JobCanceled, JobFailed, JobSuspended:
		return true
	}
	return false
}

// JobSummary is one line of the job list.
type JobSummary struct {
	ID    string     `json:"jid"`
	Name  string     `json:"name"`
	State JobState   `json:"state"`
	Start int64      `json:"start-time"`
	Tasks TaskCounts `json:"tasks"`
}

// TaskCounts counts a job's tasks (parallel subtasks of all its vertices)
// by state.
type TaskCounts struct {
	Total   int `json:"total"`
	Running int `json:"running"`
}

// Jobs lists the cluster's jobs, running and recent. Unlike Job, it tells
// the jobs' states as they are now (see JobStatus).
func (jm *JobManager) Jobs(ctx context.Context) ([]JobSummary, error) {
	var out struct {
		Jobs []JobSummary `json:"jobs"`
	}
	if err := jm.rest.do(ctx, "GET", "/jobs/overview", retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out.Jobs, nil
}

// Vertex is one job vertex (a chain of operators run as one task).
type Vertex struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Parallelism int    `json:"parallelism"`
	Status      string `json:"status"`
	StartTime   int64  `json:"start-time"`
	// Metrics count records between tasks over the network; records read
	// from Kafka by a source and written to Kafka by a sink do not appear
	// here (see VertexMetrics).
	Metrics struct {
		ReadRecords  int64 `json:"read-records"`
		WriteRecords int64 `json:"write-records"`
	} `json:"metrics"`
}

// Job is the detail of one job.
type Job struct {
	ID         string           `json:"jid"`
	Name       string           `json:"name"`
	State      JobState         `json:"state"`
	StartTime  int64            `json:"start-time"`
	EndTime    int64            `json:"end-time"`
	Duration   int64            `json:"duration"`
	Timestamps map[string]int64 `json:"timestamps"`
	Vertices   []Vertex         `json:"vertices"`
}

// Job asks for a job's detail. The JobManager serves it from a cache of
// the job's execution graph that it refreshes every web.refresh-interval
// (3 s by default), so a state read here may be that old; JobStatus and
// Jobs are not.
func (jm *JobManager) Job(ctx context.Context, jobID string) (Job, error) {
	var out Job
	if err := ValidateJobID(jobID); err != nil {
		return out, err
	}
	if err := jm.rest.do(ctx, "GET", "/jobs/"+jobID, retrySafe, nil, &out); err != nil {
		return out, fmt.Errorf("job %s: %w", jobID, err)
	}
	return out, nil
}

// JobStatus asks for a job's state as the JobManager knows it now, not
// from the cache Job reads: waiting on Job's answer costs up to a refresh
// interval at every change of state.
func (jm *JobManager) JobStatus(ctx context.Context, jobID string) (JobState, error) {
	if err := ValidateJobID(jobID); err != nil {
		return "", err
	}
	var out struct {
		Status JobState `json:"status"`
	}
	err := jm.rest.do(ctx, "GET", "/jobs/"+jobID+"/status", retrySafe, nil, &out)
	if err == nil {
		return out.Status, nil
	}
	// Flink answers a job it does not know here with a 500, where Job
	// answers 404; Job's answer tells that case apart.
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusInternalServerError {
		if _, jobErr := jm.Job(ctx, jobID); jobErr != nil {
			return "", jobErr
		}
	}
	return "", fmt.Errorf("status of job %s: %w", jobID, err)
}

// WaitForState polls the job until it is in one of states and returns that
// state. It fails early when the job reaches a final state not asked for
// (a FAILED job never becomes RUNNING), naming the job's latest exception.
func (jm *JobManager) WaitForState(ctx context.Context, jobID string, states ...JobState) (JobState, error) {
	if len(states) == 0 {
		return "", fmt.Errorf("flinksql: WaitForState(%s): no state to wait for", jobID)
	}
	var last JobState
	for {
		state, err := jm.JobStatus(ctx, jobID)
		if err != nil {
			return last, err
		}
		last = state
		if slices.Contains(states, state) {
			return state, nil
		}
		if state.Terminal() {
			cause := ""
			if exc, err := jm.Exceptions(ctx, jobID); err == nil && len(exc) > 0 {
				cause = ": " + exc[0].RootCause()
			}
			return state, fmt.Errorf("flinksql: job %s is %s, waited for %v%s", jobID, state, states, cause)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return last, fmt.Errorf("flinksql: job %s still %s, waited for %v: %w", jobID, last, states, err)
		}
	}
}

// Subtask is one parallel instance of a vertex and where it runs.
type Subtask struct {
	Index  int    `json:"subtask"`
	Status string `json:"status"`
	// TaskManagerID is the TaskManager's resource id (the local stack sets
	// it to the TaskManager's process name).
	TaskManagerID string `json:"taskmanager-id"`
}

// Subtasks lists the subtasks of a job's vertex with the TaskManagers they
// run on.
func (jm *JobManager) Subtasks(ctx context.Context, jobID, vertexID string) ([]Subtask, error) {
	if err := ValidateJobID(jobID); err != nil {
		return nil, err
	}
	var out struct {
		Subtasks []Subtask `json:"subtasks"`
	}
	if err := jm.rest.do(ctx, "GET", "/jobs/"+jobID+"/vertices/"+url.PathEscape(vertexID), retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("subtasks of vertex %s of job %s: %w", vertexID, jobID, err)
	}
	return out.Subtasks, nil
}

// Metric is one metric value; aggregated metrics fill Sum/Min/Max/Avg,
// plain ones Value.
type Metric struct {
	ID    string       `json:"id"`
	Value string       `json:"value,omitempty"`
	Min   MetricNumber `json:"min,omitempty"`
	Max   MetricNumber `json:"max,omitempty"`
	Avg   MetricNumber `json:"avg,omitempty"`
	Sum   MetricNumber `json:"sum,omitempty"`
}

// MetricNumber is an aggregated metric value. Flink writes it as a JSON
// number, or as a string ("NaN", "Infinity") for values JSON numbers
// cannot hold, e.g. the minimum over subtasks that reported nothing yet.
type MetricNumber float64

// UnmarshalJSON accepts a number or a string holding one.
func (n *MetricNumber) UnmarshalJSON(b []byte) error {
	text := string(b)
	if unquoted, err := strconv.Unquote(text); err == nil {
		text = unquoted
	}
	if text == "null" {
		*n = 0
		return nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("metric value %s: %w", b, err)
	}
	*n = MetricNumber(f)
	return nil
}

// Float is the metric's value as a number (Value for plain metrics).
func (m Metric) Float() (float64, error) {
	return strconv.ParseFloat(m.Value, 64)
}

// MetricNames lists the metrics a vertex offers, as ids like
// "0.numRecordsOut" or "0.Source__x.numRecordsIn" (subtask index first).
func (jm *JobManager) MetricNames(ctx context.Context, jobID, vertexID string) ([]string, error) {
	if err := ValidateJobID(jobID); err != nil {
		return nil, err
	}
	var out []Metric
	p := "/jobs/" + jobID + "/vertices/" + url.PathEscape(vertexID) + "/metrics"
	if err := jm.rest.do(ctx, "GET", p, retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("metrics of vertex %s of job %s: %w", vertexID, jobID, err)
	}
	names := make([]string, len(out))
	for i, m := range out {
		names[i] = m.ID
	}
	return names, nil
}

// VertexMetrics returns the named metrics of a vertex summed over its
// subtasks (with min, max and average), e.g. "numRecordsOut",
// "numRecordsOutPerSecond", or an operator's "Source__raw.numRecordsIn".
func (jm *JobManager) VertexMetrics(ctx context.Context, jobID, vertexID string, names ...string) (map[string]Metric, error) {
	if err := ValidateJobID(jobID); err != nil {
		return nil, err
	}
	q := url.Values{"get": {strings.Join(names, ",")}, "agg": {"sum,min,max,avg"}}
	p := "/jobs/" + jobID + "/vertices/" + url.PathEscape(vertexID) + "/subtasks/metrics?" + q.Encode()
	var out []Metric
	if err := jm.rest.do(ctx, "GET", p, retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("metrics %v of vertex %s of job %s: %w", names, vertexID, jobID, err)
	}
	return metricMap(out), nil
}

// JobMetrics returns job-level metrics such as "numRestarts", "uptime" or
// "lastCheckpointDuration".
func (jm *JobManager) JobMetrics(ctx context.Context, jobID string, names ...string) (map[string]Metric, error) {
	if err := ValidateJobID(jobID); err != nil {
		return nil, err
	}
	p := "/jobs/" + jobID + "/metrics?" + url.Values{"get": {strings.Join(names, ",")}}.Encode()
	var out []Metric
	if err := jm.rest.do(ctx, "GET", p, retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("metrics %v of job %s: %w", names, jobID, err)
	}
	return metricMap(out), nil
}

func metricMap(list []Metric) map[string]Metric {
	m := make(map[string]Metric, len(list))
	for _, v := range list {
		m[v.ID] = v
	}
	return m
}

// Restarts is the job's numRestarts metric. The JobManager fetches
// metrics from the TaskManagers every few seconds, so a job that started a
// moment ago may not report it yet; it has not restarted then, and
// Restarts says 0.
func (jm *JobManager) Restarts(ctx context.Context, jobID string) (int64, error) {
	m, err := jm.JobMetrics(ctx, jobID, "numRestarts")
	if err != nil {
		return 0, err
	}
	v, ok := m["numRestarts"]
	if !ok {
		return 0, nil
	}
	f, err := v.Float()
	if err != nil {
		return 0, fmt.Errorf("flinksql: job %s: numRestarts %q: %w", jobID, v.Value, err)
	}
	return int64(f), nil
}

// CheckpointCounts are the job's checkpoint counters.
type CheckpointCounts struct {
	Restored   int64 `json:"restored"`
	Total      int64 `json:"total"`
	InProgress int64 `json:"in_progress"`
	Completed  int64 `json:"completed"`
	Failed     int64 `json:"failed"`
}

// CheckpointStats is the summary of a job's checkpoints.
type CheckpointStats struct {
	Counts CheckpointCounts `json:"counts"`
	Latest struct {
		Completed *struct {
			ID                int64  `json:"id"`
			LatestAckTime     int64  `json:"latest_ack_timestamp"`
			EndToEndDuration  int64  `json:"end_to_end_duration"`
			StateSize         int64  `json:"state_size"`
			ExternalPath      string `json:"external_path"`
			CheckpointType    string `json:"checkpoint_type"`
			TriggerTimestamp  int64  `json:"trigger_timestamp"`
			NumAcknowledgedST int    `json:"num_acknowledged_subtasks"`
		} `json:"completed"`
		Failed *struct {
			ID             int64  `json:"id"`
			FailureMessage string `json:"failure_message"`
		} `json:"failed"`
	} `json:"latest"`
}

// Checkpoints asks for the job's checkpoint statistics.
func (jm *JobManager) Checkpoints(ctx context.Context, jobID string) (CheckpointStats, error) {
	var out CheckpointStats
	if err := ValidateJobID(jobID); err != nil {
		return out, err
	}
	if err := jm.rest.do(ctx, "GET", "/jobs/"+jobID+"/checkpoints", retrySafe, nil, &out); err != nil {
		return out, fmt.Errorf("checkpoints of job %s: %w", jobID, err)
	}
	return out, nil
}

// JobException is one entry of a job's exception history, newest first.
type JobException struct {
	Name       string `json:"exceptionName"`
	Stacktrace string `json:"stacktrace"`
	Timestamp  int64  `json:"timestamp"`
	TaskName   string `json:"taskName"`
	Endpoint   string `json:"endpoint"`
}

// RootCause is the first line of the innermost cause of the exception, at
// most maxRootCauseLen bytes: it goes into errors and workflow history.
func (e JobException) RootCause() string {
	if chain := causeChain(e.Stacktrace); len(chain) > 0 {
		return compact(firstLine(chain[len(chain)-1].String()), maxRootCauseLen)
	}
	return compact(firstLine(e.Name), maxRootCauseLen)
}

// Exceptions returns the job's exception history, newest first.
func (jm *JobManager) Exceptions(ctx context.Context, jobID string) ([]JobException, error) {
	if err := ValidateJobID(jobID); err != nil {
		return nil, err
	}
	var out struct {
		History struct {
			Entries []JobException `json:"entries"`
		} `json:"exceptionHistory"`
	}
	if err := jm.rest.do(ctx, "GET", "/jobs/"+jobID+"/exceptions", retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("exceptions of job %s: %w", jobID, err)
	}
	return out.History.Entries, nil
}

// Cancel asks Flink to cancel the job; it returns before the job is
// CANCELED (use WaitForState). Cancelling twice is harmless, so the request
// is retried like a read.
func (jm *JobManager) Cancel(ctx context.Context, jobID string) error {
	if err := ValidateJobID(jobID); err != nil {
		return err
	}
	if err := jm.rest.do(ctx, "PATCH", "/jobs/"+jobID+"?mode=cancel", retrySafe, nil, nil); err != nil {
		return fmt.Errorf("cancel job %s: %w", jobID, err)
	}
	return nil
}

// StopWithSavepoint stops the job after taking a savepoint into targetDir
// (empty: the cluster's state.savepoints.dir) and returns the savepoint's
// location once Flink reports it complete. drain emits MAX_WATERMARK first,
// which ends event-time windows; a later restart would see them closed.
func (jm *JobManager) StopWithSavepoint(ctx context.Context, jobID, targetDir string, drain bool) (string, error) {
	if err := ValidateJobID(jobID); err != nil {
		return "", err
	}
	var savepoint struct {
		Location string `json:"location"`
	}
	err := jm.runOperation(ctx, jobID, operation{
		name: "savepoint", trigger: "stop job " + jobID + " with savepoint",
		triggerPath: "/stop", statusPath: "/savepoints/",
		// Not retried once sent: a second stop request would race the first.
		safe: retryOnlyUnsent,
		body: struct {
			TargetDirectory string `json:"targetDirectory,omitempty"`
			Drain           bool   `json:"drain"`
		}{targetDir, drain},
		pollEvery: 250 * time.Millisecond,
	}, &savepoint)
	return savepoint.Location, err
}

// Checkpoint asks the job for a checkpoint now, besides its periodic ones,
// and returns the checkpoint's id once Flink reports it complete. With
// Kafka's exactly-once sink, a completed checkpoint is what commits the
// records the job wrote since the one before.
func (jm *JobManager) Checkpoint(ctx context.Context, jobID string) (int64, error) {
	if err := ValidateJobID(jobID); err != nil {
		return 0, err
	}
	var checkpoint struct {
		ID int64 `json:"checkpointId"`
	}
	err := jm.runOperation(ctx, jobID, operation{
		name: "checkpoint", trigger: "trigger a checkpoint of job " + jobID,
		triggerPath: "/checkpoints", statusPath: "/checkpoints/",
		// A request sent twice asks for two checkpoints, which is harmless.
		safe:      retrySafe,
		body:      struct{}{},
		pollEvery: 100 * time.Millisecond,
	}, &checkpoint)
	return checkpoint.ID, err
}

// operation is one of Flink's asynchronous operations on a job: a POST to
// the job's triggerPath answers a request id, and the job's
// statusPath<request id> says IN_PROGRESS until the operation is
// COMPLETED, with its result or its failure.
type operation struct {
	name        string // in errors: "savepoint", "checkpoint"
	trigger     string // in errors: what the POST does
	triggerPath string
	statusPath  string
	safe        idempotency // of the POST
	body        any
	pollEvery   time.Duration
}

// runOperation starts op on the job and polls it until it completes, then
// decodes the operation's result into result.
func (jm *JobManager) runOperation(ctx context.Context, jobID string, op operation, result any) error {
	var started struct {
		RequestID string `json:"request-id"`
	}
	if err := jm.rest.do(ctx, "POST", "/jobs/"+jobID+op.triggerPath, op.safe, op.body, &started); err != nil {
		return fmt.Errorf("%s: %w", op.trigger, err)
	}
	if started.RequestID == "" {
		return fmt.Errorf("flinksql: %s: answer has no request-id", op.trigger)
	}
	p := "/jobs/" + jobID + op.statusPath + url.PathEscape(started.RequestID)
	for {
		var status struct {
			Status struct {
				ID string `json:"id"`
			} `json:"status"`
			Operation json.RawMessage `json:"operation"`
		}
		if err := jm.rest.do(ctx, "GET", p, retrySafe, nil, &status); err != nil {
			return fmt.Errorf("%s of job %s: %w", op.name, jobID, err)
		}
		if status.Status.ID == "COMPLETED" {
			var failure struct {
				Cause json.RawMessage `json:"failure-cause"`
			}
			if err := json.Unmarshal(status.Operation, &failure); err != nil {
				return fmt.Errorf("flinksql: %s of job %s: answer: %w", op.name, jobID, err)
			}
			if len(failure.Cause) > 0 && string(failure.Cause) != "null" {
				return fmt.Errorf("flinksql: %s of job %s failed: %s", op.name, jobID, operationFailure(failure.Cause))
			}
			if err := json.Unmarshal(status.Operation, result); err != nil {
				return fmt.Errorf("flinksql: %s of job %s: answer: %w", op.name, jobID, err)
			}
			return nil
		}
		if err := sleep(ctx, op.pollEvery); err != nil {
			return fmt.Errorf("flinksql: %s of job %s still %s: %w", op.name, jobID, status.Status.ID, err)
		}
	}
}

func operationFailure(raw json.RawMessage) string {
	var cause struct {
		Class      string `json:"class"`
		Stacktrace string `json:"stack-trace"`
	}
	if err := json.Unmarshal(raw, &cause); err != nil || cause.Stacktrace == "" {
		return string(raw)
	}
	if chain := causeChain(cause.Stacktrace); len(chain) > 0 {
		return firstLine(chain[len(chain)-1].String())
	}
	return firstLine(cause.Stacktrace)
}

// ValidateJobID keeps caller text out of URL paths: a Flink job id is 32
// lower-case hex digits.
func ValidateJobID(id string) error {
	if len(id) != 32 {
		return fmt.Errorf("flinksql: job id %q: want 32 hex digits", id)
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("flinksql: job id %q: want 32 hex digits", id)
		}
	}
	return nil
}
