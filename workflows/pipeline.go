// Package workflows holds flowproof's Temporal workflows. PipelineWorkflow
// drives one run from health checks to a verified report; ProduceWorkflow
// and DeliverWorkflow are its children, each continuing as new so a run of
// any size keeps a bounded history. Workflows here do no I/O: every effect is
// an activity of package activities.
package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/activities/preflight"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/searchattr"
)

// Stages of a run, in order; they name the FlowproofStage search attribute.
const (
	StageHealth  = "health"
	StagePrepare = "prepare"
	StageFlink   = "flink"
	StageProduce = "produce+deliver"
	StageVerify  = "verify"
	StageCleanup = "cleanup"
	StageDone    = "done"
)

// pipeline is one PipelineWorkflow execution: the progress its query
// answers and the metrics its result reports.
type pipeline struct {
	in       PipelineInput
	names    activities.RunNames
	progress Progress
	metrics  Metrics
	started  time.Time
	// failedStage is the stage the run was in when it failed, was canceled
	// or passed its deadline.
	failedStage string
	timedOut    bool
	// keepsHistory: the run carries FlowproofInputHash and stores its
	// result (see keepsHistory).
	keepsHistory bool
}

// PipelineWorkflow runs one end-to-end proof of the streaming pipeline.
//
// Every ending carries the whole PipelineResult so far: a success returns
// it; a failure, a failed verification or a run past its deadline fails
// the workflow with it as the failure's details; a cancellation ends
// canceled with it as the details. The Temporal UI and the starter show it
// in each case.
func PipelineWorkflow(ctx workflow.Context, input PipelineInput) (PipelineResult, error) {
	in, err := input.withDefaults(workflow.GetInfo(ctx).WorkflowExecution.ID)
	if err != nil {
		return PipelineResult{}, err
	}
	p := newPipeline(ctx, in)
	if err := p.followProgress(ctx); err != nil {
		return PipelineResult{}, err
	}
	if p.keepsHistory = keepsHistory(ctx); p.keepsHistory {
		p.upsertInputHash(ctx)
	}
	// Runs recorded before endings kept their result had no deadline and
	// completed even when they failed; they replay as they ran.
	keepsResult := workflow.GetVersion(ctx, "result-on-every-ending", workflow.DefaultVersion, 1) == 1
	runCtx, endRun := workflow.WithCancel(ctx)
	defer endRun()
	if keepsResult {
		p.enforceDeadline(runCtx, endRun)
	}
	verified, runErr := p.run(runCtx)
	endRun() // stops the deadline's timer

	// Cleanup runs whatever happened, also when the run was cancelled: a
	// disconnected context outlives the cancellation.
	cleanupCtx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	cleanupErr := p.cleanup(cleanupCtx)
	if cleanupErr != nil {
		workflow.GetLogger(ctx).Error("cleanup failed", "error", cleanupErr)
	}
	status := p.conclude(ctx, verified, runErr, cleanupErr)
	p.progress.Stage = StageDone
	_ = workflow.UpsertTypedSearchAttributes(cleanupCtx,
		searchattr.Stage.ValueSet(StageDone), searchattr.Status.ValueSet(string(status)))
	p.updateDetails(cleanupCtx)
	// Runs recorded before the worker exported run metrics replay without.
	if workflow.GetVersion(ctx, "record-run-metrics", workflow.DefaultVersion, 1) == 1 {
		p.recordRunMetrics(cleanupCtx, status)
	}
	if p.keepsHistory {
		p.storeResult(cleanupCtx, status)
	}
	// Runs recorded before failure notices replay without.
	if status == StatusFailed && workflow.GetVersion(ctx, "notify-run-failed", workflow.DefaultVersion, 1) == 1 {
		p.notifyRunFailed(cleanupCtx, status)
	}
	result := PipelineResult{Status: status, Metrics: p.metrics}
	if !keepsResult {
		return result, runErr
	}
	return result, p.endingError(result, runErr)
}

func newPipeline(ctx workflow.Context, in PipelineInput) *pipeline {
	p := &pipeline{in: in, names: in.runNames(), started: workflow.Now(ctx)}
	p.progress.Messages = in.Messages
	p.metrics.RunID, p.metrics.Messages, p.metrics.Names = in.RunID, in.Messages, p.names
	return p
}

