// Package flink starts a run's two Flink SQL jobs (enrich and split)
// through the SQL Gateway and waits until they run.
package flink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
)

// Activities holds the Flink clients and how the jobs reach Kafka: the SQL
// Gateway submits the jobs' SQL, the JobManager watches them. Either
// client is nil when the worker lacks its address; the activity then fails
// with a message saying so.
type Activities struct {
	kafka   Kafka
	gateway *flinksql.Gateway
	jobs    *flinksql.JobManager
}

// New returns the Flink activities.
func New(kafka Kafka, gateway *flinksql.Gateway, jobs *flinksql.JobManager) *Activities {
	return &Activities{kafka: kafka, gateway: gateway, jobs: jobs}
}

// SubmitInput starts the enrich and split jobs of a run.
type SubmitInput struct {
	Names                    activities.RunNames `json:"names"`
	Parallelism              int                 `json:"parallelism"`
	CheckpointIntervalMillis int64               `json:"checkpoint_interval_ms"`
}

// TransactionalIDPrefix is the exactly-once sink's prefix for a job. It
// stays the same when the job is submitted again for the same run, so the
// new job's sink aborts what an earlier one left open.
func TransactionalIDPrefix(jobName string) string { return jobName + ".txn" }

// SubmitFlinkJobs starts the run's enrich job (raw -> enriched) and split
// job (responses -> final) through the SQL Gateway and waits until both run
// with all their tasks. A job of the same name that is already running
// (submitted by an earlier attempt whose answer was lost) is reused rather
// than submitted again, since two copies would write every record twice.
func (a *Activities) SubmitFlinkJobs(ctx context.Context, in SubmitInput) (activities.FlinkJobs, error) {
	if err := ValidateSubmitInput(in); err != nil {
		return activities.FlinkJobs{}, temporal.NewNonRetryableApplicationError("invalid input: "+err.Error(), errtype.InvalidInput, nil)
	}
	if a.gateway == nil || a.jobs == nil {
		return activities.FlinkJobs{}, temporal.NewNonRetryableApplicationError("SQLGatewayURL and FlinkURL must both be configured", errtype.FlinkConfig, nil)
	}
	start := time.Now()
	rep := activities.ReporterOf(ctx)
	var stage atomic.Value // read by the heartbeat goroutine
	stage.Store("looking for running jobs")
	defer rep.HeartbeatEvery(ctx, stage.Load)()

	jobs := activities.FlinkJobsOf(in.Names)
	var err error
	if jobs.EnrichJobID, err = a.runningJob(ctx, jobs.EnrichJobName, rep); err != nil {
		return activities.FlinkJobs{}, err
	}
	if jobs.SplitJobID, err = a.runningJob(ctx, jobs.SplitJobName, rep); err != nil {
		return activities.FlinkJobs{}, err
	}
	reused := compact(jobs.EnrichJobID, jobs.SplitJobID)
	if jobs.EnrichJobID == "" || jobs.SplitJobID == "" {
		if err := a.submitMissing(ctx, in, &jobs, &stage, rep); err != nil {
			return activities.FlinkJobs{}, err
		}
	}
	for _, job := range []struct{ name, id string }{{jobs.EnrichJobName, jobs.EnrichJobID}, {jobs.SplitJobName, jobs.SplitJobID}} {
		stage.Store("waiting for " + job.name + " to run")
		if err := a.waitJobRunning(ctx, job.id); err != nil {
			return activities.FlinkJobs{}, fmt.Errorf("job %s (%s): %w", job.name, job.id, err)
		}
	}
	jobs.SubmitToRunningMillis = time.Since(start).Milliseconds()
	rep.Log.Info("Flink jobs running", "EnrichJobID", jobs.EnrichJobID, "SplitJobID", jobs.SplitJobID,
		"Reused", reused, "SubmitToRunningMillis", jobs.SubmitToRunningMillis)
	return jobs, nil
}

