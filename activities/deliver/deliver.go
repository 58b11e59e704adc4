// Package deliver sends a run's enriched messages to the HTTP endpoint, in
// segments of one token each, and writes the endpoint's answers to the
// responses topic exactly once. It also obtains the tokens, and seals them
// so that workflow history only ever holds ciphertext.
package deliver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
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

// Config is what the worker knows about the token service and the
// endpoint.
type Config struct {
	EndpointURL string
	TokenURL    string
	// TokenClientID and TokenClientSecret are the OAuth2 client credentials
	// for the token service. The secret comes from the environment, never
	// from workflow input.
	TokenClientID     string
	TokenClientSecret string
	// TokenKey seals tokens before they leave an activity (AES-256-GCM,
	// TokenKeyBytes long); every worker of a deployment needs the same key.
	TokenKey []byte
	// TokenUnsealKeys are further keys that open sealed tokens but never
	// seal one: the previous key after a rotation, for the runs in flight,
	// or the next key before it becomes the current one.
	TokenUnsealKeys [][]byte
}

// Activities holds the shared Kafka connection, the token client and the
// endpoint client. Without an address or a key, the activity that needs it
// fails with a message saying so, and the other one still works.
type Activities struct {
	kafka    *kafkaeos.Conn
	token    tokenClient
	endpoint endpointClient
	accepted *acceptedLog
	// clients are the consumers and producers kept between plans and
	// segments.
	clients *Clients
}

// New builds the token and endpoint clients; plans and segments take their
// Kafka clients from clients, and put them back.
func New(kafka *kafkaeos.Conn, clients *Clients, cfg Config) (*Activities, error) {
	token, err := newTokenClient(cfg)
	if err != nil {
		return nil, err
	}
	endpoint, err := newEndpointClient(cfg.EndpointURL)
	if err != nil {
		return nil, err
	}
	return &Activities{kafka: kafka, token: token, endpoint: endpoint, accepted: newAcceptedLog(kafka), clients: clients}, nil
}

// SealedToken is a security token encrypted with the workers' token key, so
// that workflow history (and thus the UI) only ever holds ciphertext.
type SealedToken struct {
	Sealed          []byte `json:"sealed"`
	KeyID           string `json:"key_id"`
	ExpiresAtUnix   int64  `json:"expires_at_unix"`
	Quota           int    `json:"quota"`
	ObtainedAtUnixM int64  `json:"obtained_at_unix_ms"`
}

// ObtainTokenInput asks the token service for a new token.
type ObtainTokenInput struct {
	// Renewal counts the tokens obtained before this one, for logs and UI.
	Renewal int `json:"renewal"`
	// Quota asks for a token that allows this many messages; 0 takes the
	// token service's default. The service caps it at its maximum, and the
	// granted quota is in SealedToken.Quota.
	Quota int `json:"quota,omitempty"`
	// TTLSeconds asks for a shorter lifetime than the service's default; 0
	// takes the default.
	TTLSeconds int `json:"ttl_seconds,omitempty"`
}

// SegmentInput delivers the enriched messages of Plan (from Offsets up to
// the plan's ends) with one token. The responses are written in one Kafka
// transaction whose id derives from the run and segment, so a retried
// segment fences its earlier attempt and starts over from the same offsets,
// and sends the same batches: the plan fixes which records they hold.
type SegmentInput struct {
	Names   activities.RunNames `json:"names"`
	Segment int                 `json:"segment"`
	Offsets map[int32]int64     `json:"offsets"`
	// MaxMessages bounds the segment; with a Plan, the plan's Records must
	// not exceed it.
	MaxMessages int         `json:"max_messages"`
	BatchSize   int         `json:"batch_size"`
	Token       SealedToken `json:"token"`
	// Plan is the segment's extent, made by PlanSegment before anything was
	// sent. Without one (workflows started before plans existed), the
	// segment reads until MaxMessages or IdleTimeoutMillis, and a retry may
	// cut its batches differently.
	Plan *SegmentPlan `json:"plan,omitempty"`
	// IdleTimeoutMillis ends a segment without a Plan early when no
	// enriched message has arrived for that long (the segment then reports
	// fewer messages).
	IdleTimeoutMillis int64 `json:"idle_timeout_ms"`
	// TransactionalID is the run's delivery's (DeliveryTransactionalID):
	// every segment of the run commits under it, so a worker keeps its
	// producer from one segment to the next. Empty (workflows started
	// before): each segment has an id of its own.
	TransactionalID string `json:"transactional_id,omitempty"`
}

