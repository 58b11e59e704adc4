package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/flowproof/flowproof/flinksql"
)

// CancelFlinkJobs cancels the run's jobs and waits until Flink reports each
// one CANCELED (or otherwise ended). It cancels the jobs by id and, when
// the names are set, every not yet finished job of those names, so a job
// whose id never reached the workflow is cancelled too. Jobs that already
// ended or that Flink no longer knows are skipped, so cancelling twice is
// harmless.
func (a *Activities) CancelFlinkJobs(ctx context.Context, jobs FlinkJobs) error {
	ids := make([]string, 0, 2)
	for _, id := range []string{jobs.EnrichJobID, jobs.SplitJobID} {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	names := make([]string, 0, 2)
	for _, name := range []string{jobs.EnrichJobName, jobs.SplitJobName} {
		if name != "" {
			names = append(names, name)
		}
	}
	if len(ids) == 0 && len(names) == 0 {
		return nil
	}
	if a.flink.jobs == nil {
		return errors.New("activities: cannot cancel Flink jobs: FlinkURL is not configured")
	}
	if len(names) > 0 {
		all, err := a.flink.jobs.Jobs(ctx)
		if err != nil {
			return fmt.Errorf("list Flink jobs: %w", err)
		}
		for _, j := range all {
			if slices.Contains(names, j.Name) && !j.State.Terminal() && !slices.Contains(ids, j.ID) {
				ids = append(ids, j.ID)
			}
		}
	}
	stop := keepHeartbeating(ctx, func() any { return ids })
	defer stop()

	var errs []error
	var cancelled []string
	for _, id := range ids {
		job, err := a.flink.jobs.Job(ctx, id)
		if isNotFound(err) {
			continue // Flink forgot it: a restarted cluster, or long ago
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("state of job %s: %w", id, err))
			continue
		}
		if job.State.Terminal() {
			continue
		}
		if err := a.flink.jobs.Cancel(ctx, id); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("cancel job %s (%s): %w", job.Name, id, err))
			continue
		}
		cancelled = append(cancelled, id)
	}
	for _, id := range cancelled {
		state, err := a.flink.jobs.WaitForState(ctx, id, flinksql.JobCanceled, flinksql.JobFailed, flinksql.JobFinished, flinksql.JobSuspended)
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("wait for job %s to be cancelled: %w", id, err))
			continue
		}
		if state != flinksql.JobCanceled && err == nil {
			a.log.Warn("Flink job ended otherwise while being cancelled", zap.String("job_id", id), zap.String("state", string(state)))
		}
	}
	if len(cancelled) > 0 {
		a.log.Info("Flink jobs cancelled", zap.Strings("job_ids", cancelled))
	}
	return errors.Join(errs...)
}

// isNotFound reports whether Flink answered 404: it does not know the job.
func isNotFound(err error) bool {
	var apiErr *flinksql.APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}
