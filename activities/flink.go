package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/flinksql"
)

// flinkClients talk to the Flink cluster: the SQL Gateway submits the
// jobs' SQL, the JobManager watches and cancels the jobs.
type flinkClients struct {
	gateway *flinksql.Gateway
	jobs    *flinksql.JobManager
}

func newFlinkClients(cfg Config) (flinkClients, error) {
	var fc flinkClients
	var err error
	// Without the addresses the Flink activities fail with a message saying
	// so, and every other activity still works.
	if cfg.SQLGatewayURL != "" {
		if fc.gateway, err = flinksql.NewGateway(cfg.SQLGatewayURL, flinksql.Options{}); err != nil {
			return flinkClients{}, fmt.Errorf("activities: SQL Gateway client: %w", err)
		}
	}
	if cfg.FlinkURL != "" {
		if fc.jobs, err = flinksql.NewJobManager(cfg.FlinkURL, flinksql.Options{}); err != nil {
			return flinkClients{}, fmt.Errorf("activities: JobManager client: %w", err)
		}
	}
	return fc, nil
}

// FlinkJobsOf names the Flink jobs of a run, without ids. A workflow can
// pass it to CancelFlinkJobs when SubmitFlinkJobs never returned.
//
// A job is named like its consumer group (flowproof.<run>.enrich, ...): both
// are per run and per job, and Kafka's name alphabet is a safe Flink job
// name.
func FlinkJobsOf(names RunNames) FlinkJobs {
	return FlinkJobs{EnrichJobName: names.EnrichGroup, SplitJobName: names.SplitGroup}
}

// transactionalIDPrefix is the exactly-once sink's prefix for a job. It
// stays the same when the job is submitted again for the same run, so the
// new job's sink aborts what an earlier one left open.
func transactionalIDPrefix(jobName string) string { return jobName + ".txn" }

