package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/internal/errtype"
)

// DeliverInput drives DeliverWorkflow. State carries progress across
// continue-as-new.
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
	SegmentsPerRun int          `json:"segments_per_run,omitempty"`
	State          DeliverState `json:"state"`
}

// DeliverState is the part of DeliverWorkflow that survives continue-as-new.
type DeliverState struct {
	Offsets   map[int32]int64 `json:"offsets"`
	Delivered int64           `json:"delivered"`
	Segment   int             `json:"segment"`
	// Token is sealed: history holds ciphertext only.
	Token         deliver.SealedToken `json:"token"`
	UsedOnToken   int                 `json:"used_on_token"`
	Renewals      int                 `json:"renewals"`
	Rejected      int                 `json:"rejected"`
	Batches       int                 `json:"batches"`
	Retries       int                 `json:"retries"`
	StartedUnixM  int64               `json:"started_unix_ms"`
	EmptySegments int                 `json:"empty_segments"`
	Runs          int                 `json:"runs"`
}

// DeliverResult is the outcome of all of a run's delivery.
type DeliverResult struct {
	Delivered      int64 `json:"delivered"`
	Segments       int   `json:"segments"`
	Batches        int   `json:"batches"`
	Retries        int   `json:"retries"`
	TokenRenewals  int   `json:"token_renewals"`
	TokenRejected  int   `json:"token_rejected"`
	DurationMillis int64 `json:"duration_ms"`
	Runs           int   `json:"runs"`
}

const (
	defaultSegmentsPerRun = 200
	// segmentIdle ends a segment that waits this long for enriched
	// messages, so the workflow can judge a stall and report progress.
	segmentIdle = 30 * time.Second
	// renewBeforeExpiry renews a token that would expire within this margin
	// instead of sending a segment that would fail half way.
	renewBeforeExpiry = 30 * time.Second
)

// DeliverWorkflow reads the enriched topic and posts it to the endpoint in
// segments of TokenRenewEvery messages, obtaining a fresh token before each
// segment (and after a 401).
func DeliverWorkflow(ctx workflow.Context, in DeliverInput) (DeliverResult, error) {
	if in.SegmentsPerRun == 0 {
		in.SegmentsPerRun = defaultSegmentsPerRun
	}
	st := in.State
	st.Runs++
	if st.StartedUnixM == 0 {
		st.StartedUnixM = workflow.Now(ctx).UnixMilli()
	}
	if st.Offsets == nil {
		st.Offsets = map[int32]int64{}
	}
	segments := int((in.Messages + int64(in.TokenRenewEvery) - 1) / int64(in.TokenRenewEvery))
	signalEvery := max(1, segments/progressSignals)

	forceRenew := false
	for scheduled := 0; st.Delivered < in.Messages; scheduled++ {
		if scheduled >= in.SegmentsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in.State = st
			return DeliverResult{}, workflow.NewContinueAsNewError(ctx, DeliverWorkflow, in)
		}
		expiresSoon := workflow.Now(ctx).Add(renewBeforeExpiry).Unix() >= st.Token.ExpiresAtUnix
		if forceRenew || st.UsedOnToken >= in.TokenRenewEvery || len(st.Token.Sealed) == 0 || expiresSoon {
			renewCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				StartToCloseTimeout: 30 * time.Second,
				RetryPolicy: &temporal.RetryPolicy{
					MaximumAttempts: 10, InitialInterval: time.Second, MaximumInterval: 30 * time.Second,
					NonRetryableErrorTypes: []string{errtype.TokenClientRejected},
				},
				Summary: fmt.Sprintf("obtain token %d (after %d delivered)", st.Renewals+1, st.Delivered),
			})
			if err := workflow.ExecuteActivity(renewCtx, deliverActs.ObtainToken,
				deliver.ObtainTokenInput{Renewal: st.Renewals, Quota: in.TokenRenewEvery}).Get(ctx, &st.Token); err != nil {
				return DeliverResult{}, fmt.Errorf("obtain token %d: %w", st.Renewals+1, err)
			}
			st.Renewals++
			st.UsedOnToken = 0
			forceRenew = false
		}
		want := int(min(int64(in.TokenRenewEvery-st.UsedOnToken), in.Messages-st.Delivered))
		segCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 15 * time.Minute,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, InitialInterval: 2 * time.Second},
			Summary:             fmt.Sprintf("deliver segment %d/%d (%d messages)", st.Segment+1, segments, want),
		})
		var res deliver.SegmentResult
		if err := workflow.ExecuteActivity(segCtx, deliverActs.DeliverSegment, deliver.SegmentInput{
			Names: in.Names, Segment: st.Segment, Offsets: st.Offsets, MaxMessages: want,
			BatchSize: in.BatchSize, Token: st.Token, IdleTimeoutMillis: segmentIdle.Milliseconds(),
		}).Get(ctx, &res); err != nil {
			return DeliverResult{}, fmt.Errorf("deliver segment %d: %w", st.Segment, err)
		}
		st.Segment++
		st.Offsets = res.Offsets
		st.Delivered += int64(res.Delivered)
		st.UsedOnToken += res.Delivered
		st.Batches += res.Batches
		st.Retries += res.Retries
		if res.TokenRejected {
			st.Rejected++
			forceRenew = true
			workflow.GetLogger(ctx).Info("token rejected by endpoint; renewing", "reason", res.RejectReason)
		}
		// An empty segment waited segmentIdle for enriched messages; enough
		// of them in a row mean the pipeline upstream has stopped.
		if res.Delivered > 0 {
			st.EmptySegments = 0
		} else if st.EmptySegments++; time.Duration(st.EmptySegments)*segmentIdle >= time.Duration(in.StallSeconds)*time.Second {
			return DeliverResult{}, temporal.NewApplicationError(
				fmt.Sprintf("delivery stalled: no enriched message for %d segments of %s after %d of %d delivered (is the enrich job running?)",
					st.EmptySegments, segmentIdle, st.Delivered, in.Messages), "DeliveryStalled")
		}
		if st.Segment%signalEvery == 0 || st.Delivered >= in.Messages {
			signalParent(ctx, in.ParentWorkflowID, childProgress{
				Source: "deliver", Delivered: st.Delivered, TokenRenewals: st.Renewals,
			})
		}
	}
	return DeliverResult{
		Delivered:      st.Delivered,
		Segments:       st.Segment,
		Batches:        st.Batches,
		Retries:        st.Retries,
		TokenRenewals:  st.Renewals,
		TokenRejected:  st.Rejected,
		DurationMillis: workflow.Now(ctx).UnixMilli() - st.StartedUnixM,
		Runs:           st.Runs,
	}, nil
}
