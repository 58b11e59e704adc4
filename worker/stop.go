package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
)

// maxHandBackTime is the most of the stop timeout kept for handing running
// activities back: an activity whose context ends returns within a second
// or two (a Kafka transaction aborted, HTTP requests cut), and its failure
// must reach Temporal before the worker closes its connection.
const maxHandBackTime = 5 * time.Second

// handBackAfter is how long after SIGTERM running activities may go on
// before their contexts are cancelled: the stop timeout less the time kept
// for handing them back, at most half of it.
func handBackAfter(stopTimeout time.Duration) time.Duration {
	return stopTimeout - min(maxHandBackTime, stopTimeout/2)
}

// errWorkerStopping is the cause of an activity context cancelled because
// its worker stops.
var errWorkerStopping = errors.New("worker stopping")

// handBack cancels the activities still running a while after the worker
// was told to stop, and turns what they return into a retryable
// errtype.WorkerStopping failure, so that Temporal runs them again on
// another worker at once.
//
// The SDK alone does not: at the end of WorkerStopTimeout it cancels the
// activities' contexts and returns from Stop without waiting for them, so
// the process exits before they report, and Temporal waits for each one's
// heartbeat or start-to-close timeout (minutes) before retrying it.
// Cancelling them here, inside the stop timeout, lets the SDK's Stop wait
// for their answers.
type handBack struct {
	interceptor.WorkerInterceptorBase

	after time.Duration
	// due ends handBackAfter the signal; every activity context ends with it.
	due       context.Context
	cancelDue context.CancelFunc
	begin     sync.Once
}

func newHandBack(stopTimeout time.Duration) *handBack {
	due, cancel := context.WithCancel(context.Background())
	return &handBack{after: handBackAfter(stopTimeout), due: due, cancelDue: cancel}
}

// stopping starts the countdown; the first call counts.
func (h *handBack) stopping() {
	h.begin.Do(func() { time.AfterFunc(h.after, h.cancelDue) })
}

// relay passes the first signal of interrupt on to the worker's Run and
// starts the countdown.
func (h *handBack) relay(interrupt <-chan any) <-chan any {
	relayed := make(chan any, 1)
	go func() {
		sig := <-interrupt
		h.stopping()
		relayed <- sig
	}()
	return relayed
}

func (h *handBack) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &handBackActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, due: h.due}
}

type handBackActivity struct {
	interceptor.ActivityInboundInterceptorBase
	due context.Context
}

func (a *handBackActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// due is the worker's, not the activity's: it cancels ctx, not
	// the other way round.
	stop := context.AfterFunc(a.due, func() { cancel(errWorkerStopping) }) //nolint:contextcheck // see above

	defer stop()
	result, err := a.Next.ExecuteActivity(ctx, in)
	return result, handedBack(ctx, err)
}

// handedBack is err as it reaches Temporal: an error of an activity whose
// context the stopping worker cancelled becomes a retryable
// errtype.WorkerStopping, whatever the activity made of the cancellation
// (a non-retryable error caused by it must not fail the run).
func handedBack(ctx context.Context, err error) error {
	if err == nil || !errors.Is(context.Cause(ctx), errWorkerStopping) {
		return err
	}
	info := activity.GetInfo(ctx)
	activity.GetLogger(ctx).Info("worker stopping: activity handed back to Temporal for another worker", "Error", err)
	return temporal.NewApplicationErrorWithCause(
		fmt.Sprintf("worker stopping: %s handed back before it finished, for another worker to retry", info.ActivityType.Name),
		errtype.WorkerStopping, err)
}