// SubmitFlinkJobs starts the run's enrich job (raw -> enriched) and split
// job (responses -> final) through the SQL Gateway and waits until both run
// with all their tasks. A job of the same name that is already running
// (submitted by an earlier attempt whose answer was lost) is reused rather
// than submitted again, since two copies would write every record twice.
func (a *Activities) SubmitFlinkJobs(ctx context.Context, in SubmitFlinkJobsInput) (FlinkJobs, error) {
	if err := validateSubmitFlinkJobs(in); err != nil {
		return FlinkJobs{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", nil)
	}
	if a.flink.gateway == nil || a.flink.jobs == nil {
		return FlinkJobs{}, temporal.NewNonRetryableApplicationError("activities: SQLGatewayURL and FlinkURL must both be configured", "FlinkConfig", nil)
	}
	start := time.Now()
	jobs := FlinkJobsOf(in.Names)
	log := a.log.With(zap.String("run_id", in.Names.RunID))
	var stage atomic.Value // read by the heartbeat goroutine
	stage.Store("looking for running jobs")
	defer keepHeartbeating(ctx, func() any { return stage.Load() })()

	var err error
	if jobs.EnrichJobID, err = a.runningJob(ctx, jobs.EnrichJobName); err != nil {
		return FlinkJobs{}, err
	}
	if jobs.SplitJobID, err = a.runningJob(ctx, jobs.SplitJobName); err != nil {
		return FlinkJobs{}, err
	}
	reused := []string{}
	for _, id := range []string{jobs.EnrichJobID, jobs.SplitJobID} {
		if id != "" {
			reused = append(reused, id)
		}
	}

	if jobs.EnrichJobID == "" || jobs.SplitJobID == "" {
		interval := time.Duration(in.CheckpointIntervalMillis) * time.Millisecond
		props := map[string]string{
			"execution.runtime-mode":           "streaming",
			"execution.checkpointing.interval": strconv.FormatInt(in.CheckpointIntervalMillis, 10) + " ms",
		}
		if in.Parallelism > 0 {
			props["parallelism.default"] = strconv.Itoa(in.Parallelism)
		}
		stage.Store("opening SQL Gateway session")
		session, err := a.flink.gateway.OpenSession(ctx, flinksql.SessionConfig{Name: "flowproof-" + in.Names.RunID, Properties: props})
		if err != nil {
			return FlinkJobs{}, err
		}
		defer func() {
			// Jobs outlive their session; closing it only frees the gateway.
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := session.Close(closeCtx); err != nil {
				log.Warn("close SQL Gateway session", zap.Error(err))
			}
		}()
		if jobs.EnrichJobID == "" {
			stage.Store("submitting enrich job")
			jobs.EnrichJobID, err = session.SubmitJob(ctx, flinksql.EnrichJob{
				Name:                  jobs.EnrichJobName,
				Brokers:               a.cfg.KafkaBrokers,
				SourceTopic:           in.Names.RawTopic,
				SinkTopic:             in.Names.EnrichedTopic,
				GroupID:               in.Names.EnrichGroup,
				TransactionalIDPrefix: transactionalIDPrefix(jobs.EnrichJobName),
				Parallelism:           in.Parallelism,
				CheckpointInterval:    interval,
			})
			if err != nil {
				return FlinkJobs{}, fmt.Errorf("submit enrich job %s: %w", jobs.EnrichJobName, err)
			}
		}
		if jobs.SplitJobID == "" {
			stage.Store("submitting split job")
			jobs.SplitJobID, err = session.SubmitJob(ctx, flinksql.SplitJob{
				Name:                  jobs.SplitJobName,
				Brokers:               a.cfg.KafkaBrokers,
				SourceTopic:           in.Names.ResponsesTopic,
				SinkTopic:             in.Names.FinalTopic,
				GroupID:               in.Names.SplitGroup,
				TransactionalIDPrefix: transactionalIDPrefix(jobs.SplitJobName),
				Parallelism:           in.Parallelism,
				CheckpointInterval:    interval,
			})
			if err != nil {
				return FlinkJobs{}, fmt.Errorf("submit split job %s: %w", jobs.SplitJobName, err)
			}
		}
	}

	for _, job := range []struct{ name, id string }{{jobs.EnrichJobName, jobs.EnrichJobID}, {jobs.SplitJobName, jobs.SplitJobID}} {
		stage.Store("waiting for " + job.name + " to run")
		if err := a.waitJobRunning(ctx, job.id); err != nil {
			return FlinkJobs{}, fmt.Errorf("job %s (%s): %w", job.name, job.id, err)
		}
	}
	jobs.SubmitToRunningMillis = time.Since(start).Milliseconds()
	log.Info("Flink jobs running", zap.String("enrich_job_id", jobs.EnrichJobID), zap.String("split_job_id", jobs.SplitJobID),
		zap.Strings("reused", reused), zap.Int64("submit_to_running_ms", jobs.SubmitToRunningMillis))
	return jobs, nil
}

func validateSubmitFlinkJobs(in SubmitFlinkJobsInput) error {
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
func (a *Activities) runningJob(ctx context.Context, name string) (string, error) {
	all, err := a.flink.jobs.Jobs(ctx)
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
		a.log.Warn("cancelling a second copy of a Flink job", zap.String("job", name),
			zap.String("kept", live[0].ID), zap.String("cancelled", extra.ID))
		if err := a.flink.jobs.Cancel(ctx, extra.ID); err != nil {
			return "", fmt.Errorf("cancel second copy %s of job %s: %w", extra.ID, name, err)
		}
	}
	return live[0].ID, nil
}

// waitJobRunning waits until the job is RUNNING and so is each of its
// tasks: a job is RUNNING as soon as it is scheduled, while its tasks may
// still be deploying and reading nothing.
func (a *Activities) waitJobRunning(ctx context.Context, id string) error {
	if _, err := a.flink.jobs.WaitForState(ctx, id, flinksql.JobRunning); err != nil {
		return err
	}
	for {
		job, err := a.flink.jobs.Job(ctx, id)
		if err != nil {
			return err
		}
		if job.State != flinksql.JobRunning {
			return fmt.Errorf("job left RUNNING for %s while its tasks were starting", job.State)
		}
		waiting := 0
		for _, v := range job.Vertices {
			if v.Status != string(flinksql.JobRunning) {
				waiting++
			}
		}
		if waiting == 0 {
			return nil
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%d of %d tasks not yet running: %w", waiting, len(job.Vertices), ctx.Err())
		}
	}
}

// keepHeartbeating records a heartbeat with details() every second until
// the returned stop is called, so a long wait is not mistaken for a dead
// worker. Outside an activity (unit tests) it does nothing.
func keepHeartbeating(ctx context.Context, details func() any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				activity.RecordHeartbeat(ctx, details())
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
