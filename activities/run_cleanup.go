package activities

import (
	"context"
	"errors"
	"fmt"
)

// Cleanup undoes what a run created: it cancels the run's Flink jobs and,
// unless KeepTopics, deletes its topics and consumer groups. The workflow calls it at the end of
// every run, also a failed or cancelled one, so each step tolerates what is
// already gone.
func (a *Activities) Cleanup(ctx context.Context, in CleanupInput) error {
	var errs []error
	jobs := in.Jobs
	if jobs.EnrichJobName == "" && jobs.SplitJobName == "" {
		// The submission never answered (failed or cancelled half way), but
		// Flink may have accepted the jobs: cancel them by their run names.
		named := FlinkJobsOf(in.Names)
		jobs.EnrichJobName, jobs.SplitJobName = named.EnrichJobName, named.SplitJobName
	}
	if err := a.CancelFlinkJobs(ctx, jobs); err != nil {
		errs = append(errs, fmt.Errorf("cancel Flink jobs: %w", err))
	}
	if !in.KeepTopics {
		if err := a.DeleteTopics(ctx, in.Names); err != nil {
			errs = append(errs, fmt.Errorf("delete topics: %w", err))
		}
		// The groups' offsets point into the deleted topics; without them
		// the groups only clutter the cluster.
		if err := a.DeleteGroups(ctx, in.Names); err != nil {
			errs = append(errs, fmt.Errorf("delete consumer groups: %w", err))
		}
	}
	return errors.Join(errs...)
}
