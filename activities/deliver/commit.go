package deliver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// segmentCommit is the offset-commit metadata of a segment: a retried
// segment that finds its own number here knows its earlier attempt
// committed, and returns the result recorded with it.
type segmentCommit struct {
	Format  string `json:"format"`
	Segment int    `json:"segment"`
	// Topic is the enriched topic's id: a commit made for an earlier topic
	// of the same name (a run id used again) is not this segment's.
	Topic string `json:"topic"`
	// From fingerprints the segment's start offsets.
	From          string `json:"from"`
	Delivered     int    `json:"delivered"`
	Batches       int    `json:"batches"`
	Retries       int    `json:"retries"`
	TokenRejected bool   `json:"token_rejected,omitempty"`
	RejectReason  string `json:"reject_reason,omitempty"`
}

// offsetsFingerprint identifies a segment's start offsets.
func offsetsFingerprint(offsets map[int32]int64) string {
	partitions := make([]int32, 0, len(offsets))
	for p := range offsets {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	h := sha256.New()
	for _, p := range partitions {
		fmt.Fprintf(h, "%d:%d;", p, offsets[p])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// committedSegment looks for this segment's commit in the deliver group's
// offsets, and refuses the segment when a later one committed since. It
// must run after the producer fenced earlier attempts, so that no commit of
// theirs is still pending.
func (a *Activities) committedSegment(ctx context.Context, in SegmentInput, key segmentCommit) (SegmentResult, bool, error) {
	// A coordinator that moves or is still loading answers with a
	// retriable error, which is ridden out here rather than costing the
	// segment an attempt.
	committed, err := kafkaeos.RetryRetriableValue(ctx, func() (kadm.OffsetResponses, error) {
		offsets, err := a.kafka.Admin.FetchOffsetsForTopics(kadm.RequireStable(ctx), in.Names.DeliverGroup, in.Names.EnrichedTopic)
		if err != nil {
			return nil, err
		}
		return offsets, offsets.Error()
	})
	if err != nil {
		return SegmentResult{}, false, fmt.Errorf("committed offsets of group %s: %w", in.Names.DeliverGroup, err)
	}
	var (
		found  bool
		meta   segmentCommit
		result = SegmentResult{Offsets: make(map[int32]int64)}
		// later is the latest later segment whose commit is there (a later
		// segment is never segment 0), pastStart where it left the group.
		later     int
		pastStart string
	)
	for p, o := range committed[in.Names.EnrichedTopic] {
		if o.At < 0 {
			continue
		}
		var m segmentCommit
		if json.Unmarshal([]byte(o.Metadata), &m) != nil || m.Format != key.Format || m.Topic != key.Topic {
			continue
		}
		if m.Segment > key.Segment {
			later = max(later, m.Segment)
			if pastStart == "" && o.At > in.Offsets[p] {
				pastStart = fmt.Sprintf(" (the group is at offset %d of partition %d, where this segment starts at %d)", o.At, p, in.Offsets[p])
			}
			continue
		}
		if m.Segment != key.Segment {
			continue
		}
		if m.From != key.From {
			return SegmentResult{}, false, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("segment %d of run %s was already committed from other start offsets (fingerprint %s, this attempt %s); segment numbers must not be reused",
					in.Segment, in.Names.RunID, m.From, key.From), errtype.SegmentReused, nil)
		}
		found, meta = true, m
		result.Offsets[p] = o.At
	}
	if later > 0 {
		return SegmentResult{}, false, laterSegmentCommitted(in, later, pastStart)
	}
	if !found {
		return SegmentResult{}, false, nil
	}
	result.Delivered, result.Batches, result.Retries = meta.Delivered, meta.Batches, meta.Retries
	result.TokenRejected, result.RejectReason = meta.TokenRejected, meta.RejectReason
	return result, true, nil
}

// laterSegmentCommitted refuses a segment run again after a later segment
// of its run committed. The later commit replaced this segment's metadata,
// so its own commit can no longer be found, and delivering it again would
// write its responses twice and move the group's offsets back. Segments run
// one after another, so only a reset of the delivery's workflow gets here.
func laterSegmentCommitted(in SegmentInput, later int, pastStart string) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"segment %d of run %s was run again after segment %d committed%s: the delivery was reset after it had delivered; going on would deliver again; start a new run instead",
		in.Segment, in.Names.RunID, later, pastStart), errtype.RunReset, nil)
}