// DeliveryTransactionalID is the transactional id of a run's delivery.
// Every segment, and every attempt of each, commits under it, so a retry
// fences its earlier attempt as with a segment's own id, provided the run
// delivers one segment at a time.
func DeliveryTransactionalID(names activities.RunNames) string {
	return names.ResponsesTopic + ".delivery"
}

// transactionalID is the id the segment commits under: the run's
// delivery's, or its own.
func (in SegmentInput) transactionalID() string {
	if in.TransactionalID != "" {
		return in.TransactionalID
	}
	return fmt.Sprintf("%s.segment-%d", in.Names.ResponsesTopic, in.Segment)
}

// SegmentResult reports one segment.
type SegmentResult struct {
	Offsets   map[int32]int64 `json:"offsets"`
	Delivered int             `json:"delivered"`
	Batches   int             `json:"batches"`
	// Retries counts HTTP requests that were retried (429, 5xx, network).
	Retries int `json:"retries"`
	// TokenRejected is true when the endpoint answered 401 (expired or used
	// up), or when the token was sealed with a key this worker does not
	// hold (nothing was sent then); the segment stopped at the last
	// accepted batch and the workflow renews the token before the next
	// segment.
	TokenRejected bool   `json:"token_rejected"`
	RejectReason  string `json:"reject_reason,omitempty"`
	// Rest is what a refused token left unsent of the segment's Plan, from
	// Offsets on: the next segment sends it as it is, so its batches are
	// those this segment would have sent.
	Rest *SegmentPlan `json:"rest,omitempty"`
}

// DeliverSegment sends up to MaxMessages enriched messages to the endpoint
// with one token and writes one responses record per accepted batch, all in
// one Kafka transaction (under the run's delivery id, or the segment's own
// in runs started before), together with the deliver group's offsets.
//
// Before it commits, a segment fences its earlier attempts (which aborts
// whatever they had not committed) and then reads the group's committed
// offsets: when an earlier attempt did commit, their metadata holds its
// result, which is returned as it was, so a segment is delivered once
// however often the activity runs; when a later segment has committed (the
// delivery was reset), the segment is refused. A retry does so before
// sending; a first attempt while it sends, which takes the claim's round
// trips (a new client, InitProducerId, an offset fetch: 60-120 ms on the
// local stack) off the segment's time.
//
// Every batch the endpoint accepts is also recorded at once in the accepted
// topic (see acceptedLog), outside the transaction, so that what an
// aborted or retried attempt sent is still counted.
func (a *Activities) DeliverSegment(ctx context.Context, in SegmentInput) (SegmentResult, error) {
	return a.deliverSegment(ctx, in, activities.ReporterOf(ctx), activity.GetInfo(ctx).Attempt)
}

