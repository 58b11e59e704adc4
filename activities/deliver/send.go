package deliver

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
)

// deliverProgress is the heartbeat of a segment.
type deliverProgress struct {
	Delivered int `json:"delivered"`
	Batches   int `json:"batches"`
	Retries   int `json:"retries"`
	InFlight  int `json:"in_flight"`
}

// segmentOutcome is what the consume-and-send phase of a segment achieved.
type segmentOutcome struct {
	accepted     []acceptedBatch // by batch index
	offsets      map[int32]int64
	delivered    int
	rejectReason string
	retries      int
}

type acceptedBatch struct {
	batch  *deliveryBatch
	record responseRecord
}

// result is the activity's result for the outcome.
func (o segmentOutcome) result() SegmentResult {
	return SegmentResult{
		Offsets:       o.offsets,
		Delivered:     o.delivered,
		Batches:       len(o.accepted),
		Retries:       o.retries,
		TokenRejected: o.rejectReason != "",
		RejectReason:  o.rejectReason,
	}
}

// recordedBatch is an accepted batch whose record in the accepted topic
// was acknowledged, or failed with err.
type recordedBatch struct {
	accepted acceptedBatch
	err      error
}

// sentBatch is the endpoint's answer to one posted batch.
type sentBatch struct {
	batch   *deliveryBatch
	outcome postOutcome
	err     error
}

// segmentSender runs one segment's loop: records come in from the reader,
// are cut into batches, and the batches are posted in build order, at most
// deliverMaxInFlight at once and one per partition. Only the loop touches
// its fields, except the counters, which the heartbeat reads.
type segmentSender struct {
	in     SegmentInput
	bearer string
	poster *batchPoster
	log    log.Logger
	// sendCtx is shared by the posts; stopSending ends them on the first
	// error, stopReading ends the reader.
	sendCtx     context.Context
	stopSending context.CancelFunc
	stopReading context.CancelFunc

	// record writes an accepted batch to the accepted topic; nil when the
	// run has none. Its acknowledgements come back on recorded.
	record    func(b *deliveryBatch, replayed bool, done func(error))
	recorded  chan recordedBatch
	recording int

	decoder   *enrichedDecoder
	builder   *batchBuilder
	ready     []*deliveryBatch
	busy      map[int32]bool
	completed chan sentBatch
	accepted  []acceptedBatch
	rejection string
	firstErr  error
	stopped   bool
	inputDone bool

	delivered, batches, inFlight, retries atomic.Int64
}

// sendSegment reads enriched records from the segment's offsets, cuts them
// into batches and posts them, until the plan's records were sent (without
// a plan: MaxMessages were read or the topic was idle for
// IdleTimeoutMillis), or the endpoint refused the token.
func (a *Activities) sendSegment(ctx context.Context, in SegmentInput, bearer string, partitions []int32, rep activities.Reporter, attempt int32) (_ segmentOutcome, err error) {
	var reader *planReader
	if in.Plan != nil {
		reader = newPlanReader(*in.Plan)
		planned := reader.partitions()
		for _, p := range planned {
			if !slices.Contains(partitions, p) {
				return segmentOutcome{}, errtype.InvalidInputf("DeliverSegmentInput.Plan names partition %d, which topic %s does not have", p, in.Names.EnrichedTopic)
			}
		}
		partitions = planned
	}
	consumer, err := a.clients.consumers.take(in.Names.EnrichedTopic, in.Offsets, partitions)
	if err != nil {
		return segmentOutcome{}, fmt.Errorf("segment %d: %w", in.Segment, err)
	}
	defer func() { consumer.giveBack(err != nil) }()

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	s := &segmentSender{
		in: in, bearer: bearer, log: rep.Log,
		sendCtx: sendCtx, stopSending: stopSending, stopReading: stopReading,
		decoder:   newEnrichedDecoder(in.Names.RunID),
		builder:   newBatchBuilder(in.Names.RunID, in.BatchSize),
		busy:      make(map[int32]bool),
		completed: make(chan sentBatch, deliverMaxInFlight),
		recorded:  make(chan recordedBatch, deliverMaxInFlight),
	}
	s.poster = a.endpoint.poster(rep.Log, &s.retries)
	if topic := in.Names.AcceptedTopic; topic != "" { // runs recorded before the endpoint's hop was counted have none
		s.record = func(b *deliveryBatch, replayed bool, done func(error)) {
			a.accepted.write(ctx, topic, acceptedRecord(b, in.Segment, attempt, replayed, time.Now()), done)
		}
	}

	records := make(chan []*kgo.Record)
	readerDone := make(chan error, 1)
	go func() {
		if reader != nil {
			readerDone <- readPlanned(readCtx, consumer, reader, records)
		} else {
			readerDone <- readEnriched(readCtx, consumer, in.MaxMessages, time.Duration(in.IdleTimeoutMillis)*time.Millisecond, records)
		}
		close(records)
	}()
	stopHeartbeat := rep.HeartbeatEvery(ctx, s.progress)
	s.run(ctx, records, readerDone)
	stopHeartbeat()

	if s.firstErr != nil {
		return segmentOutcome{}, annotate(s.firstErr, fmt.Sprintf("segment %d", in.Segment))
	}
	if ctx.Err() != nil {
		return segmentOutcome{}, fmt.Errorf("segment %d: %w", in.Segment, ctx.Err())
	}
	return s.outcome(), nil
}

