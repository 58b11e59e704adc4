package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/internal/tokenapi"
)

// Limits of one delivery segment.
const (
	// deliverMaxInFlight is how many HTTP batches may be in flight at once.
	// At most one per partition is, so that the endpoint receives each
	// logical queue (which lives in one partition) in order.
	deliverMaxInFlight = 4
	// deliverMaxReady bounds the batches built but not yet sent, so the
	// Kafka reader cannot run far ahead of a slow endpoint.
	deliverMaxReady = 64
	// maxRetryAfterWait caps the wait a 429 or 503 asks for; a longer one is
	// left to the activity's retry.
	maxRetryAfterWait = 30 * time.Second
	// responsesTxnTimeout bounds the segment's Kafka transaction, which is
	// only open while the responses are written at the segment's end.
	responsesTxnTimeout = time.Minute
	// commitMetadataFormat marks the offset-commit metadata a segment writes
	// (see segmentCommit).
	commitMetadataFormat = "flowproof.deliver.v1"
	// maxRejectReasonLen keeps the commit metadata far below Kafka's
	// offset.metadata.max.bytes (4096 by default).
	maxRejectReasonLen = 256
)

// ErrTypeContractViolation is the Temporal error type of an enriched record
// or endpoint answer that breaks the message contract; retrying reads the
// same record again, so it is not retried.
const ErrTypeContractViolation = "ContractViolation"

// deliveryMessage is one enriched record as the endpoint receives it.
type deliveryMessage struct {
	Seq           int64
	LogicalQueue  string
	CorrelationID string
	ProducedAt    string
}

// deliveryBatch is consecutive records of one partition, sent as one HTTP
// batch.
type deliveryBatch struct {
	// index orders the segment's batches by when they were built.
	index       int
	partition   int32
	firstOffset int64
	lastOffset  int64
	messages    []deliveryMessage
	id          string
}

// batchID names a batch by its run, partition and offset range. The range
// makes the id determine the content: a retried segment that starts at the
// same offsets rebuilds full batches with the same ids (which the endpoint
// answers from its idempotency store), and a partial batch that grew in
// the meantime gets a new id rather than reusing an id with another body,
// which the endpoint would refuse.
func batchID(runID string, partition int32, firstOffset, lastOffset int64) string {
	return fmt.Sprintf("%s-p%d-o%d-%d", runID, partition, firstOffset, lastOffset)
}

// batchBuilder cuts each partition's records into batches of size: a batch
// is closed when full, and the open ones when the segment's input ends.
type batchBuilder struct {
	runID string
	size  int
	open  map[int32]*deliveryBatch
	built int
}

func newBatchBuilder(runID string, size int) *batchBuilder {
	return &batchBuilder{runID: runID, size: size, open: make(map[int32]*deliveryBatch)}
}

// add appends a record and returns the batch it completed, if any.
func (b *batchBuilder) add(partition int32, offset int64, m deliveryMessage) *deliveryBatch {
	batch := b.open[partition]
	if batch == nil {
		batch = &deliveryBatch{partition: partition, firstOffset: offset, messages: make([]deliveryMessage, 0, b.size)}
		b.open[partition] = batch
	}
	batch.lastOffset = offset
	batch.messages = append(batch.messages, m)
	if len(batch.messages) < b.size {
		return nil
	}
	delete(b.open, partition)
	return b.close(batch)
}

