package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/deliver"
)

// runSequential is the delivery loop of runs recorded before segments
// overlapped (overlappedSegmentsChange): token, plan and segment one after
// another. It stays as it was so that their histories replay; new runs take
// runOverlapped.
func (d *deliverer) runSequential(ctx workflow.Context) (DeliverResult, error) {
	for scheduled := 0; d.state.Delivered < d.in.Messages; scheduled++ {
		if d.continueAsNewDue(ctx, scheduled) {
			return d.continueAsNew(ctx)
		}
		if d.tokenDue(workflow.Now(ctx), d.state.UsedOnToken, 1) {
			if err := d.renewToken(ctx); err != nil {
				return DeliverResult{}, err
			}
		}
		res, err := d.deliverSegmentSequential(ctx)
		if err != nil {
			return DeliverResult{}, err
		}
		if err := d.segmentDelivered(ctx, res); err != nil {
			return DeliverResult{}, err
		}
		d.reportProgress(ctx)
	}
	return d.finish(ctx), nil
}

// deliverSegmentSequential posts the next segment: what is left of the
// token's quota, at most what is left to deliver. A planned segment sends
// the rest of the last plan, if a refused token left one, or else plans
// anew; a plan without records is an empty segment, with nothing to send.
func (d *deliverer) deliverSegmentSequential(ctx workflow.Context) (deliver.SegmentResult, error) {
	segment := d.state.Segments
	want := int(min(int64(d.in.TokenRenewEvery-d.state.UsedOnToken), d.in.Messages-d.state.Delivered))
	var plan *deliver.SegmentPlan
	if d.planned {
		plan = d.state.Plan
		if plan == nil {
			var planned deliver.SegmentPlan
			if err := d.planActivity(ctx, segment, d.state.Offsets, want).Get(ctx, &planned); err != nil {
				return deliver.SegmentResult{}, fmt.Errorf("plan segment %d: %w", segment, err)
			}
			plan = &planned
		}
		if plan.Empty() {
			return deliver.SegmentResult{Offsets: d.state.Offsets}, nil
		}
		want = plan.Records
	}
	var res deliver.SegmentResult
	if err := d.segmentActivity(ctx, want, plan).Get(ctx, &res); err != nil {
		return deliver.SegmentResult{}, fmt.Errorf("deliver segment %d: %w", segment, err)
	}
	return res, nil
}

// renewToken obtains a fresh token and makes it the current one.
func (d *deliverer) renewToken(ctx workflow.Context) error {
	renewal := d.state.TokenRenewals
	var token deliver.SealedToken
	if err := d.tokenActivity(ctx, d.state.Delivered).Get(ctx, &token); err != nil {
		return fmt.Errorf("obtain token %d: %w", renewal+1, err)
	}
	d.useToken(token)
	return nil
}