// followProgress answers the progress query and takes in the children's
// progress signals for the rest of the run.
func (p *pipeline) followProgress(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, ProgressQuery, func() (Progress, error) {
		return p.progress, nil
	}, workflow.QueryHandlerOptions{Description: "Stage and message counts of the run so far"}); err != nil {
		return err
	}
	progressCh := workflow.GetSignalChannel(ctx, progressSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var cp childProgress
			if !progressCh.Receive(ctx, &cp) {
				return
			}
			p.applyChildProgress(ctx, cp)
		}
	})
	return nil
}

// run executes the stages up to verification.
func (p *pipeline) run(ctx workflow.Context) (verify.Result, error) {
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		searchattr.Status.ValueSet(string(StatusRunning)), searchattr.MessageCount.ValueSet(p.in.Messages))
	for _, stage := range []func(workflow.Context) error{
		p.checkHealth, p.prepareTopics, p.submitFlinkJobs, p.produceAndDeliver,
	} {
		if err := stage(ctx); err != nil {
			p.noteFailedStage()
			return verify.Result{}, err
		}
	}
	verified, err := p.verify(ctx)
	if err != nil {
		p.noteFailedStage()
	}
	return verified, err
}

// checkHealth checks every component, for real.
func (p *pipeline) checkHealth(ctx workflow.Context) error {
	p.setStage(ctx, StageHealth)
	start := workflow.Now(ctx)
	var health preflight.CheckHealthResult
	if err := workflow.ExecuteActivity(withOptions(ctx, time.Minute, 3, "check every component"),
		preflightActs.CheckHealth, preflight.CheckHealthInput{
			WantBrokers: p.in.Brokers, WantTaskManagers: p.in.TaskManagers, ReplicationFactor: p.in.ReplicationFactor,
		}).Get(ctx, &health); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	for _, c := range health.Components {
		p.metrics.Health = append(p.metrics.Health, fmt.Sprintf("%s: %s", c.Component, c.Detail))
	}
	p.addStage(StageHealth, 0, start, workflow.Now(ctx))
	return nil
}

// prepareTopics creates the run's topics, recorded as owned by this
// workflow; names another run or anybody else holds fail it (see
// kafkaadmin.CreateRunTopics).
func (p *pipeline) prepareTopics(ctx workflow.Context) error {
	p.setStage(ctx, StagePrepare)
	start := workflow.Now(ctx)
	var topics kafkaadmin.PrepareTopicsResult
	if err := workflow.ExecuteActivity(withOptions(ctx, 2*time.Minute, 5, "create the run's topics"),
		kafkaAdminActs.PrepareTopics, kafkaadmin.PrepareTopicsInput{
			Names: p.names, Partitions: p.in.Partitions, DerivedPartitions: p.in.DerivedPartitions, ReplicationFactor: p.in.ReplicationFactor,
			MinInsyncReplicas: p.in.MinInsyncReplicas, TopicConfigs: p.in.TopicConfigs, Owner: runOwner(ctx),
		}).Get(ctx, &topics); err != nil {
		return fmt.Errorf("prepare topics: %w", err)
	}
	if topics.ResetFromRunID != "" {
		workflow.GetLogger(ctx).Warn("run was reset before it produced; it goes on with its topics", "PreparedBy", topics.ResetFromRunID)
	}
	p.metrics.Brokers = topics.Brokers
	p.addStage(StagePrepare, 0, start, workflow.Now(ctx))
	return nil
}

// submitFlinkJobs starts the enrich and split jobs, running before any
// message is produced.
func (p *pipeline) submitFlinkJobs(ctx workflow.Context) error {
	p.setStage(ctx, StageFlink)
	start := workflow.Now(ctx)
	if err := workflow.ExecuteActivity(withOptions(ctx, 5*time.Minute, 3, "submit enrich and split jobs"),
		flinkActs.SubmitFlinkJobs, flink.SubmitInput{
			Names: p.names, Parallelism: p.in.FlinkParallelism,
			CheckpointIntervalMillis: int64(p.in.CheckpointIntervalSeconds) * 1000,
		}).Get(ctx, &p.metrics.FlinkJobs); err != nil {
		return fmt.Errorf("submit Flink jobs: %w", err)
	}
	p.addStage(StageFlink, 0, start, workflow.Now(ctx))
	return nil
}