// run loops until the input ended, no batch is in flight and every
// accepted batch is recorded, and either every batch was sent or the
// segment stopped.
func (s *segmentSender) run(ctx context.Context, records <-chan []*kgo.Record, readerDone <-chan error) {
	ctxDone := ctx.Done()
	for {
		s.dispatch()
		if s.inputDone && s.inFlight.Load() == 0 && s.recording == 0 && (s.stopped || len(s.ready) == 0) {
			return
		}
		// Read on only while the built batches are few.
		var recordsIn <-chan []*kgo.Record
		if !s.inputDone && !s.stopped && len(s.ready) < deliverMaxReady {
			recordsIn = records
		}
		select {
		case recs := <-recordsIn:
			s.addRecords(recs)
		case err := <-readerDone:
			s.inputDone = true
			// Drain the channel the reader closes after reporting.
			for range records {
			}
			if err != nil && !s.stopped {
				s.stop(err)
			}
			if !s.stopped {
				s.ready = append(s.ready, s.builder.flush()...)
			}
		case done := <-s.completed:
			s.complete(done)
		case r := <-s.recorded:
			s.recording--
			switch {
			case r.err != nil:
				s.stop(r.err)
			case s.firstErr == nil: // else the segment fails and commits nothing
				s.accept(r.accepted)
			}
		case <-ctxDone:
			// Only once: the loop goes on until the in-flight batches,
			// whose requests share ctx, have come back.
			ctxDone = nil
			s.stop(ctx.Err())
		}
	}
}

// stop ends reading and sending; err (if any) is the segment's error, and
// only the first is kept: later ones are its consequences.
func (s *segmentSender) stop(err error) {
	if s.firstErr == nil && err != nil {
		s.firstErr = err
		s.stopSending()
	}
	s.stopped = true
	s.stopReading()
}

// dispatch posts ready batches in build order, one per partition at a time.
func (s *segmentSender) dispatch() {
	for !s.stopped && s.inFlight.Load() < deliverMaxInFlight {
		i := slices.IndexFunc(s.ready, func(b *deliveryBatch) bool { return !s.busy[b.partition] })
		if i < 0 {
			return
		}
		batch := s.ready[i]
		s.ready = slices.Delete(s.ready, i, i+1)
		body := batchRequestBody(s.in.Names.RunID, batch)
		s.busy[batch.partition] = true
		s.inFlight.Add(1)
		go func() {
			outcome, err := s.poster.postBatch(s.sendCtx, s.bearer, batch, body)
			s.completed <- sentBatch{batch, outcome, err}
		}()
	}
}

