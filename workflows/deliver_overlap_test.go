package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/internal/errtype"
)

// deliverFake is an enriched topic of one partition (offset n holds message
// n) behind mocked delivery activities that log, in the order they happen,
// when each starts and ends. A DeliverSegment can hold its end until the
// workflow has asked for the next plan, which proves the overlap without
// measuring time.
type deliverFake struct {
	mu     sync.Mutex
	start  time.Time // the test environment's clock at the start
	events []string

	// planCap bounds what a plan finds (0: no bound), as when the topic
	// holds fewer records; emptyPlans are the plan calls (from 0) that
	// find none; failPlan is the plan call that fails (-1: none).
	planCap    int
	emptyPlans map[int]bool
	failPlan   int
	// failToken is the token call (from 0) that fails (-1: none);
	// shortTokens are those that expire within renewBeforeExpiry.
	failToken   int
	shortTokens map[int]bool
	// refuse is the segment number whose token the endpoint refuses half
	// way (-1: none).
	refuse int
	// unopenable are the token calls (from 0) sealed with a key the
	// delivering worker does not hold.
	unopenable map[int]bool
	// holdBelow keeps each segment that ends below this offset from ending
	// until a plan from its end and a token for the next segment were asked
	// for, or holdLimit passed (0: no segment waits).
	holdBelow int64

	plans    []deliver.PlanSegmentInput
	segments []deliver.SegmentInput
	tokens   int
}

const holdLimit = 5 * time.Second

func newDeliverFake() *deliverFake {
	return &deliverFake{start: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), failPlan: -1, failToken: -1, refuse: -1}
}

func (f *deliverFake) log(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

// index is the position of the first event with the given prefix, or -1.
func (f *deliverFake) index(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.IndexFunc(f.events, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

func (f *deliverFake) env(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newBareEnv()
	env.SetStartTime(f.start)
	env.SetTestTimeout(4 * holdLimit)
	env.OnActivity(deliverActs.ObtainToken, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in deliver.ObtainTokenInput) (deliver.SealedToken, error) {
			f.mu.Lock()
			call := f.tokens
			f.tokens++
			f.mu.Unlock()
			f.log("token %d", call)
			if call == f.failToken {
				return deliver.SealedToken{}, temporal.NewNonRetryableApplicationError("client rejected", errtype.TokenClientRejected, nil)
			}
			expires := f.start.Add(time.Hour)
			if f.shortTokens[call] {
				expires = f.start.Add(renewBeforeExpiry / 2)
			}
			return deliver.SealedToken{Sealed: []byte(fmt.Sprintf("token-%d", call)), ExpiresAtUnix: expires.Unix(), Quota: in.Quota}, nil
		})
	env.OnActivity(deliverActs.PlanSegment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in deliver.PlanSegmentInput) (deliver.SegmentPlan, error) {
			f.mu.Lock()
			call := len(f.plans)
			f.plans = append(f.plans, in)
			f.mu.Unlock()
			from := in.Offsets[0]
			f.log("plan from %d", from)
			switch {
			case call == f.failPlan:
				return deliver.SegmentPlan{}, temporal.NewNonRetryableApplicationError("topic gone", "TopicGone", nil)
			case f.emptyPlans[call]:
				return deliver.SegmentPlan{Ends: map[int32]int64{}}, nil
			}
			n := in.MaxMessages
			if f.planCap > 0 {
				n = min(n, f.planCap)
			}
			return deliver.SegmentPlan{Ends: map[int32]int64{0: from + int64(n)}, Records: n}, nil
		})
	env.OnActivity(deliverActs.DeliverSegment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in deliver.SegmentInput) (deliver.SegmentResult, error) {
			f.mu.Lock()
			f.segments = append(f.segments, in)
			f.mu.Unlock()
			f.log("deliver %d start", in.Segment)
			end := in.Plan.Ends[0]
			if end < f.holdBelow {
				prepared := func() bool {
					return f.index(fmt.Sprintf("plan from %d", end)) >= 0 && f.index(fmt.Sprintf("token %d", in.Segment+1)) >= 0
				}
				for deadline := time.Now().Add(holdLimit); !prepared() && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			}
			var call int
			if _, err := fmt.Sscanf(tokenOf(in), "token-%d", &call); err == nil && f.unopenable[call] {
				// What DeliverSegment returns for a token it cannot open.
				f.log("deliver %d unopened", in.Segment)
				return deliver.SegmentResult{Offsets: in.Offsets, TokenRejected: true, RejectReason: "unknown key", Rest: in.Plan}, nil
			}
			res := deliver.SegmentResult{Offsets: map[int32]int64{0: end}, Delivered: in.Plan.Records, Batches: 1}
			if in.Segment == f.refuse {
				half := in.Plan.Records / 2
				stop := in.Offsets[0] + int64(half)
				res = deliver.SegmentResult{
					Offsets: map[int32]int64{0: stop}, Delivered: half, Batches: 1, TokenRejected: true, RejectReason: "quota exhausted",
					Rest: &deliver.SegmentPlan{Ends: in.Plan.Ends, Records: in.Plan.Records - half},
				}
			}
			f.log("deliver %d end", in.Segment)
			return res, nil
		})
	return env
}