// flush closes the open batches, in partition order.
func (b *batchBuilder) flush() []*deliveryBatch {
	partitions := make([]int32, 0, len(b.open))
	for p := range b.open {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	out := make([]*deliveryBatch, 0, len(partitions))
	for _, p := range partitions {
		out = append(out, b.close(b.open[p]))
		delete(b.open, p)
	}
	return out
}

func (b *batchBuilder) close(batch *deliveryBatch) *deliveryBatch {
	batch.index = b.built
	b.built++
	batch.id = batchID(b.runID, batch.partition, batch.firstOffset, batch.lastOffset)
	return batch
}

// enrichedValue is the part of an enriched record's value delivery reads.
type enrichedValue struct {
	RunID         string `json:"run_id"`
	Seq           *int64 `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	ProducedAt    string `json:"produced_at"`
	CorrelationID string `json:"correlation_id"`
}

// decodeEnriched checks an enriched record against the message contract.
func decodeEnriched(r *kgo.Record, runID string) (deliveryMessage, error) {
	where := fmt.Sprintf("enriched record %s[%d]@%d", r.Topic, r.Partition, r.Offset)
	var v enrichedValue
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return deliveryMessage{}, fmt.Errorf("%s: value is not the contract's JSON: %w", where, err)
	}
	var problems []string
	if v.RunID != runID {
		problems = append(problems, fmt.Sprintf("run_id is %q, want %q", v.RunID, runID))
	}
	if v.Seq == nil || *v.Seq < 0 {
		problems = append(problems, "seq is missing or negative")
	}
	if v.LogicalQueue == "" {
		problems = append(problems, "logical_queue is empty")
	}
	if v.ProducedAt == "" {
		problems = append(problems, "produced_at is empty")
	}
	if v.CorrelationID == "" {
		problems = append(problems, "correlation_id is empty")
	}
	header, found := "", false
	for _, h := range r.Headers {
		if h.Key == headerCorrelationID {
			header, found = string(h.Value), true
		}
	}
	switch {
	case !found:
		problems = append(problems, "header "+headerCorrelationID+" is missing")
	case header != v.CorrelationID:
		problems = append(problems, fmt.Sprintf("header %s is %q but correlation_id is %q", headerCorrelationID, header, v.CorrelationID))
	}
	if len(problems) > 0 {
		return deliveryMessage{}, fmt.Errorf("%s breaks the message contract: %s", where, strings.Join(problems, "; "))
	}
	return deliveryMessage{Seq: *v.Seq, LogicalQueue: v.LogicalQueue, CorrelationID: v.CorrelationID, ProducedAt: v.ProducedAt}, nil
}

// batchRequestBody encodes a batch for POST /v1/batches. The encoding is
// deterministic, so a retried batch has the same body and the endpoint
// answers it from its idempotency store.
func batchRequestBody(b *deliveryBatch) ([]byte, error) {
	req := tokenapi.BatchRequest{BatchID: b.id, Messages: make([]tokenapi.Message, len(b.messages))}
	for i, m := range b.messages {
		producedAt, err := json.Marshal(m.ProducedAt)
		if err != nil {
			return nil, fmt.Errorf("batch %s: produced_at of seq %d: %w", b.id, m.Seq, err)
		}
		req.Messages[i] = tokenapi.Message{
			CorrelationID: m.CorrelationID,
			Seq:           m.Seq,
			LogicalQueue:  m.LogicalQueue,
			Extra:         map[string]json.RawMessage{"produced_at": producedAt},
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("batch %s: encode request: %w", b.id, err)
	}
	return body, nil
}

// responseRecord is the value of a responses-topic record (see
// docs/message-contract.md).
type responseRecord struct {
	RunID       string            `json:"run_id"`
	BatchID     string            `json:"batch_id"`
	BatchNumber int64             `json:"batch_number"`
	Messages    []responseMessage `json:"messages"`
}

type responseMessage struct {
	Seq           int64  `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	CorrelationID string `json:"correlation_id"`
	SendingID     string `json:"sending_id"`
	ProducedAt    string `json:"produced_at"`
}

// newResponseRecord joins a batch with the endpoint's answer, checking that
// the answer is about this batch, message by message.
func newResponseRecord(runID string, b *deliveryBatch, answer tokenapi.BatchResponse) (responseRecord, error) {
	var problems []string
	if answer.BatchID != b.id {
		problems = append(problems, fmt.Sprintf("batch_id is %q", answer.BatchID))
	}
	if answer.BatchNumber <= 0 {
		problems = append(problems, fmt.Sprintf("batch_number is %d", answer.BatchNumber))
	}
	if len(answer.Results) != len(b.messages) {
		problems = append(problems, fmt.Sprintf("%d results for %d messages", len(answer.Results), len(b.messages)))
	}
	rec := responseRecord{RunID: runID, BatchID: b.id, BatchNumber: answer.BatchNumber, Messages: make([]responseMessage, 0, len(b.messages))}
	for i, m := range b.messages {
		if i >= len(answer.Results) {
			break
		}
		res := answer.Results[i]
		if res.Seq != m.Seq || res.CorrelationID != m.CorrelationID {
			problems = append(problems, fmt.Sprintf("results[%d] is seq %d / %s, sent seq %d / %s", i, res.Seq, res.CorrelationID, m.Seq, m.CorrelationID))
		}
		if res.SendingID == "" {
			problems = append(problems, fmt.Sprintf("results[%d].sending_id is empty", i))
		}
		if len(problems) >= 5 {
			break
		}
		rec.Messages = append(rec.Messages, responseMessage{
			Seq: m.Seq, LogicalQueue: m.LogicalQueue, CorrelationID: m.CorrelationID,
			SendingID: res.SendingID, ProducedAt: m.ProducedAt,
		})
	}
	if len(problems) > 0 {
		return responseRecord{}, fmt.Errorf("endpoint answer to batch %s does not match it: %s", b.id, strings.Join(problems, "; "))
	}
	return rec, nil
}

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

// DeliverSegment sends up to MaxMessages enriched messages to the endpoint
// with one token and writes one responses record per accepted batch, all in
// one Kafka transaction (transactional id "<responses topic>.segment-<n>"),
// together with the deliver group's offsets.
//
// A retried segment first fences its earlier attempt (which aborts whatever
// that attempt had not committed) and then reads the group's committed
// offsets: when the earlier attempt did commit, their metadata holds its
// result, which is returned as it was, so a segment is delivered once
// however often the activity runs.
func (a *Activities) DeliverSegment(ctx context.Context, in DeliverSegmentInput) (DeliverSegmentResult, error) {
	if err := validateDeliverInput(in); err != nil {
		return DeliverSegmentResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", nil)
	}
	if a.endpoint.batchesURL == "" {
		return DeliverSegmentResult{}, temporal.NewNonRetryableApplicationError("activities: EndpointURL is not configured", "EndpointConfig", nil)
	}
	bearer, err := a.unsealToken(in.Token)
	if err != nil {
		return DeliverSegmentResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "TokenUnsealable", nil)
	}
	partitions, topicID, err := a.topicPartitions(ctx, in.Names.EnrichedTopic)
	if err != nil {
		return DeliverSegmentResult{}, err
	}
	log := a.log.With(zap.String("run_id", in.Names.RunID), zap.Int("segment", in.Segment))
	start := time.Now()

	txnID := fmt.Sprintf("%s.segment-%d", in.Names.ResponsesTopic, in.Segment)
	producer, err := a.newClient(
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(responsesTxnTimeout),
		kgo.DefaultProduceTopic(in.Names.ResponsesTopic),
	)
	if err != nil {
		return DeliverSegmentResult{}, err
	}
	defer producer.Close()
	// Loading the producer id fences every earlier attempt of this segment:
	// the broker aborts its open transaction, if any.
	if _, _, err := producer.ProducerID(ctx); err != nil {
		return DeliverSegmentResult{}, fmt.Errorf("segment %d: init transactional producer %s: %w", in.Segment, txnID, err)
	}
	fenced := time.Now()
	key := segmentCommit{Format: commitMetadataFormat, Segment: in.Segment, Topic: topicID, From: offsetsFingerprint(in.Offsets)}
	if done, found, err := a.committedSegment(ctx, in, key); err != nil {
		return DeliverSegmentResult{}, err
	} else if found {
		log.Info("segment was committed by an earlier attempt; returning its result",
			zap.Int("delivered", done.Delivered), zap.Int("batches", done.Batches))
		return done, nil
	}

	checked := time.Now()
	outcome, err := a.sendSegment(ctx, in, bearer, partitions, log)
	if err != nil {
		return DeliverSegmentResult{}, err
	}
	sent := time.Now()
	result := DeliverSegmentResult{
		Offsets:       outcome.offsets,
		Delivered:     outcome.delivered,
		Batches:       len(outcome.accepted),
		Retries:       outcome.retries,
		TokenRejected: outcome.rejectReason != "",
		RejectReason:  outcome.rejectReason,
	}
	if len(outcome.accepted) > 0 {
		if err := a.commitSegment(ctx, producer, txnID, in, key, outcome, result); err != nil {
			return DeliverSegmentResult{}, err
		}
	}
	log.Info("segment delivered", zap.Int("delivered", result.Delivered), zap.Int("batches", result.Batches),
		zap.Int("retries", result.Retries), zap.Bool("token_rejected", result.TokenRejected),
		zap.String("reject_reason", result.RejectReason), zap.Duration("took", time.Since(start)),
		zap.Duration("fence", fenced.Sub(start)), zap.Duration("check", checked.Sub(fenced)),
		zap.Duration("send", sent.Sub(checked)), zap.Duration("commit", time.Since(sent)))
	return result, nil
}

