package activities

import (
	"context"
	"runtime"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
)

// heartbeatInterval is how often long-running work reports progress; the
// workflows' heartbeat timeouts are several times longer.
const heartbeatInterval = time.Second

// Reporter is where long-running work reports: its log and its heartbeat.
// An activity passes ReporterOf(its context); a benchmark or a test that
// calls the same code outside an activity passes its own logger and no
// heartbeat.
type Reporter struct {
	Log log.Logger
	// Heartbeat records progress details; nil when nobody listens.
	Heartbeat func(details any)
}

// ReporterOf is the reporter of the activity running in ctx: its logger
// (whose lines carry the workflow id, activity id and attempt) and its
// Temporal heartbeat.
func ReporterOf(ctx context.Context) Reporter {
	return Reporter{
		Log:       activity.GetLogger(ctx),
		Heartbeat: func(details any) { activity.RecordHeartbeat(ctx, details) },
	}
}

// HeartbeatEvery records details() every second from a goroutine of its
// own, until the returned stop is called or ctx ends, so an activity that
// blocks (a full producer buffer, a long wait for Flink) is not mistaken
// for a dead worker. Without a Heartbeat it does nothing. stop waits for
// the goroutine, so no heartbeat follows it.
func (r Reporter) HeartbeatEvery(ctx context.Context, details func() any) (stop func()) {
	if r.Heartbeat == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(heartbeatInterval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-ticker.C:
				r.Heartbeat(details())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// stacksLogged bounds the goroutine dump WarnIfSlow logs, which is there to
// show where something hangs, not to copy the whole process.
const stacksLogged = 256 << 10

// WarnIfSlow logs a warning with every goroutine's stack if the returned
// done is not called within after, and then how long it took in all. It
// watches steps that should take milliseconds but have been seen to hang:
// the dump names what they were waiting for.
func (r Reporter) WarnIfSlow(what string, after time.Duration) (done func()) {
	started := time.Now()
	timer := time.AfterFunc(after, func() {
		stacks := make([]byte, stacksLogged)
		stacks = stacks[:runtime.Stack(stacks, true)]
		r.Log.Warn(what+" is taking long; the worker's goroutines follow", "After", after, "Goroutines", string(stacks))
	})
	return func() {
		if !timer.Stop() {
			r.Log.Warn(what+" was slow", "Took", time.Since(started))
		}
	}
}
