package kafkaadmin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
)

// CleanupInput undoes what a run created.
type CleanupInput struct {
	Names      activities.RunNames  `json:"names"`
	Jobs       activities.FlinkJobs `json:"jobs"`
	KeepTopics bool                 `json:"keep_topics"`
	// Owner is the workflow the run belongs to (see PrepareTopicsInput).
	Owner Owner `json:"owner,omitzero"`
}

// Cleanup undoes what a run created: it cancels the run's Flink jobs and,
// unless KeepTopics, deletes the topics and consumer groups its ledger
// records as its own, the ledger last. A run whose ledger names another
// owner (its Prepare failed on names that were taken) deletes nothing and
// cancels only the jobs it knows by id; a run without a ledger deletes
// nothing either. The workflow calls it at the end
// of every run, also a failed or cancelled one (in a disconnected
// context), so each step tolerates what is already gone and cleaning up
// twice is harmless. With KeepTopics the ledger records that the topics
// were kept on purpose, so that no leftover sweep removes them.
func (a *Activities) Cleanup(ctx context.Context, in CleanupInput) error {
	rep := activities.ReporterOf(ctx)
	state, err := readLedger(ctx, a.kafka, in.Names.LedgerTopic)
	if err != nil {
		return fmt.Errorf("read the run's ledger: %w", err)
	}
	owned := state.ownedBy(in.Owner)
	var errs []error
	jobs := in.Jobs
	switch {
	case !owned && state.exists:
		// The names are another run's: its jobs are not ours to cancel.
		// (Without a ledger nobody claims them, and jobs of those names
		// are a leftover or this run's own.)
		jobs.EnrichJobName, jobs.SplitJobName = "", ""
	case jobs.EnrichJobName == "" && jobs.SplitJobName == "":
		// The submission never answered (failed or cancelled half way), but
		// Flink may have accepted the jobs: cancel them by their run names.
		named := activities.FlinkJobsOf(in.Names)
		jobs.EnrichJobName, jobs.SplitJobName = named.EnrichJobName, named.SplitJobName
	}
	if err := a.cancelFlinkJobs(ctx, jobs, rep); err != nil {
		errs = append(errs, fmt.Errorf("cancel Flink jobs: %w", err))
	}
	switch {
	case !owned:
		rep.Log.Info("the run owns no topics or groups; nothing deleted", "Ledger", in.Names.LedgerTopic, "LedgerExists", state.exists)
	case in.KeepTopics:
		if !state.kept {
			if err := writeLedger(ctx, a.kafka, in.Names.LedgerTopic, keptKey, in.Owner); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		if prepared := state.owner.Owner.TemporalRunID; prepared != "" && in.Owner.TemporalRunID != "" && prepared != in.Owner.TemporalRunID {
			rep.Log.Warn("the workflow was reset since it prepared its topics", "PreparedBy", prepared)
		}
		errs = append(errs, a.removeRun(ctx, in.Names.LedgerTopic, state, rep.Log))
	}
	return errors.Join(errs...)
}

// removeRun deletes the consumer groups and topics that state records as
// the run's, the ledger only when everything else is gone.
func (a *Activities) removeRun(ctx context.Context, ledger string, state ledgerState, logger log.Logger) error {
	topics := state.createdTopics(ledger)
	data := slices.DeleteFunc(slices.Clone(topics), func(t string) bool { return t == ledger })
	var errs []error
	if err := a.deleteTopics(ctx, data, logger); err != nil {
		errs = append(errs, fmt.Errorf("delete topics: %w", err))
	}
	// The groups' offsets point into the deleted topics; without them
	// the groups only clutter the cluster.
	if err := a.deleteGroups(ctx, state.groups, logger); err != nil {
		errs = append(errs, fmt.Errorf("delete consumer groups: %w", err))
	}
	if len(errs) == 0 && state.ownsTopic(ledger) {
		if err := a.deleteTopics(ctx, []string{ledger}, logger); err != nil {
			errs = append(errs, fmt.Errorf("delete ledger: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteTopics deletes topics. A topic that does not exist (deleted by an
// earlier attempt) is not an error.
func (a *Activities) deleteTopics(ctx context.Context, topics []string, logger log.Logger) error {
	if len(topics) == 0 {
		return nil
	}
	responses, err := a.kafka.Admin.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	var errs []error
	for _, r := range responses.Sorted() {
		switch {
		case r.Err == nil:
			logger.Info("topic deleted", "Topic", r.Topic)
		case errors.Is(r.Err, kerr.UnknownTopicOrPartition):
		default:
			errs = append(errs, fmt.Errorf("delete topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage))
		}
	}
	return errors.Join(errs...)
}

// deleteGroups deletes consumer groups, which would otherwise pile up on
// the cluster run after run. A group that does not exist is not an error.
func (a *Activities) deleteGroups(ctx context.Context, groups []string, logger log.Logger) error {
	if len(groups) == 0 {
		return nil
	}
	responses, err := a.kafka.Admin.DeleteGroups(ctx, groups...)
	if err != nil {
		return fmt.Errorf("delete consumer groups %v: %w", groups, err)
	}
	var errs []error
	for _, r := range responses.Sorted() {
		switch {
		case r.Err == nil:
			logger.Info("consumer group deleted", "Group", r.Group)
		case errors.Is(r.Err, kerr.GroupIDNotFound):
		default:
			errs = append(errs, fmt.Errorf("delete consumer group %s: %w", r.Group, r.Err))
		}
	}
	return errors.Join(errs...)
}

// cancelFlinkJobs cancels the run's jobs and waits until Flink reports each
// one CANCELED (or otherwise ended). It cancels the jobs by id and every
// not yet finished job of their names, so a job whose id never reached the
// workflow is cancelled too. Jobs that already ended or that Flink no
// longer knows are skipped.
func (a *Activities) cancelFlinkJobs(ctx context.Context, jobs activities.FlinkJobs, rep activities.Reporter) error {
	ids := compactUnique(jobs.EnrichJobID, jobs.SplitJobID)
	names := compactUnique(jobs.EnrichJobName, jobs.SplitJobName)
	if len(ids) == 0 && len(names) == 0 {
		return nil
	}
	if a.jobs == nil {
		return errors.New("cannot cancel Flink jobs: FlinkURL is not configured")
	}
	ids, err := a.addRunningJobsNamed(ctx, ids, names)
	if err != nil {
		return err
	}
	defer rep.HeartbeatEvery(ctx, func() any { return ids })()

	cancelled, errs := a.requestCancel(ctx, ids)
	for _, id := range cancelled {
		state, err := a.jobs.WaitForState(ctx, id, flinksql.JobCanceled, flinksql.JobFailed, flinksql.JobFinished, flinksql.JobSuspended)
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("wait for job %s to be cancelled: %w", id, err))
			continue
		}
		if state != flinksql.JobCanceled && err == nil {
			rep.Log.Warn("Flink job ended otherwise while being cancelled", "JobID", id, "State", string(state))
		}
	}
	if len(cancelled) > 0 {
		rep.Log.Info("Flink jobs cancelled", "JobIDs", cancelled)
	}
	return errors.Join(errs...)
}

// addRunningJobsNamed adds to ids the not yet finished jobs named names.
func (a *Activities) addRunningJobsNamed(ctx context.Context, ids, names []string) ([]string, error) {
	if len(names) == 0 {
		return ids, nil
	}
	all, err := a.jobs.Jobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Flink jobs: %w", err)
	}
	for _, j := range all {
		if slices.Contains(names, j.Name) && !j.State.Terminal() && !slices.Contains(ids, j.ID) {
			ids = append(ids, j.ID)
		}
	}
	return ids, nil
}

// requestCancel asks Flink to cancel every job of ids that still runs, and
// returns those it asked.
func (a *Activities) requestCancel(ctx context.Context, ids []string) (cancelled []string, errs []error) {
	for _, id := range ids {
		state, err := a.jobs.JobStatus(ctx, id)
		if isNotFound(err) {
			continue // Flink forgot it: a restarted cluster, or long ago
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("state of job %s: %w", id, err))
			continue
		}
		if state.Terminal() {
			continue
		}
		if err := a.jobs.Cancel(ctx, id); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("cancel job %s: %w", id, err))
			continue
		}
		cancelled = append(cancelled, id)
	}
	return cancelled, errs
}

// compactUnique drops the empty and repeated values, keeping the order.
func compactUnique(values ...string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// isNotFound reports whether Flink answered 404: it does not know the job.
func isNotFound(err error) bool {
	var apiErr *flinksql.APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}