func validateDeliverInput(in DeliverSegmentInput) error {
	var errs []error
	for _, f := range []struct{ name, value string }{
		{"Names.RunID", in.Names.RunID},
		{"Names.EnrichedTopic", in.Names.EnrichedTopic},
		{"Names.ResponsesTopic", in.Names.ResponsesTopic},
		{"Names.DeliverGroup", in.Names.DeliverGroup},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("DeliverSegmentInput.%s is empty", f.name))
		}
	}
	if in.Segment < 0 {
		errs = append(errs, fmt.Errorf("DeliverSegmentInput.Segment must not be negative, got %d", in.Segment))
	}
	if in.MaxMessages < 1 {
		errs = append(errs, fmt.Errorf("DeliverSegmentInput.MaxMessages must be at least 1, got %d", in.MaxMessages))
	}
	if in.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("DeliverSegmentInput.BatchSize must be at least 1, got %d", in.BatchSize))
	}
	if in.IdleTimeoutMillis < 0 {
		errs = append(errs, fmt.Errorf("DeliverSegmentInput.IdleTimeoutMillis must not be negative, got %d", in.IdleTimeoutMillis))
	}
	for p, o := range in.Offsets {
		if p < 0 || o < 0 {
			errs = append(errs, fmt.Errorf("DeliverSegmentInput.Offsets[%d] = %d: partitions and offsets must not be negative", p, o))
		}
	}
	if len(in.Token.Sealed) == 0 {
		errs = append(errs, errors.New("DeliverSegmentInput.Token is empty; obtain a token first"))
	}
	return errors.Join(errs...)
}

