package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/internal/errtype"
)

// DeliverInput drives DeliverWorkflow. State carries the delivery so far
// across continue-as-new.
type DeliverInput struct {
	ParentWorkflowID string              `json:"parent_workflow_id"`
	Names            activities.RunNames `json:"names"`
	Messages         int64               `json:"messages"`
	BatchSize        int                 `json:"batch_size"`
	TokenRenewEvery  int                 `json:"token_renew_every"`
	// StallSeconds fails delivery when no message was delivered for that
	// long (counted in empty segments, each of which waited segmentIdle):
	// the enrich job has stopped or production failed.
	StallSeconds int `json:"stall_seconds"`
	// SegmentsPerRun bounds the segments one workflow run schedules before
	// it continues as new; 0 means defaultSegmentsPerRun.
	SegmentsPerRun int           `json:"segments_per_run,omitempty"`
	State          DeliverResult `json:"state"`
}

// DeliverResult is a run's delivery so far. DeliverWorkflow carries it
// across continue-as-new in DeliverInput.State and returns it once every
// message is delivered, so each figure is counted in one place.
//
// Its JSON names are those of the state (segment, renewals, rejected), which
// a continued run must read back; UnmarshalJSON also accepts the names that
// results of older workers used.
type DeliverResult struct {
	Delivered int64 `json:"delivered"`
	// Segments counts the segments delivered, so it also numbers the next.
	Segments int `json:"segment"`
	Batches  int `json:"batches"`
	// Retries counts the HTTP retries of batches.
	Retries       int `json:"retries"`
	TokenRenewals int `json:"renewals"`
	// TokenRejected counts the segments the endpoint cut short with a 401,
	// and those whose token the worker could not open (sealed with a key
	// it does not hold).
	TokenRejected     int   `json:"rejected"`
	StartedUnixMillis int64 `json:"started_unix_ms"`
	// DurationMillis is set when delivery is complete.
	DurationMillis int64 `json:"duration_ms"`
	// Runs counts the workflow runs that delivery took.
	Runs int `json:"runs"`

	// Where the next segment resumes, and with which token. Token is sealed,
	// so history holds ciphertext only; the final result has none.
	Offsets     map[int32]int64     `json:"offsets"`
	Token       deliver.SealedToken `json:"token"`
	UsedOnToken int                 `json:"used_on_token"`
	// EmptySegments counts the segments in a row that found no message.
	EmptySegments int `json:"empty_segments"`
	// Plan is what a refused token left unsent of the last segment's plan;
	// the next segment sends it as it is, so that no batch is cut again.
	// (A plan prepared ahead for the next segment is never carried: a run
	// continues as new only with none prepared, see runOverlapped.)
	Plan *deliver.SegmentPlan `json:"plan,omitempty"`
}