// submitMissing submits the jobs of jobs that have no id yet, and sets
// their ids. Each job has a SQL Gateway session of its own, so that the
// gateway plans them at the same time: planning is most of a submission,
// and on a fresh stack the two took 4.7 and 2.6 s one after the other.
func (a *Activities) submitMissing(ctx context.Context, in SubmitInput, jobs *activities.FlinkJobs, stage *atomic.Value, rep activities.Reporter) error {
	props := map[string]string{
		"execution.runtime-mode":           "streaming",
		"execution.checkpointing.interval": strconv.FormatInt(in.CheckpointIntervalMillis, 10) + " ms",
		// Without object reuse Flink deep-copies every row between chained
		// operators, in split each UNNESTed row with its whole array: 30%
		// of the TaskManagers' CPU (docs/performance.md). The planner's
		// operators do not keep rows they pass on; every hop is verified.
		"pipeline.object-reuse": "true",
	}
	if in.Parallelism > 0 {
		props["parallelism.default"] = strconv.Itoa(in.Parallelism)
	}
	enrich, split := JobSettings(in, a.kafka)
	type submission struct {
		name string
		job  flinksql.SQLJob
		id   *string
	}
	var missing []submission
	if jobs.EnrichJobID == "" {
		missing = append(missing, submission{jobs.EnrichJobName, enrich, &jobs.EnrichJobID})
	}
	if jobs.SplitJobID == "" {
		missing = append(missing, submission{jobs.SplitJobName, split, &jobs.SplitJobID})
	}
	stage.Store(fmt.Sprintf("submitting %d jobs", len(missing)))
	errs := make([]error, len(missing))
	var wg sync.WaitGroup
	for i, m := range missing {
		wg.Go(func() {
			id, err := a.submitInSession(ctx, m.name, props, m.job, rep)
			if err != nil {
				errs[i] = fmt.Errorf("submit job %s: %w", m.name, err)
				return
			}
			*m.id = id
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// submitInSession submits job in a SQL Gateway session of its own.
func (a *Activities) submitInSession(ctx context.Context, name string, props map[string]string, job flinksql.SQLJob, rep activities.Reporter) (string, error) {
	session, err := a.gateway.OpenSession(ctx, flinksql.SessionConfig{Name: name, Properties: props})
	if err != nil {
		return "", err
	}
	defer func() {
		// Jobs outlive their session; closing it only frees the gateway.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := session.Close(closeCtx); err != nil {
			rep.Log.Warn("close SQL Gateway session", "Job", name, "Error", err)
		}
	}()
	return session.SubmitJob(ctx, job)
}

// JobSettings are the run's enrich and split jobs as SubmitFlinkJobs
// submits them to Flink, reading from and writing to Kafka as kafka says.
func JobSettings(in SubmitInput, kafka Kafka) (flinksql.EnrichJob, flinksql.SplitJob) {
	jobs := activities.FlinkJobsOf(in.Names)
	settings := func(name, source, sink, group string) flinksql.JobSettings {
		return flinksql.JobSettings{
			Name:                  name,
			Brokers:               kafka.Brokers,
			KafkaProperties:       kafka.Properties,
			SourceTopic:           source,
			SinkTopic:             sink,
			GroupID:               group,
			TransactionalIDPrefix: TransactionalIDPrefix(name),
			Parallelism:           in.Parallelism,
			CheckpointInterval:    time.Duration(in.CheckpointIntervalMillis) * time.Millisecond,
		}
	}
	return flinksql.EnrichJob(settings(jobs.EnrichJobName, in.Names.RawTopic, in.Names.EnrichedTopic, in.Names.EnrichGroup)),
		flinksql.SplitJob(settings(jobs.SplitJobName, in.Names.ResponsesTopic, in.Names.FinalTopic, in.Names.SplitGroup))
}

// compact drops the empty values.
func compact(values ...string) []string {
	out := []string{}
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// ValidateSubmitInput is SubmitFlinkJobs' own check of its input.
func ValidateSubmitInput(in SubmitInput) error {
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"Names.RunID", in.Names.RunID},
		{"Names.RawTopic", in.Names.RawTopic},
		{"Names.EnrichedTopic", in.Names.EnrichedTopic},
		{"Names.ResponsesTopic", in.Names.ResponsesTopic},
		{"Names.FinalTopic", in.Names.FinalTopic},
		{"Names.EnrichGroup", in.Names.EnrichGroup},
		{"Names.SplitGroup", in.Names.SplitGroup},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("SubmitFlinkJobsInput.%s is empty", f.name))
		}
	}
	if in.Names.EnrichGroup != "" && in.Names.EnrichGroup == in.Names.SplitGroup {
		errs = append(errs, fmt.Errorf("SubmitFlinkJobsInput.Names: EnrichGroup and SplitGroup are both %q; they name the two jobs and must differ", in.Names.EnrichGroup))
	}
	if in.Parallelism < 0 {
		errs = append(errs, fmt.Errorf("SubmitFlinkJobsInput.Parallelism must not be negative (0: cluster default), got %d", in.Parallelism))
	}
	if in.CheckpointIntervalMillis < flinksql.MinCheckpointInterval.Milliseconds() {
		errs = append(errs, fmt.Errorf("SubmitFlinkJobsInput.CheckpointIntervalMillis must be at least %d, got %d",
			flinksql.MinCheckpointInterval.Milliseconds(), in.CheckpointIntervalMillis))
	}
	return errors.Join(errs...)
}