// topicPartitions lists the partitions of topic and gives its topic id,
// which tells a topic from an earlier one of the same name.
func (a *Activities) topicPartitions(ctx context.Context, topic string) ([]int32, string, error) {
	topics, err := a.admin.ListTopics(ctx, topic)
	if err != nil {
		return nil, "", fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	detail, ok := topics[topic]
	if !ok || errors.Is(detail.Err, kerr.UnknownTopicOrPartition) {
		return nil, "", fmt.Errorf("topic %s does not exist", topic)
	}
	if detail.Err != nil {
		return nil, "", fmt.Errorf("metadata of topic %s: %w", topic, detail.Err)
	}
	partitions := detail.Partitions.Numbers()
	if len(partitions) == 0 {
		return nil, "", fmt.Errorf("topic %s has no partitions", topic)
	}
	slices.Sort(partitions)
	return partitions, hex.EncodeToString(detail.ID[:]), nil
}

// sendSegment reads enriched records from the segment's offsets, cuts them
// into batches and posts them, until MaxMessages were read, the topic was
// idle for IdleTimeoutMillis, or the endpoint refused the token.
func (a *Activities) sendSegment(ctx context.Context, in DeliverSegmentInput, bearer string, partitions []int32, log *zap.Logger) (segmentOutcome, error) {
	startOffsets := make(map[int32]kgo.Offset, len(partitions))
	for _, p := range partitions {
		if o, ok := in.Offsets[p]; ok {
			startOffsets[p] = kgo.NewOffset().At(o)
		} else {
			startOffsets[p] = kgo.NewOffset().AtStart()
		}
	}
	consumer, err := a.newClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{in.Names.EnrichedTopic: startOffsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500*time.Millisecond),
		// A start offset outside the partition means the workflow's offsets
		// do not belong to this topic; silently reading from the start or
		// the end would deliver messages twice or never.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)
	if err != nil {
		return segmentOutcome{}, err
	}
	defer consumer.Close()

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var retries atomic.Int64
	sendCtx = context.WithValue(sendCtx, retryCounterKey{}, &retries)

	records := make(chan []*kgo.Record)
	readerDone := make(chan error, 1)
	go func() {
		readerDone <- readEnriched(readCtx, consumer, in.MaxMessages, time.Duration(in.IdleTimeoutMillis)*time.Millisecond, records)
		close(records)
	}()

	type sent struct {
		batch   *deliveryBatch
		outcome postOutcome
		err     error
	}
	completed := make(chan sent, deliverMaxInFlight)
	builder := newBatchBuilder(in.Names.RunID, in.BatchSize)
	var (
		ready      []*deliveryBatch
		busy       = make(map[int32]bool)
		inFlight   int
		accepted   []acceptedBatch
		delivered  int
		rejection  string
		firstErr   error
		stopped    bool
		inputEnded bool
		recordsIn  chan []*kgo.Record
		ctxDone    = ctx.Done()
	)
	heartbeat := time.NewTicker(time.Second)
	defer heartbeat.Stop()
	stop := func(err error) {
		if firstErr == nil && err != nil {
			firstErr = err
			stopSending()
		}
		stopped = true
		stopReading()
	}

	for {
		// Dispatch in build order, one batch per partition at a time.
		for !stopped && inFlight < deliverMaxInFlight {
			i := slices.IndexFunc(ready, func(b *deliveryBatch) bool { return !busy[b.partition] })
			if i < 0 {
				break
			}
			batch := ready[i]
			ready = slices.Delete(ready, i, i+1)
			body, err := batchRequestBody(batch)
			if err != nil {
				stop(err)
				break
			}
			busy[batch.partition] = true
			inFlight++
			go func() {
				outcome, err := a.endpoint.postBatch(sendCtx, bearer, batch, body)
				completed <- sent{batch, outcome, err}
			}()
		}
		if inputEnded && inFlight == 0 && (stopped || len(ready) == 0) {
			break
		}
		// Read on only while the built batches are few.
		recordsIn = nil
		if !inputEnded && !stopped && len(ready) < deliverMaxReady {
			recordsIn = records
		}
		select {
		case batchOfRecords := <-recordsIn:
			for _, r := range batchOfRecords {
				m, err := decodeEnriched(r, in.Names.RunID)
				if err != nil {
					stop(temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeContractViolation, nil))
					break
				}
				if full := builder.add(r.Partition, r.Offset, m); full != nil {
					ready = append(ready, full)
				}
			}
		case err := <-readerDone:
			inputEnded = true
			// Drain the channel the reader closes after reporting.
			for range records {
			}
			if err != nil && !stopped {
				stop(err)
			}
			if !stopped {
				ready = append(ready, builder.flush()...)
			}
		case done := <-completed:
			inFlight--
			busy[done.batch.partition] = false
			switch {
			case done.err != nil:
				stop(done.err) // only the first error is kept: later ones are its consequences
			case done.outcome.rejectReason != "":
				if rejection == "" {
					rejection = done.outcome.rejectReason
					log.Info("endpoint refused the token; ending the segment", zap.String("reason", rejection),
						zap.String("batch_id", done.batch.id))
				}
				stop(nil)
			default:
				rec, err := newResponseRecord(in.Names.RunID, done.batch, done.outcome.answer)
				if err != nil {
					stop(temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeContractViolation, nil))
					continue
				}
				accepted = append(accepted, acceptedBatch{done.batch, rec})
				delivered += len(done.batch.messages)
			}
		case <-heartbeat.C:
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, deliverProgress{Delivered: delivered, Batches: len(accepted), Retries: int(retries.Load()), InFlight: inFlight})
			}
		case <-ctxDone:
			// Only once: the loop goes on until the in-flight batches,
			// whose requests share ctx, have come back.
			ctxDone = nil
			stop(ctx.Err())
		}
	}
	if firstErr != nil {
		return segmentOutcome{}, annotate(firstErr, fmt.Sprintf("segment %d", in.Segment))
	}
	if ctx.Err() != nil {
		return segmentOutcome{}, fmt.Errorf("segment %d: %w", in.Segment, ctx.Err())
	}

	// Each partition's accepted batches are a prefix of its batches (one in
	// flight per partition, none sent after a refusal), so the next offset
	// to read is just past the last accepted one.
	slices.SortFunc(accepted, func(x, y acceptedBatch) int { return x.batch.index - y.batch.index })
	offsets := make(map[int32]int64, len(in.Offsets)+len(accepted))
	for p, o := range in.Offsets {
		offsets[p] = o
	}
	for _, ab := range accepted {
		offsets[ab.batch.partition] = ab.batch.lastOffset + 1
	}
	return segmentOutcome{
		accepted:     accepted,
		offsets:      offsets,
		delivered:    delivered,
		rejectReason: rejection,
		retries:      int(retries.Load()),
	}, nil
}