// UnmarshalJSON reads a DeliverResult written under either set of names: a
// parent may wait on a child that an older worker finished.
func (r *DeliverResult) UnmarshalJSON(data []byte) error {
	type fields DeliverResult // the same fields, without this method
	var v struct {
		fields
		OldSegments      *int `json:"segments"`
		OldTokenRenewals *int `json:"token_renewals"`
		OldTokenRejected *int `json:"token_rejected"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*r = DeliverResult(v.fields)
	if v.OldSegments != nil {
		r.Segments = *v.OldSegments
	}
	if v.OldTokenRenewals != nil {
		r.TokenRenewals = *v.OldTokenRenewals
	}
	if v.OldTokenRejected != nil {
		r.TokenRejected = *v.OldTokenRejected
	}
	return nil
}

// addSegment counts a delivered segment.
func (r *DeliverResult) addSegment(res deliver.SegmentResult) {
	r.Segments++
	r.Offsets = res.Offsets
	r.Delivered += int64(res.Delivered)
	r.UsedOnToken += res.Delivered
	r.Batches += res.Batches
	r.Retries += res.Retries
	if res.TokenRejected {
		r.TokenRejected++
	}
	if res.Delivered > 0 {
		r.EmptySegments = 0
	} else {
		r.EmptySegments++
	}
}

// checkStall fails a delivery whose last segments found no message for
// StallSeconds: each waited segmentIdle for one, so the pipeline upstream
// has stopped.
func (r *DeliverResult) checkStall(in DeliverInput) error {
	if r.EmptySegments == 0 || time.Duration(r.EmptySegments)*segmentIdle < time.Duration(in.StallSeconds)*time.Second {
		return nil
	}
	return temporal.NewApplicationError(
		fmt.Sprintf("delivery stalled: no enriched message for %d segments of %s after %d of %d delivered (is the enrich job running?)",
			r.EmptySegments, segmentIdle, r.Delivered, in.Messages), errtype.DeliveryStalled)
}

const (
	defaultSegmentsPerRun = 200
	// segmentIdle ends a segment that waits this long for enriched
	// messages, so the workflow can judge a stall and report progress.
	segmentIdle = 30 * time.Second
	// renewBeforeExpiry renews a token that would expire within this margin
	// instead of sending a segment that would fail half way.
	renewBeforeExpiry = 30 * time.Second
	// plannedSegmentsChange gates planned segments (PlanSegment before each
	// DeliverSegment): recorded runs replay without them.
	plannedSegmentsChange = "deliver-planned-segments"
	// overlappedSegmentsChange gates overlapped segments (the next segment
	// planned, and its token obtained, while the current one is sent):
	// runs recorded before replay on the sequential loop.
	overlappedSegmentsChange = "deliver-overlapped-segments"
	// keptSegmentProducerChange gates the run's one transactional id for
	// all its segments (deliver.DeliveryTransactionalID), under which a
	// worker keeps its producer from one segment to the next: runs
	// recorded before give each segment an id of its own.
	keptSegmentProducerChange = "deliver-kept-segment-producer"
)

// deliverer is one run of DeliverWorkflow.
type deliverer struct {
	in    DeliverInput
	state DeliverResult

	segments    int // segments of the whole delivery
	signalEvery int // segments between progress signals to the parent
	// tokenRefused: the endpoint refused the current token (401), so the
	// next segment needs a new one whatever its quota and expiry.
	tokenRefused bool
	// planned: each segment's extent is planned before it is sent, so a
	// retried segment sends the same batches (see deliver.SegmentPlan).
	planned bool
	// keepsProducer: the segments commit under the run's one transactional
	// id, so a worker keeps its producer between them.
	keepsProducer bool

	// next is the next segment's preparation, under way while the current
	// segment is sent; nil when none is (runOverlapped only).
	next *preparedSegment
	// spareToken is a token obtained for a later segment and not used yet:
	// it becomes the current token when that one is due.
	spareToken *deliver.SealedToken
}

// preparedSegment is a segment's plan, and a fresh token if the segment
// will need one, asked for before the segment is due.
type preparedSegment struct {
	// starts are the offsets the plan starts from; the segment may only be
	// sent from these.
	starts  map[int32]int64
	segment int
	plan    workflow.Future // of deliver.SegmentPlan
	// token is nil when the segment can go on the token in use (or the
	// spare one); renewal numbers it for errors.
	token   workflow.Future // of deliver.SealedToken
	renewal int
}

// DeliverWorkflow reads the enriched topic and posts it to the endpoint in
// segments of TokenRenewEvery messages, obtaining a fresh token before each
// segment (and after a 401).
func DeliverWorkflow(ctx workflow.Context, in DeliverInput) (DeliverResult, error) {
	if err := in.validate(); err != nil {
		return DeliverResult{}, err
	}
	d := newDeliverer(ctx, in)
	result, err := d.run(ctx)
	if err != nil {
		return DeliverResult{}, endedWithFigures(ctx, err, deliverFigures, d.finish(ctx))
	}
	return result, nil
}

func newDeliverer(ctx workflow.Context, in DeliverInput) *deliverer {
	if in.SegmentsPerRun == 0 {
		in.SegmentsPerRun = defaultSegmentsPerRun
	}
	d := &deliverer{in: in, state: in.State}
	d.state.Runs++
	if d.state.StartedUnixMillis == 0 {
		d.state.StartedUnixMillis = workflow.Now(ctx).UnixMilli()
	}
	if d.state.Offsets == nil {
		d.state.Offsets = map[int32]int64{}
	}
	d.segments = int((in.Messages + int64(in.TokenRenewEvery) - 1) / int64(in.TokenRenewEvery))
	d.signalEvery = max(1, d.segments/progressSignals)
	return d
}

// run delivers segment after segment until every message is delivered, or
// continues as new when this workflow run has delivered its share.
func (d *deliverer) run(ctx workflow.Context) (DeliverResult, error) {
	d.planned = workflow.GetVersion(ctx, plannedSegmentsChange, workflow.DefaultVersion, 1) >= 1
	d.keepsProducer = workflow.GetVersion(ctx, keptSegmentProducerChange, workflow.DefaultVersion, 1) >= 1
	if d.planned && workflow.GetVersion(ctx, overlappedSegmentsChange, workflow.DefaultVersion, 1) >= 1 {
		return d.runOverlapped(ctx)
	}
	return d.runSequential(ctx)
}

// runOverlapped sends one segment at a time, in order, and prepares the
// next one (its plan and, when due, its token) while the current one is
// sent. Each of token, plan and segment is a workflow-task round trip when
// run in turn; overlapped, a segment follows the one before it as soon as
// its result is in.
//
// A prepared plan starts where the plan being sent ends, and is sized as if
// that plan were delivered in full. When it is not (the endpoint refused
// the token), the rest goes first, on a new token, and the prepared plan
// waits; both are sent as planned, so no batch is ever cut again.
func (d *deliverer) runOverlapped(ctx workflow.Context) (DeliverResult, error) {
	for scheduled := 0; d.state.Delivered < d.in.Messages; scheduled++ {
		// Continuing as new only with nothing prepared leaves no plan or
		// token behind in this run; prepareNext prepares nothing once
		// continuing is due, so this waits one segment at most.
		if d.next == nil && d.continueAsNewDue(ctx, scheduled) {
			return d.continueAsNew(ctx)
		}
		plan, err := d.takePlan(ctx)
		if err != nil {
			return DeliverResult{}, err
		}
		if plan.Empty() {
			// Nothing arrived within segmentIdle: an empty segment, which
			// counts towards a stall; the next plan starts from the same
			// offsets, so it cannot be prepared ahead.
			if err := d.segmentDelivered(ctx, deliver.SegmentResult{Offsets: d.state.Offsets}); err != nil {
				return DeliverResult{}, err
			}
			d.reportProgressAsync(ctx)
			continue
		}
		if err := d.readyToken(ctx, plan.Records); err != nil {
			return DeliverResult{}, err
		}
		segment := d.state.Segments
		sending := d.segmentActivity(ctx, plan.Records, &plan)
		d.prepareNext(ctx, scheduled+1, plan)
		var res deliver.SegmentResult
		if err := sending.Get(ctx, &res); err != nil {
			return DeliverResult{}, fmt.Errorf("deliver segment %d: %w", segment, err)
		}
		if err := d.segmentDelivered(ctx, res); err != nil {
			return DeliverResult{}, err
		}
		d.reportProgressAsync(ctx)
	}
	return d.finish(ctx), nil
}

// takePlan gives the next segment's plan: the rest a refused token left,
// which goes first; else the prepared plan; else one planned now (with a
// token, if one is due, obtained meanwhile).
func (d *deliverer) takePlan(ctx workflow.Context) (deliver.SegmentPlan, error) {
	if d.state.Plan != nil {
		return *d.state.Plan, nil
	}
	if d.next == nil {
		d.next = d.prepare(ctx, d.state.Segments, d.state.Offsets, d.state.Delivered, d.state.UsedOnToken)
	}
	prepared := d.next
	d.next = nil
	plan, err := d.collect(ctx, prepared)
	if err != nil {
		return deliver.SegmentPlan{}, err
	}
	if !sameOffsets(prepared.starts, d.state.Offsets) {
		// A segment that delivered its plan stops at the plan's ends, where
		// the prepared plan starts, so this is not expected; planning again
		// from where delivery did stop keeps it exact all the same.
		workflow.GetLogger(ctx).Warn("prepared plan does not start where the last segment stopped; planning again",
			"Segment", d.state.Segments, "PlanStarts", prepared.starts, "Offsets", d.state.Offsets)
		return d.takePlan(ctx)
	}
	return plan, nil
}

// prepareNext starts preparing the segment after the one being sent, if
// there is one to prepare: messages left beyond that plan, nothing
// prepared already (a refused token's rest goes first and the prepared
// plan waits), and no continue-as-new due before next, which must not
// leave a prepared plan behind.
func (d *deliverer) prepareNext(ctx workflow.Context, next int, sending deliver.SegmentPlan) {
	if d.next != nil || d.continueAsNewDue(ctx, next) {
		return
	}
	d.next = d.prepare(ctx, d.state.Segments+1, offsetsAfter(d.state.Offsets, sending), d.state.Delivered+int64(sending.Records), d.state.UsedOnToken+sending.Records)
}

// offsetsAfter are the offsets where a segment that starts at offsets and
// delivers plan in full stops: the plan's ends, and offsets elsewhere.
func offsetsAfter(offsets map[int32]int64, plan deliver.SegmentPlan) map[int32]int64 {
	after := make(map[int32]int64, len(offsets)+len(plan.Ends))
	for _, p := range workflow.DeterministicKeys(offsets) {
		after[p] = offsets[p]
	}
	for _, p := range workflow.DeterministicKeys(plan.Ends) {
		after[p] = plan.Ends[p]
	}
	return after
}

// sameOffsets says whether a and b hold the same offsets.
func sameOffsets(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range workflow.DeterministicKeys(a) {
		if o, ok := b[p]; !ok || o != a[p] {
			return false
		}
	}
	return true
}

// prepare starts planning segment number segment from starts, to be sent once delivered
// messages are, used of them on the current token; and obtaining a new
// token for it if the current one will be due and there is no spare. The
// plan is bounded as the segment's token will be (what is left of the
// current token's quota, or a new token's whole quota) and by what is left
// to deliver; nil when nothing is.
func (d *deliverer) prepare(ctx workflow.Context, segment int, starts map[int32]int64, delivered int64, used int) *preparedSegment {
	newToken := d.tokenDue(workflow.Now(ctx), used, 1)
	quota := d.in.TokenRenewEvery - used
	if newToken {
		quota = d.in.TokenRenewEvery
	}
	want := int(min(int64(quota), d.in.Messages-delivered))
	if want <= 0 {
		return nil
	}
	p := &preparedSegment{starts: starts, segment: segment, plan: d.planActivity(ctx, segment, starts, want)}
	if newToken && d.spareToken == nil {
		p.renewal = d.state.TokenRenewals
		p.token = d.tokenActivity(ctx, delivered)
	}
	return p
}

// collect waits for a prepared segment's plan and token; the token is kept
// as the spare one, for when the current token is due.
func (d *deliverer) collect(ctx workflow.Context, p *preparedSegment) (deliver.SegmentPlan, error) {
	var plan deliver.SegmentPlan
	if err := p.plan.Get(ctx, &plan); err != nil {
		return deliver.SegmentPlan{}, fmt.Errorf("plan segment %d: %w", p.segment, err)
	}
	if p.token != nil {
		var token deliver.SealedToken
		if err := p.token.Get(ctx, &token); err != nil {
			return deliver.SegmentPlan{}, fmt.Errorf("obtain token %d: %w", p.renewal+1, err)
		}
		d.spareToken = &token
	}
	return plan, nil
}

// readyToken makes sure the current token can send the next records: if it
// cannot, the spare token takes over, or a new one is obtained. Expiry is
// judged now, when the token is used, however early it was obtained.
func (d *deliverer) readyToken(ctx workflow.Context, records int) error {
	now := workflow.Now(ctx)
	if !d.tokenDue(now, d.state.UsedOnToken, records) {
		return nil
	}
	if d.spareToken != nil {
		d.useToken(*d.spareToken)
		d.spareToken = nil
		if !d.tokenDue(now, 0, records) {
			return nil
		}
	}
	return d.renewToken(ctx)
}

// continueAsNewDue says whether this run should hand over to a new one
// before its segment number scheduled: it has scheduled its share, or its
// history grows long.
func (d *deliverer) continueAsNewDue(ctx workflow.Context, scheduled int) bool {
	return scheduled >= d.in.SegmentsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// continueAsNew hands the delivery so far to a new run.
func (d *deliverer) continueAsNew(ctx workflow.Context) (DeliverResult, error) {
	d.in.State = d.state
	return DeliverResult{}, workflow.NewContinueAsNewError(ctx, DeliverWorkflow, d.in)
}

// finish completes the result of a delivery in which every message was
// delivered.
func (d *deliverer) finish(ctx workflow.Context) DeliverResult {
	d.state.DurationMillis = workflow.Now(ctx).UnixMilli() - d.state.StartedUnixMillis
	// The parent has no use for the last token: keep even its ciphertext
	// out of the parent's history.
	d.state.Token = deliver.SealedToken{}
	return d.state
}

// tokenDue says whether the current token cannot send messages more after
// used went on it: there is none yet, the endpoint refused it, its quota
// would be exceeded, or it expires within renewBeforeExpiry.
func (d *deliverer) tokenDue(now time.Time, used, messages int) bool {
	t := d.state.Token
	expiresSoon := now.Add(renewBeforeExpiry).Unix() >= t.ExpiresAtUnix
	return d.tokenRefused || used+messages > d.in.TokenRenewEvery || len(t.Sealed) == 0 || expiresSoon
}

// useToken makes token the current one, with its quota unused.
func (d *deliverer) useToken(token deliver.SealedToken) {
	d.state.Token = token
	d.state.UsedOnToken = 0
	d.tokenRefused = false
}

// tokenActivity asks for a new sealed token, to be used once delivered
// messages are; the token counts as a renewal from then on.
func (d *deliverer) tokenActivity(ctx workflow.Context, delivered int64) workflow.Future {
	renewal := d.state.TokenRenewals
	d.state.TokenRenewals++
	renewCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts: 10, InitialInterval: time.Second, MaximumInterval: 30 * time.Second,
			NonRetryableErrorTypes: []string{errtype.TokenClientRejected},
		},
		Summary: fmt.Sprintf("obtain token %d (after %d delivered)", renewal+1, delivered),
	})
	return workflow.ExecuteActivity(renewCtx, deliverActs.ObtainToken,
		deliver.ObtainTokenInput{Renewal: renewal, Quota: d.in.TokenRenewEvery})
}

// planActivity fixes the extent of a segment from starts: up to want
// records, waiting up to segmentIdle for the first.
func (d *deliverer) planActivity(ctx workflow.Context, segment int, starts map[int32]int64, want int) workflow.Future {
	planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: segmentIdle + 2*time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, InitialInterval: 2 * time.Second},
		Summary:             fmt.Sprintf("plan segment %d/%d (up to %d messages)", segment+1, d.segments, want),
	})
	return workflow.ExecuteActivity(planCtx, deliverActs.PlanSegment, deliver.PlanSegmentInput{
		Names: d.in.Names, Segment: segment, Offsets: starts, MaxMessages: want,
		IdleTimeoutMillis: segmentIdle.Milliseconds(),
	})
}

// segmentActivity posts the next segment, of plan (nil for runs from
// before plans: up to want messages) from the current offsets, with the
// current token.
func (d *deliverer) segmentActivity(ctx workflow.Context, want int, plan *deliver.SegmentPlan) workflow.Future {
	segment := d.state.Segments
	segCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, InitialInterval: 2 * time.Second},
		Summary:             fmt.Sprintf("deliver segment %d/%d (%d messages)", segment+1, d.segments, want),
	})
	in := deliver.SegmentInput{
		Names: d.in.Names, Segment: segment, Offsets: d.state.Offsets, MaxMessages: want,
		BatchSize: d.in.BatchSize, Token: d.state.Token, IdleTimeoutMillis: segmentIdle.Milliseconds(), Plan: plan,
	}
	if d.keepsProducer {
		in.TransactionalID = deliver.DeliveryTransactionalID(d.in.Names)
	}
	return workflow.ExecuteActivity(segCtx, deliverActs.DeliverSegment, in)
}

// segmentDelivered counts a segment, notes a refused token and fails a
// stalled delivery.
func (d *deliverer) segmentDelivered(ctx workflow.Context, res deliver.SegmentResult) error {
	d.state.addSegment(res)
	d.state.Plan = res.Rest
	if res.TokenRejected {
		d.tokenRefused = true
		workflow.GetLogger(ctx).Info("token rejected by endpoint; renewing", "reason", res.RejectReason)
	}
	return d.state.checkStall(d.in)
}

// progressDue gives the progress to report to the parent after a segment,
// if it is time to.
func (d *deliverer) progressDue() (childProgress, bool) {
	due := d.state.Segments%d.signalEvery == 0 || d.state.Delivered >= d.in.Messages
	return childProgress{Source: "deliver", Delivered: d.state.Delivered, TokenRenewals: d.state.TokenRenewals}, due
}

// reportProgress signals progress to the parent, waiting for the signal.
func (d *deliverer) reportProgress(ctx workflow.Context) {
	if p, due := d.progressDue(); due {
		signalParent(ctx, d.in.ParentWorkflowID, p)
	}
}

// reportProgressAsync signals progress to the parent without waiting for
// the signal, which would cost the next segment a workflow-task round trip;
// progress is advisory, and signalParent only logs a failed signal. The
// last report is waited for, so that it is sent before the workflow
// completes.
func (d *deliverer) reportProgressAsync(ctx workflow.Context) {
	p, due := d.progressDue()
	switch {
	case !due:
	case d.state.Delivered >= d.in.Messages:
		signalParent(ctx, d.in.ParentWorkflowID, p)
	default:
		workflow.Go(ctx, func(ctx workflow.Context) { signalParent(ctx, d.in.ParentWorkflowID, p) })
	}
}
