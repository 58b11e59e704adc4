package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/internal/errtype"
)

// flinkChecksPerPace is how many checks of the Flink jobs run at one
// interval before the interval doubles: every check adds its timer and
// activity to the run's history, and doubling keeps a run of any length
// within a few thousand of those events (360 checks are an hour at the
// default 10 seconds).
const flinkChecksPerPace = 360

// watchFlink checks the run's Flink jobs every FlinkWatchSeconds until ctx
// is cancelled. The first failed job, or a check that could not be made,
// goes to fail, which ends the run.
func (p *pipeline) watchFlink(ctx workflow.Context, fail func(error)) {
	every := time.Duration(p.in.FlinkWatchSeconds) * time.Second
	for checks := 1; ; checks++ {
		if checks%flinkChecksPerPace == 0 {
			every *= 2
		}
		timer := workflow.NewTimerWithOptions(ctx, every, workflow.TimerOptions{Summary: "next check of the Flink jobs"})
		if timer.Get(ctx, nil) != nil {
			return // cancelled: the messages stopped flowing
		}
		if err := p.checkFlink(ctx); err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
	}
}

// checkFlink looks at the run's Flink jobs once through the JobManager,
// keeps their figures in the metrics, and returns the non-retryable
// errtype.FlinkJobFailed, with Flink's root cause, when one of them ended
// or restarted more than MaxFlinkRestarts times.
func (p *pipeline) checkFlink(ctx workflow.Context) error {
	checkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// A JobManager that is restarting answers nothing for a while; the
		// check waits about a minute for it, so that the run fails on what
		// the JobManager says once back (a job it lost), not on the
		// connection refused meanwhile.
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts: 6, InitialInterval: 2 * time.Second, MaximumInterval: 15 * time.Second,
			NonRetryableErrorTypes: []string{errtype.InvalidInput, errtype.FlinkConfig},
		},
		Summary: "check the Flink jobs",
	})
	var res flink.CheckResult
	if err := workflow.ExecuteActivity(checkCtx, flinkActs.CheckFlinkJobs, flink.CheckInput{
		Jobs: p.metrics.FlinkJobs, MaxRestarts: p.in.MaxFlinkRestarts,
	}).Get(ctx, &res); err != nil {
		return fmt.Errorf("check Flink jobs: %w", err)
	}
	p.metrics.addFlink(res)
	if res.Failure != "" {
		return temporal.NewNonRetryableApplicationError(res.Failure, errtype.FlinkJobFailed, nil)
	}
	return nil
}