// commitSegment writes the responses of the accepted batches, in build
// order, and the deliver group's new offsets (with the result as metadata)
// in one Kafka transaction.
func (a *Activities) commitSegment(ctx context.Context, producer *kgo.Client, txnID string, in SegmentInput, key segmentCommit, outcome segmentOutcome, result SegmentResult) (err error) {
	records := make([]*kgo.Record, 0, len(outcome.accepted))
	for _, ab := range outcome.accepted {
		records = append(records, &kgo.Record{Topic: in.Names.ResponsesTopic, Key: []byte(ab.batch.id), Value: responseRecordValue(ab.record)})
	}
	reason := result.RejectReason
	if len(reason) > maxRejectReasonLen {
		reason = reason[:maxRejectReasonLen]
	}
	commit := key
	commit.Delivered, commit.Batches, commit.Retries = result.Delivered, result.Batches, result.Retries
	commit.TokenRejected, commit.RejectReason = result.TokenRejected, reason
	metadata, err := json.Marshal(commit)
	if err != nil {
		return fmt.Errorf("encode commit metadata: %w", err)
	}

	if err := producer.BeginTransaction(); err != nil {
		return fmt.Errorf("segment %d: begin transaction %s: %w", in.Segment, txnID, err)
	}
	defer func() {
		// The caller's context may be what failed; the abort must still
		// reach the broker, or the responses partitions stay blocked for
		// read_committed readers until the transaction times out.
		if err != nil {
			if abortErr := kafkaeos.AbortTransaction(ctx, producer); abortErr != nil {
				err = errors.Join(err, fmt.Errorf("transaction %s: %w", txnID, abortErr))
			}
		}
	}()
	if err := a.addResponsesPartitions(ctx, producer, txnID, in.Names.ResponsesTopic, records); err != nil {
		return fmt.Errorf("segment %d: %w", in.Segment, err)
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("segment %d: write responses to %s: %w", in.Segment, in.Names.ResponsesTopic, err)
	}
	if err := kafkaeos.CommitOffsetsInTxn(ctx, producer, txnID, in.Names.DeliverGroup, in.Names.EnrichedTopic, result.Offsets, string(metadata)); err != nil {
		return fmt.Errorf("segment %d: %w", in.Segment, err)
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("segment %d: commit transaction %s: %w", in.Segment, txnID, err)
	}
	return nil
}

// responsesPartitioner places response records by their key, the batch id,
// as Kafka's default partitioner does; addResponsesPartitions computes the
// same placement.
func responsesPartitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// addResponsesPartitions adds the partitions the records go to to the
// segment's transaction in one request before they are written (see
// kafkaeos.AddPartitionsToTxn: brokers adding them one by one collide at the
// coordinator).
func (a *Activities) addResponsesPartitions(ctx context.Context, producer *kgo.Client, txnID, topic string, records []*kgo.Record) error {
	if len(records) == 0 {
		return nil
	}
	counts, err := kafkaeos.PartitionCounts(ctx, a.kafka.Client, topic)
	if err != nil {
		return err
	}
	return kafkaeos.AddPartitionsToTxn(ctx, producer, txnID, map[string][]int32{topic: recordPartitions(records, topic, counts[topic])})
}

// recordPartitions returns the partitions of topic (of partitions in all)
// that responsesPartitioner puts records in, in ascending order.
func recordPartitions(records []*kgo.Record, topic string, partitions int) []int32 {
	return kafkaeos.PartitionsOf(responsesPartitioner().ForTopic(topic), partitions, slices.Values(records))
}