// produceAndDeliver runs production (with backpressure) and delivery (with
// token renewal) side by side as children and waits for both; the first
// failure cancels the other. Meanwhile it watches the Flink jobs, and a
// failed job fails the run at once; one last check after delivery keeps
// the jobs' final figures.
func (p *pipeline) produceAndDeliver(ctx workflow.Context) error {
	p.setStage(ctx, StageProduce)
	// Runs recorded before Flink was watched replay without the checks.
	watched := workflow.GetVersion(ctx, "watch-flink", workflow.DefaultVersion, 1) == 1
	keepsChildFigures := workflow.GetVersion(ctx, childFiguresChange, workflow.DefaultVersion, 1) == 1
	childCtx, cancelChildren := workflow.WithCancel(ctx)
	defer cancelChildren()
	produceFuture := p.startProduce(childCtx)
	deliverFuture := p.startDeliver(childCtx)

	var (
		produced  ProduceResult
		delivered DeliverResult
		firstErr  error
		// A child that failed or was canceled may carry its figures so
		// far; they count as reported, as its result would.
		produceReported, deliverReported bool
	)
	fail := func(child string, err error) {
		if firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", child, err)
			cancelChildren()
		}
	}
	watchCtx, stopWatching := workflow.WithCancel(childCtx)
	defer stopWatching()
	if watched {
		workflow.Go(watchCtx, func(ctx workflow.Context) {
			p.watchFlink(ctx, func(err error) { fail("flink", err) })
		})
	}
	selector := workflow.NewSelector(ctx)
	selector.AddFuture(produceFuture, func(f workflow.Future) {
		if err := f.Get(ctx, &produced); err != nil {
			if keepsChildFigures {
				produced, produceReported = figuresOfChild[ProduceResult](err, produceFigures)
			}
			fail("produce", err)
			return
		}
		produceReported = true
		// Production is over: nothing is held any more, whatever the last
		// progress signal said.
		p.progress.Produced, p.progress.Held = produced.Produced, false
		p.updateDetails(ctx)
	})
	selector.AddFuture(deliverFuture, func(f workflow.Future) {
		if err := f.Get(ctx, &delivered); err != nil {
			if keepsChildFigures {
				delivered, deliverReported = figuresOfChild[DeliverResult](err, deliverFigures)
			}
			fail("deliver", err)
			return
		}
		deliverReported = true
	})
	selector.Select(ctx)
	selector.Select(ctx)
	stopWatching()
	if firstErr == nil && watched {
		if err := p.checkFlink(ctx); err != nil {
			fail("flink", err)
		}
	}
	if firstErr == nil || keepsChildFigures {
		p.takeChildResults(produced, produceReported, delivered, deliverReported)
	}
	return firstErr
}

// takeChildResults puts what production and delivery reported into the
// metrics and the progress: the last progress signals may still be queued,
// and a child's result, or its figures at its end, come after them.
func (p *pipeline) takeChildResults(produced ProduceResult, produceReported bool, delivered DeliverResult, deliverReported bool) {
	if produceReported {
		p.progress.Produced = produced.Produced
		p.metrics.addProduce(produced)
	}
	if deliverReported {
		p.progress.Delivered, p.progress.TokenRenewals = delivered.Delivered, delivered.TokenRenewals
		p.metrics.addDeliver(delivered)
	}
}

func (p *pipeline) startProduce(ctx workflow.Context) workflow.ChildWorkflowFuture {
	parentID := workflow.GetInfo(ctx).WorkflowExecution.ID
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:    parentID + "/produce",
		StaticSummary: fmt.Sprintf("produce %d messages to %s", p.in.Messages, p.names.RawTopic),
	})
	return workflow.ExecuteChildWorkflow(ctx, ProduceWorkflow, p.in.produceInput(parentID, p.names))
}