// annotate prefixes err's message with context. A Temporal ApplicationError
// is rebuilt rather than wrapped: Temporal decides about retries by the
// outermost error only, so wrapping a non-retryable error would make it
// retryable.
func annotate(err error, prefix string) error {
	if appErr, ok := err.(*temporal.ApplicationError); ok {
		return temporal.NewApplicationErrorWithOptions(prefix+": "+appErr.Message(), appErr.Type(),
			temporal.ApplicationErrorOptions{NonRetryable: appErr.NonRetryable(), Cause: appErr.Unwrap()})
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// readEnriched polls records until max were read, nothing arrived for idle
// (0: no limit), or ctx ends, and sends them to out. It returns nil when the
// segment's input ended normally.
func readEnriched(ctx context.Context, consumer *kgo.Client, maxRecords int, idle time.Duration, out chan<- []*kgo.Record) error {
	read := 0
	lastArrival := time.Now()
	for read < maxRecords {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, lastArrival.Add(idle))
		}
		fetches := consumer.PollRecords(pollCtx, maxRecords-read)
		cancel()
		if ctx.Err() != nil {
			return nil // the caller stopped reading and knows why
		}
		var fetchErr error
		fetches.EachError(func(topic string, partition int32, err error) {
			if fetchErr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
			}
		})
		if errors.Is(fetchErr, kerr.OffsetOutOfRange) {
			return temporal.NewNonRetryableApplicationError(fetchErr.Error()+"; the segment's start offsets are outside the topic", "OffsetOutOfRange", fetchErr)
		}
		if fetchErr != nil {
			return fetchErr
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			if idle > 0 && time.Since(lastArrival) >= idle {
				return nil
			}
			continue
		}
		lastArrival = time.Now()
		read += len(recs)
		select {
		case out <- recs:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

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
// offsets. It must run after the producer fenced earlier attempts, so that
// no commit of theirs is still pending.
func (a *Activities) committedSegment(ctx context.Context, in DeliverSegmentInput, key segmentCommit) (DeliverSegmentResult, bool, error) {
	committed, err := a.admin.FetchOffsetsForTopics(kadm.RequireStable(ctx), in.Names.DeliverGroup, in.Names.EnrichedTopic)
	if err != nil {
		return DeliverSegmentResult{}, false, fmt.Errorf("committed offsets of group %s: %w", in.Names.DeliverGroup, err)
	}
	if err := committed.Error(); err != nil {
		return DeliverSegmentResult{}, false, fmt.Errorf("committed offsets of group %s: %w", in.Names.DeliverGroup, err)
	}
	var (
		found  bool
		meta   segmentCommit
		result = DeliverSegmentResult{Offsets: make(map[int32]int64)}
	)
	for p, o := range committed[in.Names.EnrichedTopic] {
		if o.At < 0 {
			continue
		}
		var m segmentCommit
		if json.Unmarshal([]byte(o.Metadata), &m) != nil || m.Format != key.Format || m.Segment != key.Segment || m.Topic != key.Topic {
			continue
		}
		if m.From != key.From {
			return DeliverSegmentResult{}, false, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("segment %d of run %s was already committed from other start offsets (fingerprint %s, this attempt %s); segment numbers must not be reused",
					in.Segment, in.Names.RunID, m.From, key.From), "SegmentReused", nil)
		}
		found, meta = true, m
		result.Offsets[p] = o.At
	}
	if !found {
		return DeliverSegmentResult{}, false, nil
	}
	result.Delivered, result.Batches, result.Retries = meta.Delivered, meta.Batches, meta.Retries
	result.TokenRejected, result.RejectReason = meta.TokenRejected, meta.RejectReason
	return result, true, nil
}

// commitSegment writes the responses of the accepted batches, in build
// order, and the deliver group's new offsets (with the result as metadata)
// in one Kafka transaction.
func (a *Activities) commitSegment(ctx context.Context, producer *kgo.Client, txnID string, in DeliverSegmentInput, key segmentCommit, outcome segmentOutcome, result DeliverSegmentResult) (err error) {
	records := make([]*kgo.Record, 0, len(outcome.accepted))
	for _, ab := range outcome.accepted {
		value, err := json.Marshal(ab.record)
		if err != nil {
			return fmt.Errorf("encode response of batch %s: %w", ab.batch.id, err)
		}
		records = append(records, &kgo.Record{Topic: in.Names.ResponsesTopic, Key: []byte(ab.batch.id), Value: value})
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
		if err == nil {
			return
		}
		// The caller's context may be what failed; the abort must still
		// reach the broker, or the responses partitions stay blocked for
		// read_committed readers until the transaction times out.
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if abortErr := producer.AbortBufferedRecords(abortCtx); abortErr != nil {
			err = errors.Join(err, fmt.Errorf("abort buffered responses: %w", abortErr))
		}
		if abortErr := producer.EndTransaction(abortCtx, kgo.TryAbort); abortErr != nil {
			err = errors.Join(err, fmt.Errorf("abort transaction %s: %w", txnID, abortErr))
		}
	}()
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("segment %d: write responses to %s: %w", in.Segment, in.Names.ResponsesTopic, err)
	}
	if err := commitOffsetsInTxn(ctx, producer, txnID, in.Names.DeliverGroup, in.Names.EnrichedTopic, result.Offsets, string(metadata)); err != nil {
		return fmt.Errorf("segment %d: %w", in.Segment, err)
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("segment %d: commit transaction %s: %w", in.Segment, txnID, err)
	}
	return nil
}

