package kafkaadmin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// Owner is the Temporal workflow a run belongs to. The run's ledger topic
// names it first thing, so that Prepare and Cleanup touch only what their
// own run created, and leftovers of a finished run can be told from those
// of a running one.
type Owner struct {
	Namespace  string `json:"namespace,omitempty"`
	WorkflowID string `json:"workflow_id,omitempty"`
	// FirstRunID is the workflow's first Temporal run; it stays the same
	// over activity retries and over a reset of the workflow.
	FirstRunID string `json:"first_run_id,omitempty"`
	// TemporalRunID is the Temporal run that asks. A reset workflow asks
	// from another run than the one that prepared the topics.
	TemporalRunID string `json:"temporal_run_id,omitempty"`
}

// sameWorkflow is true when o and other are the same workflow execution
// chain, whichever of its Temporal runs.
func (o Owner) sameWorkflow(other Owner) bool {
	return o.Namespace == other.Namespace && o.WorkflowID == other.WorkflowID && o.FirstRunID == other.FirstRunID
}

// Keys of the ledger's records besides the chunks' ("chunk-N", see
// activities/produce). The ledger is compacted, so every key names one fact.
const (
	ownerKeyPrefix = "owner/"
	topicKeyPrefix = "topic/"
	groupKeyPrefix = "group/"
	keptKey        = "kept"
	chunkKeyPrefix = "chunk-"
)

// ownerRecord claims a run's names for a workflow. When two workflows
// claim the same ledger, the first record in the log wins; each writes its
// own key, so compaction keeps both.
type ownerRecord struct {
	Owner        Owner               `json:"owner"`
	Names        activities.RunNames `json:"names"`
	AtUnixMillis int64               `json:"at_unix_ms"`
}

func ownerKey(o Owner) string { return ownerKeyPrefix + o.WorkflowID + "/" + o.FirstRunID }

// topicState is what a run did about one of its topics.
type topicState string

const (
	// topicCreating is written before the topic is created, so that a
	// retry after a crash between the creation and topicCreated still
	// knows the topic as its own.
	topicCreating topicState = "creating"
	topicCreated  topicState = "created"
	// topicLost is a topic somebody else created between topicCreating and
	// the run's own attempt: not the run's.
	topicLost topicState = "lost"
)

// claimRecord is the value of a topic's or a group's record.
type claimRecord struct {
	Name         string     `json:"name"`
	State        topicState `json:"state,omitempty"`
	AtUnixMillis int64      `json:"at_unix_ms"`
}

// ledgerState is what a run's ledger says: who owns the run, which topics
// and groups it claimed, and whether it got as far as producing.
type ledgerState struct {
	exists  bool
	records int
	owner   *ownerRecord
	topics  map[string]topicState
	groups  []string
	chunks  int
	kept    bool
}

// ownedBy is true when the ledger's first owner record names owner's
// workflow.
func (s ledgerState) ownedBy(owner Owner) bool {
	return s.owner != nil && s.owner.Owner.sameWorkflow(owner)
}

// ownsTopic is true when the run created topic (or was about to).
func (s ledgerState) ownsTopic(topic string) bool {
	state := s.topics[topic]
	return state == topicCreating || state == topicCreated
}

// createdTopics lists the topics the run created, ledger last: it goes
// last so that an interrupted cleanup still finds what is left.
func (s ledgerState) createdTopics(ledger string) []string {
	var topics []string
	for topic := range s.topics {
		if s.ownsTopic(topic) && topic != ledger {
			topics = append(topics, topic)
		}
	}
	slices.Sort(topics)
	if s.ownsTopic(ledger) {
		topics = append(topics, ledger)
	}
	return topics
}

// readLedger reads the whole ledger, without waiting for open
// transactions: the owner and claim records are written outside any, and a
// chunk counts whether or not its transaction committed.
func readLedger(ctx context.Context, kafka *kafkaeos.Conn, ledger string) (ledgerState, error) {
	state := ledgerState{topics: map[string]topicState{}}
	exists, err := topicExists(ctx, kafka, ledger)
	if err != nil || !exists {
		return state, err
	}
	state.exists = true
	reader, err := kafkaeos.NewUncommittedReader(ctx, kafka, ledger)
	if err != nil {
		return state, fmt.Errorf("read ledger %s: %w", ledger, err)
	}
	var decodeErr error
	for !reader.CaughtUp() {
		if _, err := reader.FetchRound(ctx, 0, true, func(rec *kgo.Record) {
			state.records++
			decodeErr = errors.Join(decodeErr, state.add(rec))
		}); err != nil {
			return state, fmt.Errorf("read ledger %s: %w", ledger, err)
		}
	}
	if decodeErr != nil {
		return state, fmt.Errorf("read ledger %s: %w", ledger, decodeErr)
	}
	return state, nil
}

// add takes in one ledger record, in log order.
func (s *ledgerState) add(rec *kgo.Record) error {
	key := string(rec.Key)
	switch {
	case strings.HasPrefix(key, chunkKeyPrefix):
		s.chunks++
	case key == keptKey:
		s.kept = true
	case strings.HasPrefix(key, ownerKeyPrefix) && s.owner == nil:
		var owner ownerRecord
		if err := json.Unmarshal(rec.Value, &owner); err != nil {
			return fmt.Errorf("owner record at offset %d: %w", rec.Offset, err)
		}
		s.owner = &owner
	case strings.HasPrefix(key, topicKeyPrefix):
		var claim claimRecord
		if err := json.Unmarshal(rec.Value, &claim); err != nil {
			return fmt.Errorf("topic record at offset %d: %w", rec.Offset, err)
		}
		s.topics[claim.Name] = claim.State
	case strings.HasPrefix(key, groupKeyPrefix):
		if group := strings.TrimPrefix(key, groupKeyPrefix); !slices.Contains(s.groups, group) {
			s.groups = append(s.groups, group)
		}
	}
	return nil
}

// writeLedger appends one record to the ledger and waits until every
// replica has it.
func writeLedger(ctx context.Context, kafka *kafkaeos.Conn, ledger, key string, value any) error {
	encoded, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encode ledger record %s: %w", key, err)
	}
	rec := &kgo.Record{Topic: ledger, Key: []byte(key), Value: encoded}
	if err := kafka.Client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("write ledger record %s to %s: %w", key, ledger, err)
	}
	return nil
}

func writeTopicState(ctx context.Context, kafka *kafkaeos.Conn, ledger, topic string, state topicState) error {
	return writeLedger(ctx, kafka, ledger, topicKeyPrefix+topic,
		claimRecord{Name: topic, State: state, AtUnixMillis: time.Now().UnixMilli()})
}

// topicExists asks fresh metadata whether topic exists.
func topicExists(ctx context.Context, kafka *kafkaeos.Conn, topic string) (bool, error) {
	details, err := kafkaeos.FreshTopicDetails(ctx, kafka.Client, topic)
	if err != nil {
		return false, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	detail, ok := details[topic]
	switch {
	case !ok || errors.Is(detail.Err, kerr.UnknownTopicOrPartition):
		return false, nil
	case detail.Err != nil:
		return false, fmt.Errorf("metadata of %s: %w", topic, detail.Err)
	}
	return true, nil
}
