package kafkaadmin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.temporal.io/sdk/activity"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// PollLagInput names the groups whose lag is read.
type PollLagInput struct {
	Names activities.RunNames `json:"names"`
}

// LagSample is the consumer lag of the run's groups at one moment.
type LagSample struct {
	AtUnixMillis int64 `json:"at_unix_ms"`
	Enrich       int64 `json:"enrich"`
	Deliver      int64 `json:"deliver"`
	Split        int64 `json:"split"`
	// The positions are how far each group has consumed: the sum over the
	// partitions of its topic of the committed offset (or the start offset
	// where it has committed nothing). Lag alone cannot tell a consumer that
	// keeps up with production from one that has stopped; the change of a
	// position between two samples is the group's drain rate, which turns a
	// lag into seconds. Samples of older workers have none (zero).
	EnrichPosition  int64 `json:"enrich_position,omitempty"`
	DeliverPosition int64 `json:"deliver_position,omitempty"`
	SplitPosition   int64 `json:"split_position,omitempty"`
	// The oldest records are, per group, the timestamp (Unix ms) of the
	// oldest record it has not consumed: the first readable record at its
	// committed offset, the oldest over the partitions it lags on. Zero
	// when it lags nowhere, when no partition's record could be read, and
	// in samples of older workers. The sample's time minus it is how long
	// the group has kept a message waiting, known without a drain rate.
	EnrichOldestMillis  int64 `json:"enrich_oldest_ms,omitempty"`
	DeliverOldestMillis int64 `json:"deliver_oldest_ms,omitempty"`
	SplitOldestMillis   int64 `json:"split_oldest_ms,omitempty"`
}

// GroupLag is one group's figures in a LagSample.
type GroupLag struct {
	Lag, Position, OldestMillis int64
}

// ByGroup is the sample's figures of the enrich, deliver and split groups,
// in that order.
func (l LagSample) ByGroup() [3]GroupLag {
	return [3]GroupLag{
		{l.Enrich, l.EnrichPosition, l.EnrichOldestMillis},
		{l.Deliver, l.DeliverPosition, l.DeliverOldestMillis},
		{l.Split, l.SplitPosition, l.SplitOldestMillis},
	}
}

// Max is the largest lag of the sample, the one backpressure acts on.
func (l LagSample) Max() int64 { return max(l.Enrich, l.Deliver, l.Split) }