// commitOffsetsInTxn adds the group's offsets to the producer's open
// transaction (AddOffsetsToTxn + TxnOffsetCommit), as a transactional
// consumer would, so the offsets become visible exactly when the responses
// do. The deliver activity assigns partitions itself and is no group
// member, so the commit uses generation -1, which brokers accept for a
// group without members.
func commitOffsetsInTxn(ctx context.Context, producer *kgo.Client, txnID, group, topic string, offsets map[int32]int64, metadata string) error {
	id, epoch, err := producer.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer id of %s: %w", txnID, err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, id, epoch, group
	if err := retryRetriable(ctx, func() error {
		resp, err := add.RequestWith(ctx, producer)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}); err != nil {
		return fmt.Errorf("add group %s to transaction %s: %w", group, txnID, err)
	}

	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = txnID, group, id, epoch
	commit.Generation, commit.MemberID = -1, ""
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic = topic
	partitions := make([]int32, 0, len(offsets))
	for p := range offsets {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	for _, p := range partitions {
		part := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		part.Partition, part.Offset, part.LeaderEpoch = p, offsets[p], -1
		part.Metadata = &metadata
		t.Partitions = append(t.Partitions, part)
	}
	commit.Topics = append(commit.Topics, t)
	return retryRetriable(ctx, func() error {
		resp, err := commit.RequestWith(ctx, producer)
		if err != nil {
			return fmt.Errorf("commit offsets of group %s in transaction %s: %w", group, txnID, err)
		}
		var errs []error
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("commit offset of group %s for %s[%d]: %w", group, rt.Topic, rp.Partition, err))
				}
			}
		}
		return errors.Join(errs...)
	})
}

// retryRetriable repeats fn while it fails with a retriable Kafka error
// (a coordinator moving or loading, a transaction still ending), for up to
// about ten seconds.
func retryRetriable(ctx context.Context, fn func() error) error {
	backoff := 50 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil || !kerr.IsRetriable(err) && !errors.Is(err, kerr.ConcurrentTransactions) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
		backoff = min(2*backoff, time.Second)
	}
}