func (a *Activities) deliverSegment(ctx context.Context, in SegmentInput, rep activities.Reporter, attempt int32) (_ SegmentResult, err error) {
	partitions, topicID, err := a.prepareSegment(ctx, in)
	if err != nil {
		return SegmentResult{}, err
	}
	start := time.Now()
	txnID := in.transactionalID()
	key := segmentCommit{Format: commitMetadataFormat, Segment: in.Segment, Topic: topicID, From: offsetsFingerprint(in.Offsets)}
	claim := a.claimSegment(ctx, in, txnID, key, a.keptProducer(in, txnID, attempt))
	defer func() {
		// Only a producer with no transaction open is kept: after a
		// commit, or when there was nothing to commit.
		claim.release(a.clients.producers, txnID, err == nil && in.TransactionalID != "")
	}()
	// committedEarlier waits for the claim and gives the result of an
	// earlier attempt that committed the segment, if one did.
	committedEarlier := func() (SegmentResult, bool, error) {
		done, found, err := claim.result()
		if err != nil || !found {
			return SegmentResult{}, false, err
		}
		rep.Log.Info("segment was committed by an earlier attempt; returning its result",
			"Segment", in.Segment, "Delivered", done.Delivered, "Batches", done.Batches)
		if done.TokenRejected {
			done.Rest = in.Plan.rest(done.Offsets, done.Delivered)
		}
		return done, true, nil
	}
	// A retry usually follows an attempt that got as far as its commit (a
	// worker that crashed, a result that timed out), so it finds out before
	// sending anything. A first attempt sends while it claims: only a reset
	// workflow runs a committed segment again as a first attempt, and what
	// it sends then the endpoint answers as replays.
	if attempt > 1 {
		if done, found, err := committedEarlier(); err != nil || found {
			return done, err
		}
	}
	bearer, err := a.token.unseal(in.Token)
	if errors.Is(err, ErrUnknownTokenKey) {
		// Only with earlier attempts fenced and none of them committed may
		// a token this worker cannot open end the segment with nothing
		// delivered.
		if done, found, err := committedEarlier(); err != nil || found {
			return done, err
		}
		rep.Log.Warn("token sealed with a key this worker does not hold; the workflow renews it", "Segment", in.Segment, "Error", err)
		return unopenedTokenResult(in, err), nil
	}
	if err != nil {
		return SegmentResult{}, temporal.NewNonRetryableApplicationError(err.Error(), errtype.TokenUnsealable, nil)
	}

	sending := time.Now()
	outcome, err := a.sendSegment(ctx, in, bearer, partitions, rep, attempt)
	if err != nil {
		return SegmentResult{}, err
	}
	sent := time.Now()
	if done, found, err := committedEarlier(); err != nil || found {
		return done, err
	}
	claimed := time.Now()
	result := outcome.result()
	if result.TokenRejected {
		result.Rest = in.Plan.rest(result.Offsets, result.Delivered)
	}
	if len(outcome.accepted) > 0 {
		err := a.commitSegment(ctx, claim.producer, txnID, in, key, outcome, result)
		if claim.kept && errors.Is(err, kafkaeos.ErrStaleProducer) {
			// Another claim of the id since this worker's last segment (the
			// segment before ran on another worker) fenced the kept producer
			// before it wrote anything. Claimed anew, the id fences every
			// attempt before; one of them may have committed the segment.
			rep.Log.Info("the run's kept delivery producer was fenced by a newer claim of its id; claiming it anew",
				"Segment", in.Segment, "TransactionalID", txnID, "Error", err)
			claim.release(a.clients.producers, txnID, false)
			claim = a.claimSegment(ctx, in, txnID, key, nil)
			if done, found, err := committedEarlier(); err != nil || found {
				return done, err
			}
			err = a.commitSegment(ctx, claim.producer, txnID, in, key, outcome, result)
		}
		if err != nil {
			return SegmentResult{}, err
		}
	}
	rep.Log.Info("segment delivered", "Segment", in.Segment, "Delivered", result.Delivered, "Batches", result.Batches,
		"Retries", result.Retries, "TokenRejected", result.TokenRejected, "RejectReason", result.RejectReason,
		"Took", time.Since(start), "KeptProducer", claim.kept, "Fence", claim.fenced.Sub(start), "Check", claim.checked.Sub(claim.fenced),
		"Send", sent.Sub(sending), "WaitForClaim", claimed.Sub(sent), "Commit", time.Since(claimed))
	return result, nil
}

// keptProducer takes the producer this worker kept from the run's segment
// before, if any, for a first attempt of a segment of a run whose segments
// share one transactional id. A retry claims the id anew instead.
func (a *Activities) keptProducer(in SegmentInput, txnID string, attempt int32) *kgo.Client {
	if in.TransactionalID == "" {
		return nil
	}
	kept := a.clients.producers.Take(txnID, responsesTxnTimeout)
	if kept != nil && attempt > 1 {
		// The retry's claim fences it anyway; closed now, it is not kept
		// in place of the producer that claims.
		kept.Close()
		return nil
	}
	return kept
}

// segmentClaim is a segment's transactional producer claiming the
// segment's transactional id, which fences every earlier attempt (the
// broker aborts what such an attempt left open), and then the check
// whether an earlier attempt committed the segment: in that order, so
// that no earlier attempt can commit after the check. It runs while the
// segment sends, and must be done before the segment commits or reports.
//
// A producer kept from the run's segment before has claimed the id
// already, so the claim is only the check: every producer that claimed
// the id before it is fenced, and one that claimed it since has fenced the
// kept producer, whose commit is then refused at its first request.
type segmentClaim struct {
	done     chan struct{}
	producer *kgo.Client
	kept     bool
	// committed is the earlier attempt's result when found.
	committed SegmentResult
	found     bool
	err       error
	// fenced and checked are when each step ended, for the log.
	fenced, checked time.Time
}