// PollLag reads the consumer lag and position of the run's three groups:
// enrich on the raw topic, deliver on the enriched topic, split on the
// responses topic.
//
// The lag of a partition is its last stable offset (the end a read_committed
// reader can reach) minus the group's committed offset. A partition the group
// has not committed yet, and a group that does not exist yet, count as
// entirely unconsumed (end minus start): before the first Flink checkpoint
// the enrich job has read nothing as far as anyone can prove, and reporting
// zero there would let production run ahead unchecked.
//
// The figure over-counts a little on transactional topics, and all three are
// transactional: each committed transaction leaves a commit marker that
// occupies an offset in every partition it touched. A consumer that has read
// every record may have committed the offset of that marker rather than the
// one after it, so the lag stays at one per such partition even when nothing
// is left to read. That is at most the partition count, small against any
// backpressure threshold. Records of aborted transactions (a retried chunk)
// also count until a consumer has skipped past them. Neither is subtracted,
// because which offsets are markers or aborted cannot be known without
// reading the partitions.
//
// For each group it also reads the timestamp of its oldest unconsumed
// record, which does read them (oldestUnconsumed), but only the batch at
// the committed offset of each partition it lags on. A failure there is
// logged and leaves that group's age unknown; the lag stands without it.
func (a *Activities) PollLag(ctx context.Context, in PollLagInput) (LagSample, error) {
	groups := []struct{ field, group, topic string }{
		{"names.enrich_group", in.Names.EnrichGroup, in.Names.RawTopic},
		{"names.deliver_group", in.Names.DeliverGroup, in.Names.EnrichedTopic},
		{"names.split_group", in.Names.SplitGroup, in.Names.ResponsesTopic},
	}
	for _, g := range groups {
		switch {
		case g.group == "":
			return LagSample{}, errtype.InvalidInputf("%s is empty", g.field)
		case g.topic == "":
			return LagSample{}, errtype.InvalidInputf("the topic that %s reads is empty", g.field)
		}
	}
	topics := []string{in.Names.RawTopic, in.Names.EnrichedTopic, in.Names.ResponsesTopic}
	// kadm finds partition leaders in the client's metadata cache, which
	// may be seconds behind (a leader moved, a topic was just created);
	// refreshing it first costs one request per poll.
	details, err := kafkaeos.FreshTopicDetails(ctx, a.kafka.Client, topics...)
	if err != nil {
		return LagSample{}, err
	}
	starts, err := a.kafka.Admin.ListStartOffsets(ctx, topics...)
	if err != nil {
		return LagSample{}, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := a.kafka.Admin.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return LagSample{}, fmt.Errorf("list last stable offsets: %w", err)
	}

	at := time.Now()
	progress := make([]groupProgress, len(groups))
	for i, g := range groups {
		committed, err := a.committedOffsets(ctx, g.group)
		if err != nil {
			return LagSample{}, err
		}
		if progress[i], err = topicProgress(g.topic, starts, ends, committed); err != nil {
			return LagSample{}, fmt.Errorf("lag of group %s: %w", g.group, err)
		}
	}
	oldestCtx, cancel := context.WithTimeout(ctx, oldestFetchTimeout)
	defer cancel()
	var oldest [3]int64
	for i, g := range groups {
		if len(progress[i].unconsumed) == 0 {
			continue
		}
		if oldest[i], err = oldestUnconsumed(oldestCtx, a.kafka.Client, details[g.topic], progress[i].unconsumed); err != nil {
			// The age is a second signal beside the lag, which stands;
			// the partitions that could not be read have none.
			activity.GetLogger(ctx).Warn("some oldest unconsumed records could not be read", "group", g.group, "error", err)
		}
	}
	return LagSample{
		AtUnixMillis: at.UnixMilli(),
		Enrich:       progress[0].lag, Deliver: progress[1].lag, Split: progress[2].lag,
		EnrichPosition: progress[0].position, DeliverPosition: progress[1].position, SplitPosition: progress[2].position,
		EnrichOldestMillis: oldest[0], DeliverOldestMillis: oldest[1], SplitOldestMillis: oldest[2],
	}, nil
}

// groupProgress is how far a group is on one topic: what it has left
// (lag) and where it has got to (position), both summed over partitions,
// and where its unconsumed records begin in each partition it lags on.
type groupProgress struct {
	lag, position int64
	unconsumed    []unconsumedFrom
}

// committedOffsets fetches a group's committed offsets; a group that does
// not exist has none.
func (a *Activities) committedOffsets(ctx context.Context, group string) (kadm.OffsetResponses, error) {
	committed, err := kafkaeos.RetryRetriableValue(ctx, func() (kadm.OffsetResponses, error) {
		return a.kafka.Admin.FetchOffsets(ctx, group)
	})
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	return committed, nil
}

// topicProgress sums, over the partitions of topic, the offset the group has
// consumed to (its committed offset, or the start offset where nothing is
// committed) and the end offset minus that.
func topicProgress(topic string, starts, ends kadm.ListedOffsets, committed kadm.OffsetResponses) (groupProgress, error) {
	partitions, ok := ends[topic]
	if !ok {
		return groupProgress{}, fmt.Errorf("topic %s: no end offsets listed (does it exist?)", topic)
	}
	var total groupProgress
	for partition, end := range partitions {
		if end.Err != nil {
			return groupProgress{}, fmt.Errorf("topic %s partition %d: end offset: %w", topic, partition, end.Err)
		}
		start, ok := starts.Lookup(topic, partition)
		if !ok || start.Err != nil {
			return groupProgress{}, fmt.Errorf("topic %s partition %d: no start offset: %w", topic, partition, start.Err)
		}
		consumedTo := start.Offset
		if c, ok := committed.Lookup(topic, partition); ok && c.Err == nil && c.At >= 0 {
			// Records below the start offset are gone (retention), so
			// they are not lag either.
			consumedTo = max(c.At, start.Offset)
		}
		if lag := end.Offset - consumedTo; lag > 0 {
			total.lag += lag
			total.unconsumed = append(total.unconsumed, unconsumedFrom{partition: partition, offset: consumedTo})
		}
		total.position += consumedTo
	}
	return total, nil
}
