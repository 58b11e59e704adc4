package kafkaadmin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// sweepTimeout bounds how long Prepare spends removing leftovers of
// finished runs before it prepares its own; what it does not finish, the
// next Prepare or `starter cleanup` does.
const sweepTimeout = 30 * time.Second

// PrepareTopics first removes, best-effort and bounded in time, the
// leftovers of finished runs (see Sweeper), then creates the run's topics
// the way CreateRunTopics does. A workflow reset before it produced goes
// on with its topics, and its earlier run's Flink jobs are cancelled.
func (a *Activities) PrepareTopics(ctx context.Context, in PrepareTopicsInput) (PrepareTopicsResult, error) {
	logger := activity.GetLogger(ctx)
	if c := activity.GetClient(ctx); c != nil && in.Owner.WorkflowID != "" {
		sweepCtx, cancel := context.WithTimeout(ctx, sweepTimeout)
		sweeper := NewSweeper(a.kafka, a.jobs, activity.GetInfo(ctx).Namespace, WorkflowRunning(c))
		removed, err := sweeper.Sweep(sweepCtx, in.Owner, logger)
		cancel()
		if err != nil {
			logger.Warn("leftovers of finished runs not all removed", "Removed", len(removed), "Error", err)
		}
	}
	result, err := CreateRunTopics(ctx, a.kafka, in, logger)
	if err == nil && result.ResetFromRunID != "" && a.jobs != nil {
		// The reset ended the earlier run without its cleanup: its Flink
		// jobs, if it got that far, would run beside the ones this run
		// submits next, on the same groups.
		if err := a.cancelFlinkJobs(ctx, activities.FlinkJobsOf(in.Names), activities.ReporterOf(ctx)); err != nil {
			return result, fmt.Errorf("cancel the Flink jobs of the run before the reset: %w", err)
		}
	}
	return result, err
}

// CreateRunTopics creates the run's topics, owned by in.Owner; it logs to
// logger (the benchmark calls it outside an activity).
//
// The ledger comes first: its first owner record says which workflow the
// run's names belong to, and a record per topic says which topics the run
// created. A retried attempt (or the same workflow after a reset) finds its
// own records and goes on; a topic that exists without this run's record
// fails with the non-retryable errtype.TopicExists before anything is
// written to or created beside it, and so do the run's consumer groups
// when they already have committed offsets (errtype.GroupExists). A topic
// of the run with another partition count fails with errtype.TopicMismatch,
// because the run's guarantees (a logical queue stays in one partition, the
// ledger is one partition) rest on it.
func CreateRunTopics(ctx context.Context, kafka *kafkaeos.Conn, in PrepareTopicsInput, logger log.Logger) (PrepareTopicsResult, error) {
	if err := validatePrepareTopics(in); err != nil {
		return PrepareTopicsResult{}, err
	}
	meta, err := kafka.Admin.BrokerMetadata(ctx)
	if err != nil {
		return PrepareTopicsResult{}, fmt.Errorf("broker metadata: %w", err)
	}
	result := PrepareTopicsResult{Brokers: len(meta.Brokers)}
	if in.ReplicationFactor > result.Brokers {
		// Not non-retryable: a broker that is restarting comes back.
		return result, fmt.Errorf("replication_factor is %d but only %d brokers are up", in.ReplicationFactor, result.Brokers)
	}
	specs := runTopicSpecs(in)
	ledger, others := splitLedger(specs, in.Names.LedgerTopic)
	if err := refuseResetWithoutLedger(ctx, kafka, in); err != nil {
		return result, err
	}
	state, created, err := claimLedger(ctx, kafka, in, ledger, meta.Brokers.NodeIDs())
	if err != nil {
		return result, err
	}
	result.note(ledger.name, created)
	if result.ResetFromRunID, err = checkReset(in, state); err != nil {
		return result, err
	}
	if result.ResetFromRunID != "" {
		logger.Warn("workflow was reset before it produced; reusing its topics", "PreparedBy", result.ResetFromRunID)
	}
	existing, err := checkCollisions(ctx, kafka, others, state)
	if err != nil {
		return result, err
	}
	if result.ResetFromRunID == "" {
		if err := claimGroups(ctx, kafka, in, state); err != nil {
			return result, err
		}
	}
	for _, spec := range others {
		if existing[spec.name] {
			if state.topics[spec.name] == topicCreating {
				if err := writeTopicState(ctx, kafka, ledger.name, spec.name, topicCreated); err != nil {
					return result, err
				}
			}
			result.note(spec.name, false)
			continue
		}
		if err := createOwnedTopic(ctx, kafka, ledger.name, spec, int16(in.ReplicationFactor)); err != nil {
			return result, err
		}
		result.note(spec.name, true)
	}
	if err := waitTopicsReady(ctx, kafka.Client, specs, meta.Brokers.NodeIDs()); err != nil {
		return result, err
	}
	logger.Info("topics prepared", "Created", result.Created, "Existed", result.Existed, "Brokers", result.Brokers)
	return result, nil
}