// produceInput is the input a run of in hands ProduceWorkflow; the input
// checks read its chunk rates, so they judge what production will do.
func (in PipelineInput) produceInput(parentID string, names activities.RunNames) ProduceInput {
	return ProduceInput{
		ParentWorkflowID:    parentID,
		Names:               names,
		Messages:            in.Messages,
		ChunkSize:           in.ChunkSize,
		ChunkConcurrency:    in.ChunkConcurrency,
		LogicalQueues:       in.LogicalQueues,
		PayloadBytes:        in.PayloadBytes,
		RatePerSecond:       in.productionRate(),
		WarmupMessages:      in.WarmupMessages,
		WarmupRatePerSecond: in.WarmupRatePerSecond,
		LagThreshold:        in.LagThreshold,
		LagResume:           in.LagResume,
		LagPollEvery:        in.LagPollEverySeconds,

		LagThresholdSeconds:       in.LagThresholdSeconds,
		LagResumeSeconds:          in.LagResumeSeconds,
		CheckpointIntervalSeconds: in.CheckpointIntervalSeconds,
		SegmentMessages:           in.TokenRenewEvery,
	}
}

func (p *pipeline) startDeliver(ctx workflow.Context) workflow.ChildWorkflowFuture {
	parentID := workflow.GetInfo(ctx).WorkflowExecution.ID
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:    parentID + "/deliver",
		StaticSummary: fmt.Sprintf("deliver %d messages in batches of %d", p.in.Messages, p.in.BatchSize),
	})
	return workflow.ExecuteChildWorkflow(ctx, DeliverWorkflow, DeliverInput{
		ParentWorkflowID: parentID,
		Names:            p.names,
		Messages:         p.in.Messages,
		BatchSize:        p.in.BatchSize,
		TokenRenewEvery:  p.in.TokenRenewEvery,
		StallSeconds:     max(300, 3*p.in.VerifyIdleSeconds),
	})
}

// verify reads the final topic and checks every message arrived once.
func (p *pipeline) verify(ctx workflow.Context) (verify.Result, error) {
	p.setStage(ctx, StageVerify)
	start := workflow.Now(ctx)
	verifyCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: verifyTimeout,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		Summary:             fmt.Sprintf("verify %d messages in %s", p.in.Messages, p.names.FinalTopic),
	})
	verifying := workflow.ExecuteActivity(verifyCtx, verifyActs.Verify, verify.Input{
		Names: p.names, Messages: p.in.Messages, IdleTimeoutMillis: int64(p.in.VerifyIdleSeconds) * 1000,
	})
	// Runs recorded before the split job was checkpointed here replay
	// without it.
	if workflow.GetVersion(ctx, "checkpoint-split-for-verify", workflow.DefaultVersion, 1) == 1 {
		p.checkpointSplitJobWhile(ctx, verifying)
	}
	var verified verify.Result
	if err := verifying.Get(ctx, &verified); err != nil {
		return verify.Result{}, fmt.Errorf("verify: %w", err)
	}
	p.metrics.addVerify(verified)
	p.progress.Verified = verified.Unique
	p.addStage(StageVerify, verified.Records, start, workflow.Now(ctx))
	_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.MessageCount.ValueSet(verified.Unique))
	return verified, nil
}

