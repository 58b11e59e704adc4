package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
)

// planSettle closes a plan that has records once the enriched topic has had
// nothing new for this long: the enrich job commits in bursts (one Kafka
// transaction per checkpoint), and waiting for the next burst would only
// delay what is already there.
const planSettle = time.Second

// SegmentPlan fixes a delivery segment's extent before anything is sent.
//
// A plan ends each partition just past a committed record the planner read,
// so what lies below its ends is settled: every attempt of the segment reads
// the same records, cuts them into the same batches (runs of BatchSize
// records from the start offset, see batchBuilder) and so sends the same
// batch ids with the same contents, however the fetches interleave and
// whatever arrived since. The planner reads with read_committed, so a plan
// never waits for records beyond the last stable offset, and it stops at
// MaxMessages, so a plan fits the token's quota.
//
// A segment's last batch per partition may be partial; trimming plans to
// whole batches was rejected because the trimmed records would leave slivers
// of quota that cost a segment each.
type SegmentPlan struct {
	// Ends is, for each partition with planned records, the offset just past
	// the last of them.
	Ends map[int32]int64 `json:"ends"`
	// Records counts the planned records (at most; after a refused token,
	// the rest's count is what was left of the whole plan's).
	Records int `json:"records"`
}

// Empty is true when the plan has no record.
func (p *SegmentPlan) Empty() bool { return p == nil || len(p.Ends) == 0 || p.Records == 0 }

// validate checks a plan against the segment's start offsets and bound.
func (p *SegmentPlan) validate(starts map[int32]int64, maxMessages int) error {
	var errs []error
	if p.Empty() {
		errs = append(errs, errors.New("DeliverSegmentInput.Plan is empty; an empty plan needs no segment"))
	}
	if p.Records > maxMessages {
		errs = append(errs, fmt.Errorf("DeliverSegmentInput.Plan has %d records, more than MaxMessages %d", p.Records, maxMessages))
	}
	if p.Records < len(p.Ends) {
		errs = append(errs, fmt.Errorf("DeliverSegmentInput.Plan has %d records in %d partitions", p.Records, len(p.Ends)))
	}
	for partition, end := range p.Ends {
		if start, ok := starts[partition]; (ok && end <= start) || end < 1 {
			errs = append(errs, fmt.Errorf("DeliverSegmentInput.Plan.Ends[%d] = %d is not past the start offset %d", partition, end, start))
		}
	}
	return errors.Join(errs...)
}

// rest is what is left of the plan after a segment that stopped with next
// offsets at and delivered records: the partitions not yet read to their
// ends. A nil plan has no rest.
func (p *SegmentPlan) rest(next map[int32]int64, delivered int) *SegmentPlan {
	if p == nil {
		return nil
	}
	rest := &SegmentPlan{Ends: make(map[int32]int64), Records: p.Records - delivered}
	for partition, end := range p.Ends {
		if o, ok := next[partition]; !ok || o < end {
			rest.Ends[partition] = end
		}
	}
	if rest.Empty() {
		return nil
	}
	return rest
}

// PlanSegmentInput asks for the extent of the next delivery segment.
type PlanSegmentInput struct {
	Names   activities.RunNames `json:"names"`
	Segment int                 `json:"segment"`
	// Offsets are where the segment starts (the start of a partition that
	// has none).
	Offsets     map[int32]int64 `json:"offsets"`
	MaxMessages int             `json:"max_messages"`
	// IdleTimeoutMillis gives up waiting for the first record after that
	// long; the plan is then empty.
	IdleTimeoutMillis int64 `json:"idle_timeout_ms"`
}

// PlanSegment reads the enriched topic's committed records from Offsets,
// without sending anything, and returns a plan of up to MaxMessages of them:
// as many as arrived until the cap, or until the topic had nothing new for a
// second, or none when nothing arrived within IdleTimeoutMillis. Reading is
// cheap beside posting (the segment reads the records again); in exchange,
// every attempt of the segment sends the same batches.
func (a *Activities) PlanSegment(ctx context.Context, in PlanSegmentInput) (SegmentPlan, error) {
	return a.planSegment(ctx, in, activities.ReporterOf(ctx))
}

func (a *Activities) planSegment(ctx context.Context, in PlanSegmentInput, rep activities.Reporter) (_ SegmentPlan, err error) {
	if err := validatePlanInput(in); err != nil {
		return SegmentPlan{}, temporal.NewNonRetryableApplicationError("invalid input: "+err.Error(), errtype.InvalidInput, nil)
	}
	partitions, _, err := a.topicPartitions(ctx, in.Names.EnrichedTopic)
	if err != nil {
		return SegmentPlan{}, err
	}
	consumer, err := a.clients.consumers.take(in.Names.EnrichedTopic, in.Offsets, partitions)
	if err != nil {
		return SegmentPlan{}, fmt.Errorf("plan segment %d: %w", in.Segment, err)
	}

	start := time.Now()
	planner := newPlanner(in.MaxMessages)
	stopHeartbeat := rep.HeartbeatEvery(ctx, func() any { return planProgress{Planned: planner.records} })
	defer func() {
		// On a fresh stack an attempt has logged its plan and sent its
		// result a minute late, past its heartbeat timeout, which held the
		// run that long (docs/performance.md, "Capped runs held by their
		// own chunks"); the warning says where it waited.
		slow := rep.WarnIfSlow(fmt.Sprintf("segment %d's plan: stopping heartbeats and giving back its consumer", in.Segment), 5*time.Second)
		stopHeartbeat()
		consumer.giveBack(err != nil)
		slow()
	}()
	idle := time.Duration(in.IdleTimeoutMillis) * time.Millisecond
	lastArrival := start
	for !planner.full() {
		wait := planSettle
		if planner.records == 0 {
			wait = idle
		}
		recs, err := consumer.poll(ctx, in.MaxMessages-planner.records, lastArrival.Add(wait))
		if err != nil {
			return SegmentPlan{}, annotate(err, fmt.Sprintf("plan segment %d", in.Segment))
		}
		if len(recs) == 0 {
			break
		}
		lastArrival = time.Now()
		for _, r := range recs {
			planner.add(r.Partition, r.Offset)
		}
	}
	plan := planner.plan()
	rep.Log.Info("segment planned", "Segment", in.Segment, "Records", plan.Records,
		"Partitions", len(plan.Ends), "Took", time.Since(start))
	return plan, nil
}