// splitLedger returns the ledger's spec and the others'.
func splitLedger(specs []topicSpec, ledger string) (topicSpec, []topicSpec) {
	i := slices.IndexFunc(specs, func(s topicSpec) bool { return s.name == ledger })
	return specs[i], slices.Delete(slices.Clone(specs), i, i+1)
}

// checkReset returns the Temporal run that prepared the topics when it is
// not the one asking now: the workflow was reset. A reset after the run
// had produced is refused, since the reset run would produce and deliver
// again; before that, nothing was sent and the run goes on.
func checkReset(in PrepareTopicsInput, state ledgerState) (string, error) {
	prepared := state.owner.Owner.TemporalRunID
	if prepared == "" || in.Owner.TemporalRunID == "" || prepared == in.Owner.TemporalRunID {
		return "", nil
	}
	if state.chunks > 0 {
		return prepared, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"run %s was reset after it had produced messages (Temporal run %s prepared it): going on would produce and deliver again; start a new run instead",
			in.Names.RunID, prepared), errtype.RunReset, nil)
	}
	return prepared, nil
}

// refuseResetWithoutLedger refuses a later Temporal run of the workflow (a
// reset, or a retry of the whole workflow) whose ledger is gone: its first
// run may have produced and delivered and then cleaned up, and this one
// would send the same run's messages again. Only a new workflow is sure to
// start afresh.
func refuseResetWithoutLedger(ctx context.Context, kafka *kafkaeos.Conn, in PrepareTopicsInput) error {
	o := in.Owner
	if o.FirstRunID == "" || o.TemporalRunID == "" || o.TemporalRunID == o.FirstRunID {
		return nil
	}
	exists, err := topicExists(ctx, kafka, in.Names.LedgerTopic)
	if err != nil || exists {
		return err
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"workflow %s was reset or retried (Temporal run %s, first run %s) and run %s has no ledger any more: its first run may have sent its messages already; nothing was created: start a new run instead",
		o.WorkflowID, o.TemporalRunID, o.FirstRunID, in.Names.RunID), errtype.RunReset, nil)
}

func (r *PrepareTopicsResult) note(topic string, created bool) {
	if created {
		r.Created = append(r.Created, topic)
	} else {
		r.Existed = append(r.Existed, topic)
	}
}

// claimLedger creates the ledger unless it exists and makes sure its first
// owner record names in.Owner's workflow. An empty ledger without an owner
// is taken as the run's own (an earlier attempt that stopped between
// creating it and writing the owner record); one with records but no owner
// is somebody else's topic. It reports whether this attempt created it.
func claimLedger(ctx context.Context, kafka *kafkaeos.Conn, in PrepareTopicsInput, spec topicSpec, brokers []int32) (ledgerState, bool, error) {
	exists, err := topicExists(ctx, kafka, spec.name)
	if err != nil {
		return ledgerState{}, false, err
	}
	created := false
	if !exists {
		if created, err = createTopic(ctx, kafka, spec, int16(in.ReplicationFactor)); err != nil {
			return ledgerState{}, false, err
		}
		if err := waitTopicsReady(ctx, kafka.Client, []topicSpec{spec}, brokers); err != nil {
			return ledgerState{}, false, err
		}
	}
	state, err := readLedger(ctx, kafka, spec.name)
	if err != nil {
		return state, false, err
	}
	if state.owner == nil {
		if state.records > 0 {
			return state, false, topicExistsError([]string{spec.name}, "it holds records and names no owner")
		}
		owner := ownerRecord{Owner: in.Owner, Names: in.Names, AtUnixMillis: time.Now().UnixMilli()}
		if err := writeLedger(ctx, kafka, spec.name, ownerKey(in.Owner), owner); err != nil {
			return state, false, err
		}
		if state, err = readLedger(ctx, kafka, spec.name); err != nil {
			return state, false, err
		}
	}
	if !state.ownedBy(in.Owner) {
		o := state.owner.Owner
		return state, false, topicExistsError([]string{spec.name}, fmt.Sprintf("it belongs to workflow %q (first run %s)", o.WorkflowID, o.FirstRunID))
	}
	if _, err := checkExistingTopic(ctx, kafka, spec); err != nil {
		return state, false, err
	}
	if !state.ownsTopic(spec.name) {
		if err := writeTopicState(ctx, kafka, spec.name, spec.name, topicCreated); err != nil {
			return state, false, err
		}
		state.topics[spec.name] = topicCreated
	}
	return state, created, nil
}

