package kafkaadmin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// RunningCheck reports whether owner's workflow is still running.
type RunningCheck func(ctx context.Context, owner Owner) (bool, error)

// WorkflowRunning asks Temporal, through c, whether an owner's workflow
// still runs. A workflow Temporal does not know (any more) has finished; so
// has one whose id now belongs to another execution chain.
func WorkflowRunning(c client.Client) RunningCheck {
	return func(ctx context.Context, owner Owner) (bool, error) {
		described, err := c.DescribeWorkflow(ctx, owner.WorkflowID, "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("describe workflow %s: %w", owner.WorkflowID, err)
		}
		info := described.RawResponse.GetWorkflowExecutionInfo()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return false, nil
		}
		first := info.GetFirstRunId()
		return first == "" || owner.FirstRunID == "" || first == owner.FirstRunID, nil
	}
}

// Leftover is what a finished run left on the cluster, as its ledger
// records it.
type Leftover struct {
	RunID  string `json:"run_id"`
	Owner  Owner  `json:"owner"`
	Ledger string `json:"ledger"`
	// Topics are the topics the run created, the ledger last.
	Topics []string `json:"topics"`
	Groups []string `json:"groups"`
	// FlinkJobs are the names of the run's Flink jobs; those still
	// running are cancelled.
	FlinkJobs []string `json:"flink_jobs"`
	// Kept is true when the run kept its topics on purpose (keep_topics).
	Kept bool `json:"kept,omitempty"`
}

// Sweeper finds and removes the leftovers of finished runs: runs whose
// ledger names a workflow of its namespace that no longer runs. A topic
// without an owner record, a run of another namespace or outside Temporal,
// and a run still running are never touched.
type Sweeper struct {
	acts      *Activities
	namespace string
	running   RunningCheck
	// IncludeKept also removes runs that kept their topics on purpose.
	IncludeKept bool
}

// NewSweeper returns a sweeper of the runs of namespace; jobs may be nil
// (then Flink jobs are not cancelled, which Remove reports).
func NewSweeper(kafka *kafkaeos.Conn, jobs *flinksql.JobManager, namespace string, running RunningCheck) *Sweeper {
	return &Sweeper{acts: New(kafka, jobs), namespace: namespace, running: running}
}

// Find lists the leftovers of finished runs. A run it cannot judge (its
// ledger unreadable, Temporal not answering) is skipped, and the reasons
// are returned with the leftovers it did find.
func (s *Sweeper) Find(ctx context.Context) ([]Leftover, error) {
	listed, err := s.acts.kafka.Admin.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var leftovers []Leftover
	var errs []error
	for _, ledger := range listed.Names() {
		if !strings.HasPrefix(ledger, "flowproof.") || !strings.HasSuffix(ledger, ".ledger") {
			continue
		}
		leftover, found, err := s.judge(ctx, ledger)
		if err != nil {
			errs = append(errs, err)
		}
		if found {
			leftovers = append(leftovers, leftover)
		}
	}
	return leftovers, errors.Join(errs...)
}

// judge reads ledger and says whether its run is a leftover.
func (s *Sweeper) judge(ctx context.Context, ledger string) (Leftover, bool, error) {
	state, err := readLedger(ctx, s.acts.kafka, ledger)
	if err != nil {
		return Leftover{}, false, err
	}
	if state.owner == nil || state.owner.Owner.WorkflowID == "" || state.owner.Owner.Namespace != s.namespace {
		return Leftover{}, false, nil
	}
	if state.kept && !s.IncludeKept {
		return Leftover{}, false, nil
	}
	owner := state.owner.Owner
	running, err := s.running(ctx, owner)
	if err != nil || running {
		return Leftover{}, false, err
	}
	jobs := activities.FlinkJobsOf(state.owner.Names)
	return Leftover{
		RunID: state.owner.Names.RunID, Owner: owner, Ledger: ledger,
		Topics: state.createdTopics(ledger), Groups: slices.Clone(state.groups),
		FlinkJobs: compactUnique(jobs.EnrichJobName, jobs.SplitJobName), Kept: state.kept,
	}, true, nil
}

// Remove cancels the leftover's Flink jobs and deletes its groups and
// topics, the ledger last.
func (s *Sweeper) Remove(ctx context.Context, l Leftover, logger log.Logger) error {
	var errs []error
	if len(l.FlinkJobs) > 0 {
		jobs := activities.FlinkJobs{EnrichJobName: l.FlinkJobs[0]}
		if len(l.FlinkJobs) > 1 {
			jobs.SplitJobName = l.FlinkJobs[1]
		}
		if err := s.acts.cancelFlinkJobs(ctx, jobs, activities.Reporter{Log: logger}); err != nil {
			errs = append(errs, fmt.Errorf("run %s: cancel Flink jobs: %w", l.RunID, err))
		}
	}
	state := ledgerState{topics: map[string]topicState{}, groups: l.Groups}
	for _, topic := range l.Topics {
		state.topics[topic] = topicCreated
	}
	if err := s.acts.removeRun(ctx, l.Ledger, state, logger); err != nil {
		errs = append(errs, fmt.Errorf("run %s: %w", l.RunID, err))
	}
	return errors.Join(errs...)
}

// Sweep removes every leftover but self's, and returns those it removed.
func (s *Sweeper) Sweep(ctx context.Context, self Owner, logger log.Logger) ([]Leftover, error) {
	leftovers, err := s.Find(ctx)
	var removed []Leftover
	for _, l := range leftovers {
		if l.Owner.sameWorkflow(self) {
			continue
		}
		if rmErr := s.Remove(ctx, l, logger); rmErr != nil {
			err = errors.Join(err, rmErr)
			continue
		}
		logger.Info("leftovers of a finished run removed", "RunID", l.RunID, "WorkflowID", l.Owner.WorkflowID, "Topics", l.Topics, "Groups", l.Groups)
		removed = append(removed, l)
	}
	return removed, err
}