// checkpointSplitJobWhile asks the split job for checkpoints while Verify
// reads, each a second after the one before completed, until verifying is
// ready or one checkpoint interval has passed (by then a periodic one has
// come). The split job's last records become visible at its next
// checkpoint, which otherwise comes up to an interval after delivery
// ended, and Verify waits for them; one checkpoint asked for at once may
// come before the job has read the last responses. It is a shortcut only:
// after a failure it stops, and the periodic checkpoints commit them.
func (p *pipeline) checkpointSplitJobWhile(ctx workflow.Context, verifying workflow.Future) {
	in := flink.CheckpointInput{JobName: p.metrics.FlinkJobs.SplitJobName, JobID: p.metrics.FlinkJobs.SplitJobID}
	until := workflow.Now(ctx).Add(time.Duration(p.in.CheckpointIntervalSeconds) * time.Second)
	for !verifying.IsReady() && workflow.Now(ctx).Before(until) {
		checkpointCtx, cancel := workflow.WithCancel(ctx)
		checkpoint := workflow.ExecuteActivity(withOptions(checkpointCtx, time.Minute, 1, "checkpoint the split job, committing its last records"),
			flinkActs.CheckpointFlinkJob, in)
		var err error
		workflow.NewSelector(ctx).
			AddFuture(verifying, func(workflow.Future) { cancel() }).
			AddFuture(checkpoint, func(f workflow.Future) { err = f.Get(ctx, nil) }).
			Select(ctx)
		if verifying.IsReady() {
			return
		}
		if err != nil {
			workflow.GetLogger(ctx).Warn("checkpoint of the split job failed; its periodic checkpoints commit its last records", "Error", err)
			return
		}
		if _, err := workflow.AwaitWithTimeout(ctx, time.Second, verifying.IsReady); err != nil {
			return
		}
	}
}

// cleanup cancels the run's Flink jobs and deletes its topics (unless
// KeepTopics); it is the last stage, so it also closes the run's time.
func (p *pipeline) cleanup(ctx workflow.Context) error {
	p.setStage(ctx, StageCleanup)
	start := workflow.Now(ctx)
	err := workflow.ExecuteActivity(withOptions(ctx, 5*time.Minute, 5, "cancel Flink jobs, delete topics"),
		kafkaAdminActs.Cleanup, kafkaadmin.CleanupInput{
			Names: p.names, Jobs: p.metrics.FlinkJobs, KeepTopics: p.in.KeepTopics, Owner: runOwner(ctx),
		}).Get(ctx, nil)
	p.addStage(StageCleanup, 0, start, workflow.Now(ctx))
	p.metrics.TotalMillis = workflow.Now(ctx).Sub(p.started).Milliseconds()
	return err
}

// recordRunMetrics exports the run's figures on the /metrics of the worker
// that runs the activity, for the alert rules (deploy/prometheus). An
// export that fails is logged and changes nothing about the run's ending.
func (p *pipeline) recordRunMetrics(ctx workflow.Context, status Status) {
	err := workflow.ExecuteActivity(withOptions(ctx, time.Minute, 3, "export the run's metrics"),
		runMetricsActs.RecordRunMetrics, p.metrics.runMetrics(status, workflow.Now(ctx))).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("run metrics not exported", "error", err)
	}
}

// notifyRunFailed has the worker post a notice of the failed run to its
// webhook (activities/notify), if it has one. Its go-retryablehttp client
// retries; a notice that still fails is logged and changes nothing about
// the run's ending.
func (p *pipeline) notifyRunFailed(ctx workflow.Context, status Status) {
	info := workflow.GetInfo(ctx)
	failure := notify.Failure{
		RunID: p.metrics.RunID, WorkflowID: info.WorkflowExecution.ID, TemporalRunID: info.WorkflowExecution.RunID,
		Namespace: info.Namespace, Status: string(status),
		FailedStage: p.metrics.FailedStage, FailureMessage: p.metrics.FailureMessage,
		Messages: p.metrics.Messages, Verified: p.metrics.Verified,
	}
	for _, c := range p.metrics.Thresholds {
		if !c.Passed {
			failure.BrokenThresholds = append(failure.BrokenThresholds, c.String())
		}
	}
	err := workflow.ExecuteActivity(withOptions(ctx, 5*time.Minute, 1, "post the failure notice"),
		notifyActs.NotifyRunFailed, failure).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("failure notice not sent", "error", err)
	}
}

// runOwner names this workflow as the owner of what the run creates. The
// first run id stays the same over a reset, so a reset run still owns the
// topics and its Prepare can tell it was reset.
func runOwner(ctx workflow.Context) kafkaadmin.Owner {
	info := workflow.GetInfo(ctx)
	return kafkaadmin.Owner{
		Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID,
		FirstRunID: info.FirstRunID, TemporalRunID: info.WorkflowExecution.RunID,
	}
}