// checkCollisions reports which of specs exist already, all of them the
// run's own; it fails naming every topic that exists without being the
// run's, and with errtype.TopicMismatch for one of the run's own with
// another shape.
func checkCollisions(ctx context.Context, kafka *kafkaeos.Conn, specs []topicSpec, state ledgerState) (map[string]bool, error) {
	existing := map[string]bool{}
	var foreign []string
	for _, spec := range specs {
		exists, err := topicExists(ctx, kafka, spec.name)
		if err != nil {
			return nil, err
		}
		switch {
		case !exists:
		case !state.ownsTopic(spec.name):
			foreign = append(foreign, spec.name)
		default:
			if _, err := checkExistingTopic(ctx, kafka, spec); err != nil {
				return nil, err
			}
			existing[spec.name] = true
		}
	}
	if len(foreign) > 0 {
		return nil, topicExistsError(foreign, "this run did not create it")
	}
	return existing, nil
}

// claimGroups fails when a consumer group of the run that it has not
// claimed yet has committed offsets, and records the others as the run's.
func claimGroups(ctx context.Context, kafka *kafkaeos.Conn, in PrepareTopicsInput, state ledgerState) error {
	var unclaimed []string
	for _, group := range in.Names.Groups() {
		if group != "" && !slices.Contains(state.groups, group) {
			unclaimed = append(unclaimed, group)
		}
	}
	if len(unclaimed) == 0 {
		return nil
	}
	fetched, err := kafkaeos.RetryRetriableValue(ctx, func() (kadm.FetchOffsetsResponses, error) {
		fetched := kafka.Admin.FetchManyOffsets(ctx, unclaimed...)
		for _, group := range unclaimed {
			if err := fetched[group].Err; err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
				return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
			}
		}
		return fetched, nil
	})
	if err != nil {
		return err
	}
	for _, group := range unclaimed {
		resp := fetched[group]
		if len(resp.Fetched) > 0 {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"consumer group %s already has committed offsets and this run did not create it; it was left alone: choose another run id",
				group), errtype.GroupExists, nil)
		}
	}
	for _, group := range unclaimed {
		if err := writeLedger(ctx, kafka, in.Names.LedgerTopic, groupKeyPrefix+group,
			claimRecord{Name: group, AtUnixMillis: time.Now().UnixMilli()}); err != nil {
			return err
		}
	}
	return nil
}

// createOwnedTopic records that the run is creating spec, creates it, and
// records that it did. Somebody else creating it in between makes it
// theirs.
func createOwnedTopic(ctx context.Context, kafka *kafkaeos.Conn, ledger string, spec topicSpec, replicationFactor int16) error {
	if err := writeTopicState(ctx, kafka, ledger, spec.name, topicCreating); err != nil {
		return err
	}
	created, err := createTopic(ctx, kafka, spec, replicationFactor)
	if err != nil {
		return err
	}
	if !created {
		if err := writeTopicState(ctx, kafka, ledger, spec.name, topicLost); err != nil {
			return err
		}
		return topicExistsError([]string{spec.name}, "somebody else created it while this run was creating it")
	}
	return writeTopicState(ctx, kafka, ledger, spec.name, topicCreated)
}

// createTopic creates spec; false without an error means it existed.
func createTopic(ctx context.Context, kafka *kafkaeos.Conn, spec topicSpec, replicationFactor int16) (bool, error) {
	resp, err := kafka.Admin.CreateTopic(ctx, spec.partitions, replicationFactor, spec.configs, spec.name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, nil
	case errors.Is(err, kerr.InvalidConfig), errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.PolicyViolation):
		// The run's settings, which no retry changes.
		return false, errtype.InvalidInputf("create topic %s (replication factor %d, configs %s): the brokers refuse it: %v %s",
			spec.name, replicationFactor, describeConfigs(spec.configs), err, resp.ErrMessage)
	default:
		return false, fmt.Errorf("create topic %s (%d partitions, replication factor %d): %w %s", spec.name, spec.partitions, replicationFactor, err, resp.ErrMessage)
	}
}

// topicExistsError is the non-retryable errtype.TopicExists naming topics.
func topicExistsError(topics []string, why string) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"topic %s already exists and %s; the run left it alone: choose another run id or other topic names",
		strings.Join(topics, ", "), why), errtype.TopicExists, nil)
}

// describeConfigs writes topic configs as name=value, sorted.
func describeConfigs(configs map[string]*string) string {
	parts := make([]string, 0, len(configs))
	for _, name := range slices.Sorted(maps.Keys(configs)) {
		parts = append(parts, name+"="+*configs[name])
	}
	return strings.Join(parts, ",")
}