// planProgress is the heartbeat of PlanSegment.
type planProgress struct {
	Planned int `json:"planned"`
}

func validatePlanInput(in PlanSegmentInput) error {
	var errs []error
	if in.Names.RunID == "" || in.Names.EnrichedTopic == "" {
		errs = append(errs, errors.New("PlanSegmentInput.Names.RunID and EnrichedTopic must be set"))
	}
	if in.MaxMessages < 1 {
		errs = append(errs, fmt.Errorf("PlanSegmentInput.MaxMessages must be at least 1, got %d", in.MaxMessages))
	}
	if in.IdleTimeoutMillis < 0 {
		errs = append(errs, fmt.Errorf("PlanSegmentInput.IdleTimeoutMillis must not be negative, got %d", in.IdleTimeoutMillis))
	}
	for p, o := range in.Offsets {
		if p < 0 || o < 0 {
			errs = append(errs, fmt.Errorf("PlanSegmentInput.Offsets[%d] = %d: partitions and offsets must not be negative", p, o))
		}
	}
	return errors.Join(errs...)
}

// planner counts committed records per partition, in the order each
// partition returns them, up to a cap.
type planner struct {
	max     int
	records int
	ends    map[int32]int64
}

func newPlanner(maxRecords int) *planner {
	return &planner{max: maxRecords, ends: make(map[int32]int64)}
}

func (p *planner) full() bool { return p.records >= p.max }

// add plans one record; past the cap it is left for a later segment.
func (p *planner) add(partition int32, offset int64) {
	if p.full() {
		return
	}
	p.records++
	p.ends[partition] = offset + 1
}

func (p *planner) plan() SegmentPlan {
	return SegmentPlan{Ends: p.ends, Records: p.records}
}

// planReader admits the records of a plan: for each partition, those below
// its end, which the plan's last record closes. A record the plan does not
// expect means the topic is not the one planned (deleted and created again,
// or truncated), which no retry can mend.
type planReader struct {
	plan SegmentPlan
	read int
	open map[int32]bool // partitions whose last planned record is still to come
}

func newPlanReader(plan SegmentPlan) *planReader {
	open := make(map[int32]bool, len(plan.Ends))
	for p := range plan.Ends {
		open[p] = true
	}
	return &planReader{plan: plan, open: open}
}

// partitions lists the planned partitions, in order.
func (r *planReader) partitions() []int32 {
	out := make([]int32, 0, len(r.plan.Ends))
	for p := range r.plan.Ends {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// done is true when every planned record was read.
func (r *planReader) done() bool { return len(r.open) == 0 }

// admit says whether a fetched record belongs to the plan, and whether it
// was its partition's last.
func (r *planReader) admit(partition int32, offset int64) (planned, last bool, err error) {
	if !r.open[partition] {
		return false, false, nil // beyond the plan, or a partition it does not read
	}
	end := r.plan.Ends[partition]
	switch {
	case offset >= end:
		return false, false, r.mismatch(fmt.Sprintf("partition %d has no committed record at offset %d, the plan's last", partition, end-1))
	case r.read >= r.plan.Records:
		return false, false, r.mismatch(fmt.Sprintf("partition %d holds more records below offset %d than the plan's %d", partition, end, r.plan.Records))
	}
	r.read++
	if offset == end-1 {
		delete(r.open, partition)
		return true, true, nil
	}
	return true, false, nil
}

func (r *planReader) mismatch(what string) error {
	return temporal.NewNonRetryableApplicationError(
		"the enriched topic does not match the segment's plan: "+what+" (was the topic deleted or truncated?)",
		errtype.InvalidInput, nil)
}

// readPlanned reads the plan's records and sends them to out, in fetch
// order; it pauses each partition once its last planned record was read and
// returns nil when all were.
func readPlanned(ctx context.Context, consumer *partitionConsumer, reader *planReader, out chan<- []*kgo.Record) error {
	for !reader.done() {
		recs, err := consumer.poll(ctx, 0, time.Time{})
		if err != nil || ctx.Err() != nil {
			return err
		}
		planned := recs[:0]
		var finished []int32
		for _, r := range recs {
			ok, last, err := reader.admit(r.Partition, r.Offset)
			if err != nil {
				return err
			}
			if ok {
				planned = append(planned, r)
			}
			if last {
				finished = append(finished, r.Partition)
			}
		}
		if len(finished) > 0 {
			consumer.pause(finished)
		}
		if len(planned) == 0 {
			continue
		}
		select {
		case out <- planned:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