func (a *Activities) claimSegment(ctx context.Context, in SegmentInput, txnID string, key segmentCommit, kept *kgo.Client) *segmentClaim {
	c := &segmentClaim{done: make(chan struct{}), producer: kept, kept: kept != nil}
	go func() {
		defer close(c.done)
		if c.producer == nil {
			if c.producer, c.err = a.fenceSegment(ctx, in.Segment, txnID, in.Names.ResponsesTopic); c.err != nil {
				return
			}
		}
		c.fenced = time.Now()
		c.committed, c.found, c.err = a.committedSegment(ctx, in, key)
		c.checked = time.Now()
	}()
	return c
}

// result waits for the claim and gives the earlier attempt's result, if
// one committed.
func (c *segmentClaim) result() (SegmentResult, bool, error) {
	<-c.done
	return c.committed, c.found, c.err
}

// release waits for the claim, then keeps its producer in producers for
// the run's next segment, or closes it.
func (c *segmentClaim) release(producers *kafkaeos.KeptProducers, txnID string, keep bool) {
	<-c.done
	switch {
	case c.producer == nil:
	case keep:
		producers.Put(txnID, responsesTxnTimeout, c.producer)
	default:
		c.producer.Close()
	}
	c.producer = nil
}

// prepareSegment checks the input and the worker's settings and lists the
// enriched topic's partitions and id.
func (a *Activities) prepareSegment(ctx context.Context, in SegmentInput) (partitions []int32, topicID string, err error) {
	if err := validateDeliverInput(in); err != nil {
		return nil, "", temporal.NewNonRetryableApplicationError("invalid input: "+err.Error(), errtype.InvalidInput, nil)
	}
	if a.endpoint.batchesURL == "" {
		return nil, "", temporal.NewNonRetryableApplicationError("EndpointURL is not configured", errtype.EndpointConfig, nil)
	}
	return a.topicPartitions(ctx, in.Names.EnrichedTopic)
}

// unopenedTokenResult is a segment that sent nothing because its token was
// sealed with a key this worker does not hold. It reads as a token the
// endpoint refused before the first batch, which the workflow already
// answers with a new token, sealed with a key the fleet holds, and the
// whole plan as the rest; so a key rotation costs a renewal, not the run.
func unopenedTokenResult(in SegmentInput, err error) SegmentResult {
	offsets := maps.Clone(in.Offsets)
	if offsets == nil {
		offsets = map[int32]int64{}
	}
	return SegmentResult{
		Offsets:       offsets,
		TokenRejected: true,
		RejectReason:  err.Error(),
		Rest:          in.Plan.rest(offsets, 0),
	}
}

// fenceSegment builds the segment's transactional producer and loads its
// producer id, which fences every earlier attempt of this segment: the
// broker aborts its open transaction, if any.
func (a *Activities) fenceSegment(ctx context.Context, segment int, txnID, responsesTopic string) (*kgo.Client, error) {
	producer, err := a.kafka.NewClient(
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(responsesTxnTimeout),
		kgo.DefaultProduceTopic(responsesTopic),
		kgo.RecordPartitioner(responsesPartitioner()),
	)
	if err != nil {
		return nil, err
	}
	if _, _, err := producer.ProducerID(ctx); err != nil {
		producer.Close()
		return nil, fmt.Errorf("segment %d: init transactional producer %s: %w", segment, txnID, err)
	}
	return producer, nil
}

// ValidateSegmentInput is DeliverSegment's own check of its input, which
// the workflows' input checks are tested against.
func ValidateSegmentInput(in SegmentInput) error { return validateDeliverInput(in) }

func validateDeliverInput(in SegmentInput) error {
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
	if in.Plan != nil {
		errs = append(errs, in.Plan.validate(in.Offsets, in.MaxMessages))
	}
	return errors.Join(errs...)
}

// topicPartitions lists the partitions of topic and gives its topic id,
// which tells a topic from an earlier one of the same name.
func (a *Activities) topicPartitions(ctx context.Context, topic string) ([]int32, string, error) {
	topics, err := a.kafka.Admin.ListTopics(ctx, topic)
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

// annotate prefixes err's message with context. A Temporal ApplicationError
// is rebuilt rather than wrapped: Temporal decides about retries by the
// outermost error only, so wrapping a non-retryable error would make it
// retryable.
func annotate(err error, prefix string) error {
	if appErr, ok := err.(*temporal.ApplicationError); ok { //nolint:errorlint // only the outermost error counts, see above
		return temporal.NewApplicationErrorWithOptions(prefix+": "+appErr.Message(), appErr.Type(),
			temporal.ApplicationErrorOptions{NonRetryable: appErr.NonRetryable(), Cause: appErr.Unwrap()})
	}
	return fmt.Errorf("%s: %w", prefix, err)
}