func deliverInput(runID string, messages int64) DeliverInput {
	return DeliverInput{
		Names: PipelineInput{RunID: runID}.runNames(), Messages: messages, BatchSize: 100, TokenRenewEvery: 10_000, StallSeconds: 300,
	}
}

func deliverResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) DeliverResult {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res DeliverResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

// tokenOf names the token a segment was sent with.
func tokenOf(in deliver.SegmentInput) string { return string(in.Token.Sealed) }

// The next segment's plan, and its token, are asked for while a segment is
// sent, not after it; each segment still starts where the one before
// stopped, on a token of its own.
func TestDeliverPreparesTheNextSegmentWhileSendingOne(t *testing.T) {
	f := newDeliverFake()
	f.holdBelow = 30_000
	env := f.env(t)
	env.ExecuteWorkflow(DeliverWorkflow, deliverInput("overlap", 30_000))
	res := deliverResult(t, env)
	require.Equal(t, int64(30_000), res.Delivered)
	require.Equal(t, 3, res.Segments)
	require.Equal(t, 3, res.TokenRenewals)
	require.Nil(t, res.Plan)

	for segment, next := range []int{10_000, 20_000} {
		end := f.index(fmt.Sprintf("deliver %d end", segment))
		require.Positive(t, end)
		require.Less(t, f.index(fmt.Sprintf("plan from %d", next)), end, "plan after segment %d asked for while it was sent: %v", segment, f.events)
		require.Less(t, f.index(fmt.Sprintf("token %d", segment+1)), end, "token for segment %d obtained while segment %d was sent: %v", segment+1, segment, f.events)
	}
	require.Len(t, f.plans, 3, "nothing planned beyond the last message")
	require.Equal(t, 3, f.tokens)
	for i, in := range f.segments {
		require.Equal(t, int64(i*10_000), in.Offsets[0], "segment %d starts where the one before stopped", i)
		require.Equal(t, 10_000, in.Plan.Records)
		require.Equal(t, fmt.Sprintf("token-%d", i), tokenOf(in), "segment %d has a token of its own", i)
		require.Equal(t, deliver.DeliveryTransactionalID(in.Names), in.TransactionalID, "segment %d commits under the run's one id", i)
	}
}

// A token sealed with a key the delivering worker does not hold (a key
// rotation, or a worker with another key) costs a renewal, not the run:
// the segment sends nothing, and its whole plan goes next on a new token.
func TestDeliverRenewsATokenTheWorkerCannotOpen(t *testing.T) {
	f := newDeliverFake()
	f.unopenable = map[int]bool{0: true}
	env := f.env(t)
	env.ExecuteWorkflow(DeliverWorkflow, deliverInput("unopened", 20_000))
	res := deliverResult(t, env)
	require.Equal(t, int64(20_000), res.Delivered)
	require.Equal(t, 1, res.TokenRejected)

	require.Len(t, f.segments, 3)
	require.Equal(t, "token-0", tokenOf(f.segments[0]))
	for i, in := range f.segments[1:] {
		require.NotEqual(t, "token-0", tokenOf(in), "segment %d sent on the token it could not open", i+1)
	}
	require.Equal(t, f.segments[0].Offsets, f.segments[1].Offsets, "the unopened segment's plan goes next, from the same offsets")
	require.Equal(t, f.segments[0].Plan, f.segments[1].Plan)
	require.Equal(t, int64(10_000), f.segments[2].Offsets[0])
}

// A refused token (401) cuts a segment short: its rest goes next, on a new
// token, and the plan prepared meanwhile waits for it; every message is
// sent once.
func TestDeliverSendsTheRestBeforeThePreparedPlan(t *testing.T) {
	f := newDeliverFake()
	f.refuse = 1
	env := f.env(t)
	env.ExecuteWorkflow(DeliverWorkflow, deliverInput("refused", 30_000))
	res := deliverResult(t, env)
	require.Equal(t, int64(30_000), res.Delivered)
	require.Equal(t, 1, res.TokenRejected)

	require.Len(t, f.segments, 4)
	starts, ends := []int64{}, []int64{}
	for _, in := range f.segments {
		starts, ends = append(starts, in.Offsets[0]), append(ends, in.Plan.Ends[0])
	}
	require.Equal(t, []int64{0, 10_000, 15_000, 20_000}, starts)
	require.Equal(t, []int64{10_000, 20_000, 20_000, 30_000}, ends, "the rest ends where the refused plan did")
	require.Equal(t, 5_000, f.segments[2].Plan.Records)
	require.NotEqual(t, tokenOf(f.segments[1]), tokenOf(f.segments[2]), "the rest goes on a new token")
	require.NotEqual(t, tokenOf(f.segments[2]), tokenOf(f.segments[3]), "the prepared plan of 10,000 does not fit what the rest left of its token")
	require.Len(t, f.plans, 3, "neither the rest nor the prepared plan is planned again")
}

// A prepared plan that finds nothing is an empty segment, counted towards a
// stall as before; the next plan starts from the same offsets, and the
// token obtained with the empty plan serves the next segment.
func TestDeliverCountsAnEmptyPreparedPlan(t *testing.T) {
	f := newDeliverFake()
	f.emptyPlans = map[int]bool{1: true}
	env := f.env(t)
	env.ExecuteWorkflow(DeliverWorkflow, deliverInput("empty", 20_000))
	res := deliverResult(t, env)
	require.Equal(t, int64(20_000), res.Delivered)
	require.Equal(t, 3, res.Segments, "10,000, an empty one, 10,000")
	require.Equal(t, 0, res.EmptySegments)

	require.Len(t, f.plans, 3)
	require.Equal(t, int64(10_000), f.plans[1].Offsets[0])
	require.Equal(t, int64(10_000), f.plans[2].Offsets[0], "planned again from where the empty plan started")
	require.Len(t, f.segments, 2)
	require.Equal(t, 2, f.tokens, "the token obtained with the empty plan is used")
	require.Equal(t, "token-1", tokenOf(f.segments[1]))
}

// Prepared plans that keep finding nothing stall delivery after
// StallSeconds worth of empty segments, as sequential delivery did.
func TestDeliverStallsOnEmptyPreparedPlans(t *testing.T) {
	f := newDeliverFake()
	f.emptyPlans = map[int]bool{1: true, 2: true, 3: true, 4: true}
	env := f.env(t)
	in := deliverInput("stall", 20_000)
	in.StallSeconds = int(2 * segmentIdle / time.Second)
	env.ExecuteWorkflow(DeliverWorkflow, in)
	require.True(t, env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	require.Equal(t, errtype.DeliveryStalled, appErr.Type())
	require.Contains(t, appErr.Error(), "no enriched message for 2 segments")
	require.Contains(t, appErr.Error(), "after 10000 of 20000 delivered")
	require.Len(t, f.plans, 3, "the first plan, then two empty ones")
}

// The last segments are planned for what is left, counting what is
// planned but not yet delivered, and nothing is planned beyond; a plan
// short of its token's quota leaves the rest of the quota to the next plan,
// on the same token.
func TestDeliverPlansNoMoreThanIsLeft(t *testing.T) {
	f := newDeliverFake()
	f.planCap = 6_000
	env := f.env(t)
	env.ExecuteWorkflow(DeliverWorkflow, deliverInput("last", 20_000))
	res := deliverResult(t, env)
	require.Equal(t, int64(20_000), res.Delivered)

	wants := []int{}
	for _, p := range f.plans {
		wants = append(wants, p.MaxMessages)
	}
	require.Equal(t, []int{10_000, 4_000, 10_000, 4_000}, wants)
	require.Equal(t, 2, f.tokens, "two tokens' quota")
	perToken := map[string]int{}
	for _, in := range f.segments {
		perToken[tokenOf(in)] += in.Plan.Records
	}
	require.Equal(t, map[string]int{"token-0": 10_000, "token-1": 10_000}, perToken)

	f = newDeliverFake()
	env = f.env(t)
	env.ExecuteWorkflow(DeliverWorkflow, deliverInput("last-part", 25_000))
	res = deliverResult(t, env)
	require.Equal(t, int64(25_000), res.Delivered)
	require.Len(t, f.plans, 3)
	require.Equal(t, 5_000, f.plans[2].MaxMessages)
	require.Equal(t, 3, f.tokens)
}

// A token obtained ahead is judged when it is used: one that expires within
// renewBeforeExpiry by then is replaced before the segment is sent.
func TestDeliverRenewsAPreparedTokenThatExpiresSoon(t *testing.T) {
	f := newDeliverFake()
	f.shortTokens = map[int]bool{1: true}
	env := f.env(t)
	env.ExecuteWorkflow(DeliverWorkflow, deliverInput("expiry", 30_000))
	res := deliverResult(t, env)
	require.Equal(t, int64(30_000), res.Delivered)
	require.Equal(t, 4, f.tokens)
	got := []string{}
	for _, in := range f.segments {
		got = append(got, tokenOf(in))
	}
	require.Equal(t, []string{"token-0", "token-2", "token-3"}, got,
		"token 1, obtained during segment 0, expires soon and is replaced when segment 1 is due")
}

// A run continues as new only with nothing prepared: it prepares no plan
// for the segment the next run will send, so no planned extent is lost and
// the next run starts cleanly from the offsets.
func TestDeliverPreparesNothingAcrossContinueAsNew(t *testing.T) {
	f := newDeliverFake()
	env := f.env(t)
	in := deliverInput("can", 50_000)
	in.SegmentsPerRun = 2
	env.ExecuteWorkflow(DeliverWorkflow, in)
	next := deliverContinuedAs(t, env)
	require.Nil(t, next.State.Plan)
	require.Equal(t, int64(20_000), next.State.Delivered)
	require.Equal(t, map[int32]int64{0: 20_000}, next.State.Offsets)
	require.Equal(t, 2, next.State.Segments)
	require.Len(t, f.plans, 2, "nothing planned for the next run")
	require.Equal(t, 2, f.tokens, "no token obtained for the next run")
	require.Equal(t, 2, next.State.TokenRenewals)
}

// A refused token's rest, and the plan prepared while the refused segment
// was sent, are both sent before the run continues as new: one segment
// beyond SegmentsPerRun, rather than a prepared plan left behind.
func TestDeliverSendsThePreparedPlanBeforeContinuingAsNew(t *testing.T) {
	f := newDeliverFake()
	f.refuse = 0
	env := f.env(t)
	in := deliverInput("can-refused", 50_000)
	in.SegmentsPerRun = 2
	env.ExecuteWorkflow(DeliverWorkflow, in)
	next := deliverContinuedAs(t, env)
	require.Nil(t, next.State.Plan)
	require.Equal(t, int64(20_000), next.State.Delivered)
	require.Equal(t, 3, next.State.Segments, "refused, rest, prepared")
	require.Len(t, f.plans, 2)
}

// A prepared plan or token that fails fails the run, once the segment sent
// meanwhile is counted, as a plan or token failing before its segment did.
func TestDeliverFailsWhenAPreparationFails(t *testing.T) {
	for _, c := range []struct {
		name   string
		fail   func(*deliverFake)
		errors []string
	}{
		{"plan", func(f *deliverFake) { f.failPlan = 1 }, []string{"plan segment 1", "topic gone"}},
		{"token", func(f *deliverFake) { f.failToken = 1 }, []string{"obtain token 2", "client rejected"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newDeliverFake()
			c.fail(f)
			env := f.env(t)
			env.ExecuteWorkflow(DeliverWorkflow, deliverInput("fail-"+c.name, 30_000))
			require.True(t, env.IsWorkflowCompleted())
			for _, want := range c.errors {
				require.ErrorContains(t, env.GetWorkflowError(), want)
			}
			require.Len(t, f.segments, 1)
		})
	}
}

// Progress still goes to the parent after each segment, though the loop
// waits only for the last report's signal.
func TestDeliverReportsProgressWithoutWaiting(t *testing.T) {
	f := newDeliverFake()
	env := f.env(t)
	var mu sync.Mutex
	var reported []int64
	env.OnSignalExternalWorkflow(mock.Anything, "parent", "", progressSignal, mock.Anything).Return(
		func(_, _, _, _ string, arg interface{}) error {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, arg.(childProgress).Delivered)
			return nil
		})
	in := deliverInput("progress", 30_000)
	in.ParentWorkflowID = "parent"
	env.ExecuteWorkflow(DeliverWorkflow, in)
	deliverResult(t, env)
	// The test environment calls the mock on a goroutine of its own, which
	// may run after the workflow completed.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reported) == 3
	}, holdLimit, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(reported)
	require.Equal(t, []int64{10_000, 20_000, 30_000}, reported)
}
