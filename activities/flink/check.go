package flink

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/redact"
)

// CheckInput names the run's jobs and how many restarts each may take
// before the run gives up on it.
type CheckInput struct {
	Jobs        activities.FlinkJobs `json:"jobs"`
	MaxRestarts int                  `json:"max_restarts"`
}

// JobMetrics are one job's figures at a check, as the JobManager reports
// them.
type JobMetrics struct {
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	State    flinksql.JobState `json:"state"`
	Restarts int64             `json:"restarts"`

	CheckpointsCompleted int64 `json:"checkpoints_completed"`
	CheckpointsFailed    int64 `json:"checkpoints_failed"`
	// LastCheckpointMillis and LastCheckpointBytes describe the latest
	// completed checkpoint (end-to-end duration, state size).
	LastCheckpointMillis int64 `json:"last_checkpoint_ms"`
	LastCheckpointBytes  int64 `json:"last_checkpoint_bytes"`

	// RecordsIn are the records the job read from Kafka, RecordsOut those
	// it wrote, since it last (re)started.
	RecordsIn  int64 `json:"records_in"`
	RecordsOut int64 `json:"records_out"`

	// RootCause is the root cause of Flink's latest exception of the job,
	// once it has failed or restarted.
	RootCause string `json:"root_cause,omitempty"`
}

// CheckResult is one look at the run's jobs.
type CheckResult struct {
	Jobs []JobMetrics `json:"jobs"`
	// Failure is why the run cannot go on: a job ended (FAILED, CANCELED,
	// FINISHED: a streaming job never ends by itself while the run needs
	// it) or restarted more than MaxRestarts times. It names the job and
	// carries Flink's root cause; empty while both jobs are healthy.
	Failure string `json:"failure,omitempty"`
}

// CheckFlinkJobs looks once at the run's two jobs through the JobManager
// REST API: state, restarts, checkpoints and records in and out. It judges
// them (see CheckResult.Failure) but fails only when it cannot look; the
// workflow decides what a failure means for the run.
func (a *Activities) CheckFlinkJobs(ctx context.Context, in CheckInput) (CheckResult, error) {
	if err := ValidateCheckInput(in); err != nil {
		return CheckResult{}, err
	}
	if a.jobs == nil {
		return CheckResult{}, errNoJobManager()
	}
	var res CheckResult
	for _, job := range []struct{ name, id string }{
		{in.Jobs.EnrichJobName, in.Jobs.EnrichJobID}, {in.Jobs.SplitJobName, in.Jobs.SplitJobID},
	} {
		m, failure, err := a.checkJob(ctx, job.name, job.id, int64(in.MaxRestarts))
		if err != nil {
			return CheckResult{}, fmt.Errorf("check Flink job %s (%s): %w", job.name, job.id, err)
		}
		res.Jobs = append(res.Jobs, m)
		if failure != "" && res.Failure == "" {
			res.Failure = failure
		}
	}
	if res.Failure != "" {
		activities.ReporterOf(ctx).Log.Warn("Flink job failed", "Failure", res.Failure)
	}
	return res, nil
}

// errNoJobManager fails an activity that needs the JobManager's REST API
// on a worker configured without it.
func errNoJobManager() error {
	return temporal.NewNonRetryableApplicationError("FlinkURL must be configured", errtype.FlinkConfig, nil)
}

// ValidateCheckInput is CheckFlinkJobs' own check of its input.
func ValidateCheckInput(in CheckInput) error {
	switch {
	case in.Jobs.EnrichJobID == "" || in.Jobs.SplitJobID == "":
		return errtype.InvalidInputf("jobs: enrich_job_id %q and split_job_id %q must both be set", in.Jobs.EnrichJobID, in.Jobs.SplitJobID)
	case in.MaxRestarts < 0:
		return errtype.InvalidInputf("max_restarts is %d; want 0 or more", in.MaxRestarts)
	}
	return nil
}

// checkJob reads one job's figures and says why it failed, if it did.
func (a *Activities) checkJob(ctx context.Context, name, id string, maxRestarts int64) (JobMetrics, string, error) {
	m := JobMetrics{Name: name, ID: id}
	job, err := a.jobs.Job(ctx, id)
	var apiErr *flinksql.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		return m, fmt.Sprintf("Flink job %s (%s) is unknown to the JobManager (was it restarted without its jobs?)", name, id), nil
	}
	if err != nil {
		return m, "", err
	}
	m.State = job.State
	m.RecordsIn, m.RecordsOut = jobRecords(job)
	if m.Restarts, err = a.jobs.Restarts(ctx, id); err != nil {
		return m, "", err
	}
	checkpoints, err := a.jobs.Checkpoints(ctx, id)
	if err != nil {
		return m, "", err
	}
	m.CheckpointsCompleted, m.CheckpointsFailed = checkpoints.Counts.Completed, checkpoints.Counts.Failed
	if last := checkpoints.Latest.Completed; last != nil {
		m.LastCheckpointMillis, m.LastCheckpointBytes = last.EndToEndDuration, last.StateSize
	}

	ended := job.State.Terminal() || job.State == flinksql.JobCancelling
	if !ended && m.Restarts == 0 {
		return m, "", nil
	}
	if m.RootCause, err = a.rootCause(ctx, id); err != nil {
		return m, "", err
	}
	var failure string
	switch {
	case ended:
		failure = fmt.Sprintf("Flink job %s (%s) is %s", name, id, job.State)
	case m.Restarts > maxRestarts:
		failure = fmt.Sprintf("Flink job %s (%s) restarted %d times, more than max_flink_restarts %d", name, id, m.Restarts, maxRestarts)
	default:
		return m, "", nil
	}
	if m.RootCause != "" {
		failure += ": " + m.RootCause
	} else {
		failure += " (Flink recorded no exception)"
	}
	return m, failure, nil
}

// rootCause is the root cause of the job's newest exception, "" when it has
// none.
func (a *Activities) rootCause(ctx context.Context, id string) (string, error) {
	history, err := a.jobs.Exceptions(ctx, id)
	if err != nil || len(history) == 0 {
		return "", err
	}
	// The root cause goes into workflow history; should a Kafka client's
	// exception quote its credentials, they stay out. They are taken out
	// before RootCause shortens the text and could cut one in half.
	secrets := flinksql.JobSettings{KafkaProperties: a.kafka.Properties}.Secrets()
	newest := history[0]
	newest.Name, newest.Stacktrace = redact.Values(newest.Name, secrets...), redact.Values(newest.Stacktrace, secrets...)
	return newest.RootCause(), nil
}

// jobRecords are the records the job read from Kafka and wrote to Kafka
// since it last (re)started. Flink counts a source's Kafka reads as its
// vertex's read records and a sink's Kafka writes as its vertex's written
// records, and lists the vertices from sources to sinks; both jobs chain
// source and sink into one vertex.
func jobRecords(job flinksql.Job) (in, out int64) {
	if len(job.Vertices) == 0 {
		return 0, 0
	}
	return job.Vertices[0].Metrics.ReadRecords, job.Vertices[len(job.Vertices)-1].Metrics.WriteRecords
}