// runningJob returns the id of the not yet finished job named name, or ""
// if there is none. Should there be several (two attempts that raced), the
// oldest is kept and the others are cancelled, so the run never has two
// copies of a job writing the same output.
func (a *Activities) runningJob(ctx context.Context, name string, rep activities.Reporter) (string, error) {
	all, err := a.jobs.Jobs(ctx)
	if err != nil {
		return "", fmt.Errorf("look for running job %s: %w", name, err)
	}
	var live []flinksql.JobSummary
	for _, j := range all {
		if j.Name == name && !j.State.Terminal() {
			live = append(live, j)
		}
	}
	if len(live) == 0 {
		return "", nil
	}
	slices.SortFunc(live, func(x, y flinksql.JobSummary) int { return int(x.Start - y.Start) })
	for _, extra := range live[1:] {
		rep.Log.Warn("cancelling a second copy of a Flink job", "Job", name, "Kept", live[0].ID, "Cancelled", extra.ID)
		if err := a.jobs.Cancel(ctx, extra.ID); err != nil {
			return "", fmt.Errorf("cancel second copy %s of job %s: %w", extra.ID, name, err)
		}
	}
	return live[0].ID, nil
}

// waitJobRunning waits until the job is RUNNING and so is each of its
// tasks: a job is RUNNING as soon as it is scheduled, while its tasks may
// still be deploying and reading nothing. The task counts come from the
// job list, which tells them as they are now (the job's detail may be a
// refresh interval old; see flinksql.JobManager.Job).
func (a *Activities) waitJobRunning(ctx context.Context, id string) error {
	if _, err := a.jobs.WaitForState(ctx, id, flinksql.JobRunning); err != nil {
		return err
	}
	for {
		all, err := a.jobs.Jobs(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(j flinksql.JobSummary) bool { return j.ID == id })
		if i < 0 {
			return fmt.Errorf("job %s is not in the JobManager's job list", id)
		}
		job := all[i]
		if job.State != flinksql.JobRunning {
			return fmt.Errorf("job left RUNNING for %s while its tasks were starting", job.State)
		}
		if job.Tasks.Total > 0 && job.Tasks.Running == job.Tasks.Total {
			return nil
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%d of %d tasks not yet running: %w", job.Tasks.Total-job.Tasks.Running, job.Tasks.Total, ctx.Err())
		}
	}
}