func (p *pipeline) applyChildProgress(ctx workflow.Context, cp childProgress) {
	switch cp.Source {
	case "produce":
		p.progress.Produced = max(p.progress.Produced, cp.Produced)
		p.progress.Lag, p.progress.Held, p.progress.RatePerSecond = cp.Lag, cp.Held, cp.RatePerSecond
		p.progress.LagSeconds, p.progress.LagGroup, p.progress.DrainRate = cp.LagSeconds, cp.LagGroup, cp.DrainRate
	case "deliver":
		p.progress.Delivered = max(p.progress.Delivered, cp.Delivered)
		p.progress.TokenRenewals = max(p.progress.TokenRenewals, cp.TokenRenewals)
	}
	p.updateDetails(ctx)
}

func (p *pipeline) setStage(ctx workflow.Context, stage string) {
	p.progress.Stage = stage
	_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.Stage.ValueSet(stage))
	p.updateDetails(ctx)
}

// updateDetails renders the run's progress as the Markdown the Temporal UI
// shows as the workflow's current details.
func (p *pipeline) updateDetails(ctx workflow.Context) {
	pr := p.progress
	held := "no"
	if pr.Held {
		held = "**yes**"
	}
	lag := fmt.Sprint(pr.Lag)
	switch {
	case pr.LagGroup != "" && pr.DrainRate > 0:
		lag += fmt.Sprintf(" (%.1f s, %s at %.0f/s)", pr.LagSeconds, pr.LagGroup, pr.DrainRate)
	case pr.LagGroup != "":
		lag += fmt.Sprintf(" (%.1f s, %s's oldest record)", pr.LagSeconds, pr.LagGroup)
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf(`### flowproof run %s
| stage | messages | produced | delivered | verified | produce rate | lag | held | token renewals |
|---|---|---|---|---|---|---|---|---|
| %s | %d | %d | %d | %d | %.0f/s | %s | %s | %d |
`, p.in.RunID, pr.Stage, pr.Messages, pr.Produced, pr.Delivered, pr.Verified, pr.RatePerSecond, lag, held, pr.TokenRenewals)+
		hopTableMarkdown(p.metrics.Hops, p.metrics.Verification.Expected)+thresholdTableMarkdown(p.metrics.Thresholds))
}

// thresholdTableMarkdown renders the thresholds once they are judged.
func thresholdTableMarkdown(checks []ThresholdCheck) string {
	if len(checks) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n#### thresholds\n| threshold | measured | limit | verdict |\n|---|---|---|---|\n")
	for _, c := range checks {
		verdict := "kept"
		if !c.Passed {
			verdict = "**broken**"
		}
		//nolint:staticcheck // workflowcheck counts fmt.Fprintf as I/O; Sprintf it is
		b.WriteString(fmt.Sprintf("| %s (`%s`) | %s | %s | %s |\n", c.What, c.Field, c.MeasuredText(), c.LimitText(), verdict))
	}
	return b.String()
}

// hopTableMarkdown renders the hop table once verification has counted it.
func hopTableMarkdown(hops []verify.HopCount, expected int64) string {
	if len(hops) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n#### every hop, counted per seq\n| hop | records | unique | missing | duplicated | bad records | verdict | source | note |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, h := range hops {
		verdict := h.Verdict(expected)
		if !h.Exact(expected) {
			verdict = "**" + verdict + "**"
		}
		//nolint:staticcheck // workflowcheck counts fmt.Fprintf as I/O; Sprintf it is
		b.WriteString(fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s | %s | %s |\n", h.Hop, h.Records, h.Unique, h.Missing, h.Duplicated, h.BadRecords,
			verdict, h.Source, strings.ReplaceAll(h.Note, "|", "/")))
	}
	return b.String()
}

func (p *pipeline) addStage(stage string, messages int64, from, to time.Time) {
	p.metrics.Stages = append(p.metrics.Stages, stageMetrics(stage, messages, from.UnixMilli(), to.Sub(from).Milliseconds()))
}

// withOptions is the activity context of a short stage activity.
func withOptions(ctx workflow.Context, timeout time.Duration, attempts int32, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts: attempts, InitialInterval: 2 * time.Second,
			NonRetryableErrorTypes: []string{errtype.InvalidInput},
		},
		Summary: summary,
	})
}