// addRecords checks records against the contract and adds them to their
// partitions' batches.
func (s *segmentSender) addRecords(records []*kgo.Record) {
	for _, r := range records {
		m, err := s.decoder.decode(r)
		if err != nil {
			s.stop(temporal.NewNonRetryableApplicationError(err.Error(), errtype.ContractViolation, nil))
			return
		}
		if s.in.Plan != nil {
			s.ready = append(s.ready, s.builder.addPlanned(r.Partition, r.Offset, m, s.in.Plan.Ends[r.Partition])...)
		} else if full := s.builder.add(r.Partition, r.Offset, m); full != nil {
			s.ready = append(s.ready, full)
		}
	}
}

// complete takes the endpoint's answer to a batch: an error stops the
// segment, a refused token ends it, an answer is checked and kept.
func (s *segmentSender) complete(done sentBatch) {
	s.inFlight.Add(-1)
	s.busy[done.batch.partition] = false
	switch {
	case done.err != nil:
		s.stop(done.err)
	case done.outcome.rejectReason != "":
		if s.rejection == "" {
			s.rejection = done.outcome.rejectReason
			s.log.Info("endpoint refused the token; ending the segment", "Segment", s.in.Segment,
				"Reason", s.rejection, "BatchID", done.batch.id)
		}
		s.stop(nil)
	default:
		// The endpoint accepted the batch: that is recorded even when its
		// answer breaks the contract, which fails the segment.
		rec, err := newResponseRecord(s.in.Names.RunID, done.batch, done.outcome.answer)
		if err != nil {
			s.stop(temporal.NewNonRetryableApplicationError(err.Error(), errtype.ContractViolation, nil))
		}
		accepted := acceptedBatch{done.batch, rec}
		switch {
		case s.record != nil:
			s.recording++
			s.record(done.batch, done.outcome.replayed, func(err error) { s.recorded <- recordedBatch{accepted, err} })
		case err == nil:
			s.accept(accepted)
		}
	}
}

// accept counts a batch the endpoint accepted (and the accepted topic
// recorded): the segment will commit its response.
func (s *segmentSender) accept(ab acceptedBatch) {
	s.accepted = append(s.accepted, ab)
	s.delivered.Add(int64(len(ab.batch.messages)))
	s.batches.Add(1)
}

// progress is the heartbeat detail; it reads only the counters.
func (s *segmentSender) progress() any {
	return deliverProgress{Delivered: int(s.delivered.Load()), Batches: int(s.batches.Load()), Retries: int(s.retries.Load()), InFlight: int(s.inFlight.Load())}
}

// outcome sums up a segment that ended without error. Each partition's
// accepted batches are a prefix of its batches (one in flight per
// partition, none sent after a refusal), so the next offset to read is just
// past the last accepted one.
func (s *segmentSender) outcome() segmentOutcome {
	slices.SortFunc(s.accepted, func(x, y acceptedBatch) int { return x.batch.index - y.batch.index })
	offsets := make(map[int32]int64, len(s.in.Offsets)+len(s.accepted))
	for p, o := range s.in.Offsets {
		offsets[p] = o
	}
	for _, ab := range s.accepted {
		offsets[ab.batch.partition] = ab.batch.lastOffset + 1
	}
	return segmentOutcome{
		accepted:     s.accepted,
		offsets:      offsets,
		delivered:    int(s.delivered.Load()),
		rejectReason: s.rejection,
		retries:      int(s.retries.Load()),
	}
}

// readEnriched polls records until max were read, nothing arrived for idle
// (0: no limit), or ctx ends, and sends them to out. It returns nil when the
// segment's input ended normally, or ctx ended (the caller knows why).
func readEnriched(ctx context.Context, consumer *partitionConsumer, maxRecords int, idle time.Duration, out chan<- []*kgo.Record) error {
	read := 0
	for read < maxRecords {
		var deadline time.Time
		if idle > 0 {
			deadline = time.Now().Add(idle)
		}
		recs, err := consumer.poll(ctx, maxRecords-read, deadline)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil || len(recs) == 0 {
			return err
		}
		read += len(recs)
		select {
		case out <- recs:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
