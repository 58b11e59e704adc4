package workflows

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/internal/errtype"
)

func TestDeliverResultReadsStateAndOlderResultNames(t *testing.T) {
	// The state as DeliverInput.State wrote it, and a result as older
	// workers returned it: both carry the counts a continued run needs.
	var state DeliverResult
	require.NoError(t, json.Unmarshal([]byte(`{"offsets":{"3":42},"delivered":30000,"segment":3,
		"token":{"sealed":"Y2lwaGVy","expires_at_unix":99},"used_on_token":10000,"renewals":4,"rejected":1,
		"batches":300,"retries":2,"started_unix_ms":7,"empty_segments":1,"runs":2}`), &state))
	require.Equal(t, DeliverResult{
		Delivered: 30_000, Segments: 3, Batches: 300, Retries: 2, TokenRenewals: 4, TokenRejected: 1,
		StartedUnixMillis: 7, Runs: 2, Offsets: map[int32]int64{3: 42},
		Token: deliver.SealedToken{Sealed: []byte("cipher"), ExpiresAtUnix: 99}, UsedOnToken: 10_000, EmptySegments: 1,
	}, state)

	var older DeliverResult
	require.NoError(t, json.Unmarshal([]byte(`{"delivered":50000,"segments":5,"batches":554,"retries":0,
		"token_renewals":5,"token_rejected":1,"duration_ms":32106,"runs":1}`), &older))
	require.Equal(t, DeliverResult{
		Delivered: 50_000, Segments: 5, Batches: 554, TokenRenewals: 5, TokenRejected: 1, DurationMillis: 32_106, Runs: 1,
	}, older)

	encoded, err := json.Marshal(state)
	require.NoError(t, err)
	var again DeliverResult
	require.NoError(t, json.Unmarshal(encoded, &again))
	require.Equal(t, state, again)
}

func TestDeliverResultCountsSegmentsAndJudgesStall(t *testing.T) {
	in := DeliverInput{Messages: 1_000, StallSeconds: 60} // two empty segments of segmentIdle
	var r DeliverResult
	r.addSegment(deliver.SegmentResult{Offsets: map[int32]int64{0: 10}, Delivered: 10, Batches: 1, Retries: 2})
	r.addSegment(deliver.SegmentResult{Offsets: map[int32]int64{0: 10}, TokenRejected: true})
	require.NoError(t, r.checkStall(in), "one empty segment is no stall")
	r.addSegment(deliver.SegmentResult{Offsets: map[int32]int64{0: 30}, Delivered: 20, Batches: 1})
	require.NoError(t, r.checkStall(in))
	require.Equal(t, DeliverResult{
		Delivered: 30, Segments: 3, Batches: 2, Retries: 2, TokenRejected: 1,
		Offsets: map[int32]int64{0: 30}, UsedOnToken: 30,
	}, r, "a delivered segment resets the empty count")

	r.addSegment(deliver.SegmentResult{Offsets: r.Offsets})
	require.NoError(t, r.checkStall(in))
	r.addSegment(deliver.SegmentResult{Offsets: r.Offsets})
	err := r.checkStall(in)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, errtype.DeliveryStalled, appErr.Type())
	require.Contains(t, err.Error(), "after 30 of 1000 delivered")
}

func TestTokenDue(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	valid := deliver.SealedToken{Sealed: []byte("x"), ExpiresAtUnix: now.Add(time.Hour).Unix()}
	cases := []struct {
		name    string
		token   deliver.SealedToken
		used    int
		refused bool
		want    bool
	}{
		{"valid token with quota left", valid, 100, false, false},
		{"no token yet", deliver.SealedToken{}, 0, false, true},
		{"quota used up", valid, 1_000, false, true},
		{"refused by the endpoint", valid, 0, true, true},
		{"expires within the margin", deliver.SealedToken{Sealed: []byte("x"), ExpiresAtUnix: now.Add(renewBeforeExpiry).Unix()}, 0, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := deliverer{in: DeliverInput{TokenRenewEvery: 1_000}, tokenRefused: tc.refused}
			d.state.Token, d.state.UsedOnToken = tc.token, tc.used
			require.Equal(t, tc.want, d.tokenDue(now, d.state.UsedOnToken, 1))
		})
	}
}

// Every segment is planned before it is sent, and a segment cut short by a
// refused token is followed, with a new token, by the rest of its plan as
// it was: its batches are cut from the same records, never planned again.
// The plan prepared meanwhile for the segment after waits for the rest.
func TestDeliverSendsTheRestOfARefusedPlanUnchanged(t *testing.T) {
	f := &fakeStack{rejectOnce: true}
	env := newEnv(t, f)
	env.ExecuteWorkflow(DeliverWorkflow, DeliverInput{
		Names: PipelineInput{RunID: "plan"}.runNames(), Messages: 30_000, BatchSize: 100, TokenRenewEvery: 10_000, StallSeconds: 300,
	})
	require.NoError(t, env.GetWorkflowError())
	var res DeliverResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, int64(30_000), res.Delivered)
	require.Nil(t, res.Plan, "a finished delivery has no plan left")

	// 10,000; 10,000 refused after 5,000; its rest of 5,000 on a new token;
	// the 10,000 planned while the refused segment was sent, on the token
	// obtained for it then.
	require.Len(t, f.segmentInputs, 4)
	for i, in := range f.segmentInputs {
		require.NotNil(t, in.Plan, "segment %d has no plan", i)
		require.Equal(t, in.Plan.Records, in.MaxMessages, "segment %d is bounded by its plan", i)
	}
	refused, rest, after := f.segmentInputs[1], f.segmentInputs[2], f.segmentInputs[3]
	require.Equal(t, refused.Plan.Ends, rest.Plan.Ends, "the rest ends where the refused plan did")
	require.Equal(t, 5_000, rest.Plan.Records)
	require.Equal(t, map[int32]int64{0: 15_000}, rest.Offsets, "the rest starts where the refused segment stopped")
	require.Equal(t, map[int32]int64{0: 20_000}, after.Offsets, "the prepared plan follows the rest")
	require.Equal(t, map[int32]int64{0: 30_000}, after.Plan.Ends)
	require.Equal(t, 3, f.plans, "the rest is not planned again")
	require.Equal(t, 4, f.tokens, "a new token after the refusal")
}

// A continued run sends the rest a refused token left, as it was.
func TestDeliverCarriesTheRestOfAPlanAcrossContinueAsNew(t *testing.T) {
	f := &fakeStack{rejectOnce: true}
	env := newEnv(t, f)
	env.ExecuteWorkflow(DeliverWorkflow, DeliverInput{
		Names: PipelineInput{RunID: "plan-can"}.runNames(), Messages: 30_000, BatchSize: 100, TokenRenewEvery: 10_000,
		StallSeconds: 300, SegmentsPerRun: 2,
	})
	next := deliverContinuedAs(t, env)
	require.NotNil(t, next.State.Plan)
	require.Equal(t, f.segmentInputs[1].Plan.Ends, next.State.Plan.Ends)
	require.Equal(t, 5_000, next.State.Plan.Records)
	require.Equal(t, int64(15_000), next.State.Delivered)
}
