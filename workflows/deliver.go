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
	// TokenRejected counts the segments the endpoint cut short with a 401.
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
}

// DeliverWorkflow reads the enriched topic and posts it to the endpoint in
// segments of TokenRenewEvery messages, obtaining a fresh token before each
// segment (and after a 401).
func DeliverWorkflow(ctx workflow.Context, in DeliverInput) (DeliverResult, error) {
	if err := in.validate(); err != nil {
		return DeliverResult{}, err
	}
	d := newDeliverer(ctx, in)
	return d.run(ctx)
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
	for scheduled := 0; d.state.Delivered < d.in.Messages; scheduled++ {
		if scheduled >= d.in.SegmentsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			d.in.State = d.state
			return DeliverResult{}, workflow.NewContinueAsNewError(ctx, DeliverWorkflow, d.in)
		}
		if d.tokenDue(workflow.Now(ctx)) {
			if err := d.renewToken(ctx); err != nil {
				return DeliverResult{}, err
			}
		}
		res, err := d.deliverSegment(ctx)
		if err != nil {
			return DeliverResult{}, err
		}
		if err := d.segmentDelivered(ctx, res); err != nil {
			return DeliverResult{}, err
		}
	}
	d.state.DurationMillis = workflow.Now(ctx).UnixMilli() - d.state.StartedUnixMillis
	// The parent has no use for the last token: keep even its ciphertext
	// out of the parent's history.
	d.state.Token = deliver.SealedToken{}
	return d.state, nil
}

// tokenDue says whether the next segment needs a new token: there is none
// yet, the endpoint refused it, its quota is used up, or it expires within
// renewBeforeExpiry.
func (d *deliverer) tokenDue(now time.Time) bool {
	t := d.state.Token
	expiresSoon := now.Add(renewBeforeExpiry).Unix() >= t.ExpiresAtUnix
	return d.tokenRefused || d.state.UsedOnToken >= d.in.TokenRenewEvery || len(t.Sealed) == 0 || expiresSoon
}

// renewToken obtains a fresh sealed token for the next segment.
func (d *deliverer) renewToken(ctx workflow.Context) error {
	renewal := d.state.TokenRenewals
	renewCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts: 10, InitialInterval: time.Second, MaximumInterval: 30 * time.Second,
			NonRetryableErrorTypes: []string{errtype.TokenClientRejected},
		},
		Summary: fmt.Sprintf("obtain token %d (after %d delivered)", renewal+1, d.state.Delivered),
	})
	if err := workflow.ExecuteActivity(renewCtx, deliverActs.ObtainToken,
		deliver.ObtainTokenInput{Renewal: renewal, Quota: d.in.TokenRenewEvery}).Get(ctx, &d.state.Token); err != nil {
		return fmt.Errorf("obtain token %d: %w", renewal+1, err)
	}
	d.state.TokenRenewals++
	d.state.UsedOnToken = 0
	d.tokenRefused = false
	return nil
}

// deliverSegment posts the next segment: what is left of the token's quota,
// at most what is left to deliver. A planned segment sends the rest of the
// last plan, if a refused token left one, or else plans anew; a plan
// without records is an empty segment, with nothing to send.
func (d *deliverer) deliverSegment(ctx workflow.Context) (deliver.SegmentResult, error) {
	segment := d.state.Segments
	want := int(min(int64(d.in.TokenRenewEvery-d.state.UsedOnToken), d.in.Messages-d.state.Delivered))
	var plan *deliver.SegmentPlan
	if d.planned {
		plan = d.state.Plan
		if plan == nil {
			planned, err := d.planSegment(ctx, segment, want)
			if err != nil {
				return deliver.SegmentResult{}, err
			}
			plan = &planned
		}
		if plan.Empty() {
			return deliver.SegmentResult{Offsets: d.state.Offsets}, nil
		}
		want = plan.Records
	}
	segCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, InitialInterval: 2 * time.Second},
		Summary:             fmt.Sprintf("deliver segment %d/%d (%d messages)", segment+1, d.segments, want),
	})
	var res deliver.SegmentResult
	if err := workflow.ExecuteActivity(segCtx, deliverActs.DeliverSegment, deliver.SegmentInput{
		Names: d.in.Names, Segment: segment, Offsets: d.state.Offsets, MaxMessages: want,
		BatchSize: d.in.BatchSize, Token: d.state.Token, IdleTimeoutMillis: segmentIdle.Milliseconds(), Plan: plan,
	}).Get(ctx, &res); err != nil {
		return deliver.SegmentResult{}, fmt.Errorf("deliver segment %d: %w", segment, err)
	}
	return res, nil
}

// planSegment fixes the extent of the next segment: up to want records,
// waiting up to segmentIdle for the first.
func (d *deliverer) planSegment(ctx workflow.Context, segment, want int) (deliver.SegmentPlan, error) {
	planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: segmentIdle + 2*time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, InitialInterval: 2 * time.Second},
		Summary:             fmt.Sprintf("plan segment %d/%d (up to %d messages)", segment+1, d.segments, want),
	})
	var plan deliver.SegmentPlan
	if err := workflow.ExecuteActivity(planCtx, deliverActs.PlanSegment, deliver.PlanSegmentInput{
		Names: d.in.Names, Segment: segment, Offsets: d.state.Offsets, MaxMessages: want,
		IdleTimeoutMillis: segmentIdle.Milliseconds(),
	}).Get(ctx, &plan); err != nil {
		return deliver.SegmentPlan{}, fmt.Errorf("plan segment %d: %w", segment, err)
	}
	return plan, nil
}

// segmentDelivered counts a segment, fails a stalled delivery and reports
// progress to the parent.
func (d *deliverer) segmentDelivered(ctx workflow.Context, res deliver.SegmentResult) error {
	d.state.addSegment(res)
	d.state.Plan = res.Rest
	if res.TokenRejected {
		d.tokenRefused = true
		workflow.GetLogger(ctx).Info("token rejected by endpoint; renewing", "reason", res.RejectReason)
	}
	if err := d.state.checkStall(d.in); err != nil {
		return err
	}
	if d.state.Segments%d.signalEvery == 0 || d.state.Delivered >= d.in.Messages {
		signalParent(ctx, d.in.ParentWorkflowID, childProgress{
			Source: "deliver", Delivered: d.state.Delivered, TokenRenewals: d.state.TokenRenewals,
		})
	}
	return nil
}
