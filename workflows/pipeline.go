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
	"github.com/flowproof/flowproof/activities/preflight"
	"github.com/flowproof/flowproof/activities/verify"
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

// pipeline is the state of one PipelineWorkflow execution.
type pipeline struct {
	in       PipelineInput
	names    activities.RunNames
	progress Progress
	metrics  Metrics
	started  time.Time
}

// PipelineWorkflow runs one end-to-end proof of the streaming pipeline.
func PipelineWorkflow(ctx workflow.Context, input PipelineInput) (PipelineResult, error) {
	in, err := input.withDefaults(workflow.GetInfo(ctx).WorkflowExecution.ID)
	if err != nil {
		return PipelineResult{}, err
	}
	p := &pipeline{in: in, names: in.runNames(), started: workflow.Now(ctx)}
	p.progress.Messages = in.Messages
	p.metrics.RunID, p.metrics.Messages, p.metrics.Names = in.RunID, in.Messages, p.names

	if err := workflow.SetQueryHandlerWithOptions(ctx, ProgressQuery, func() (Progress, error) {
		return p.progress, nil
	}, workflow.QueryHandlerOptions{Description: "Stage and message counts of the run so far"}); err != nil {
		return PipelineResult{}, err
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

	result, runErr := p.run(ctx)

	// Cleanup runs whatever happened, also when the run was cancelled: a
	// disconnected context outlives the cancellation.
	cleanupCtx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	p.setStage(cleanupCtx, StageCleanup)
	cleanupStart := workflow.Now(cleanupCtx)
	cleanupErr := workflow.ExecuteActivity(withOptions(cleanupCtx, 5*time.Minute, 5, "cancel Flink jobs, delete topics"),
		kafkaAdminActs.Cleanup, kafkaadmin.CleanupInput{
			Names: p.names, Jobs: p.metrics.FlinkJobs, KeepTopics: in.KeepTopics,
		}).Get(cleanupCtx, nil)
	p.addStage(StageCleanup, 0, cleanupStart, workflow.Now(cleanupCtx))
	p.metrics.TotalMillis = workflow.Now(cleanupCtx).Sub(p.started).Milliseconds()

	status := StatusFailed
	if runErr == nil && result.Passed() {
		status = StatusSucceeded
	}
	if runErr != nil {
		p.metrics.FailureMessage = runErr.Error()
	} else if !result.Passed() {
		p.metrics.FailureMessage = verificationFailure(result)
	}
	if cleanupErr != nil {
		workflow.GetLogger(ctx).Error("cleanup failed", "error", cleanupErr)
		p.metrics.FailureMessage = strings.TrimPrefix(p.metrics.FailureMessage+"; cleanup: "+cleanupErr.Error(), "; ")
	}
	p.progress.Stage = StageDone
	_ = workflow.UpsertTypedSearchAttributes(cleanupCtx,
		searchattr.Stage.ValueSet(StageDone), searchattr.Status.ValueSet(string(status)))
	p.updateDetails(cleanupCtx)
	if runErr != nil {
		return PipelineResult{Status: status, Metrics: p.metrics}, runErr
	}
	return PipelineResult{Status: status, Metrics: p.metrics}, nil
}

// run executes the stages up to verification.
func (p *pipeline) run(ctx workflow.Context) (verify.Result, error) {
	in := p.in
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		searchattr.Status.ValueSet("Running"), searchattr.MessageCount.ValueSet(in.Messages))

	// 1. Health: every component, for real.
	p.setStage(ctx, StageHealth)
	start := workflow.Now(ctx)
	var health preflight.CheckHealthResult
	if err := workflow.ExecuteActivity(withOptions(ctx, time.Minute, 3, "check every component"),
		preflightActs.CheckHealth, preflight.CheckHealthInput{
			WantBrokers: in.Brokers, WantTaskManagers: in.TaskManagers,
		}).Get(ctx, &health); err != nil {
		return verify.Result{}, fmt.Errorf("health check: %w", err)
	}
	for _, c := range health.Components {
		p.metrics.Health = append(p.metrics.Health, fmt.Sprintf("%s: %s", c.Component, c.Detail))
	}
	p.addStage(StageHealth, 0, start, workflow.Now(ctx))

	// 2. Prepare the run's topics.
	p.setStage(ctx, StagePrepare)
	start = workflow.Now(ctx)
	var topics kafkaadmin.PrepareTopicsResult
	if err := workflow.ExecuteActivity(withOptions(ctx, 2*time.Minute, 5, "create the run's topics"),
		kafkaAdminActs.PrepareTopics, kafkaadmin.PrepareTopicsInput{
			Names: p.names, Partitions: in.Partitions, ReplicationFactor: replicationFactor,
		}).Get(ctx, &topics); err != nil {
		return verify.Result{}, fmt.Errorf("prepare topics: %w", err)
	}
	p.metrics.Brokers = topics.Brokers
	p.addStage(StagePrepare, 0, start, workflow.Now(ctx))

	// 3. Flink: the enrich and split jobs, running before any message.
	p.setStage(ctx, StageFlink)
	start = workflow.Now(ctx)
	if err := workflow.ExecuteActivity(withOptions(ctx, 5*time.Minute, 3, "submit enrich and split jobs"),
		flinkActs.SubmitFlinkJobs, flink.SubmitInput{
			Names: p.names, Parallelism: in.FlinkParallelism,
			CheckpointIntervalMillis: int64(in.CheckpointIntervalSeconds) * 1000,
		}).Get(ctx, &p.metrics.FlinkJobs); err != nil {
		return verify.Result{}, fmt.Errorf("submit Flink jobs: %w", err)
	}
	p.addStage(StageFlink, 0, start, workflow.Now(ctx))

	// 4-7. Production (with backpressure) and delivery (with token renewal)
	// run side by side as children.
	p.setStage(ctx, StageProduce)
	produced, delivered, err := p.produceAndDeliver(ctx)
	if err != nil {
		return verify.Result{}, err
	}
	p.metrics.Produced, p.metrics.Delivered = produced.Produced, delivered.Delivered
	p.metrics.ChunksResumed = produced.Resumed
	p.metrics.Backpressure = BackpressureMetrics{
		Holds: produced.Holds, HeldMillis: produced.HeldMillis, MaxLag: produced.MaxLag, LagSamples: produced.LagSamples,
	}
	p.metrics.TokenRenewals, p.metrics.TokenRejected = delivered.TokenRenewals, delivered.TokenRejected
	p.metrics.HTTPBatches, p.metrics.HTTPRetries = delivered.Batches, delivered.Retries
	p.metrics.Stages = append(p.metrics.Stages,
		stageMetrics("produce", produced.Produced, produced.DurationMillis),
		stageMetrics("deliver", delivered.Delivered, delivered.DurationMillis))

	// 8. Verify the final topic.
	p.setStage(ctx, StageVerify)
	start = workflow.Now(ctx)
	verifyCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		Summary:             fmt.Sprintf("verify %d messages in %s", in.Messages, p.names.FinalTopic),
	})
	var verified verify.Result
	if err := workflow.ExecuteActivity(verifyCtx, verifyActs.Verify, verify.Input{
		Names: p.names, Messages: in.Messages, IdleTimeoutMillis: int64(in.VerifyIdleSeconds) * 1000,
	}).Get(ctx, &verified); err != nil {
		return verify.Result{}, fmt.Errorf("verify: %w", err)
	}
	p.metrics.Verified = verified.Unique
	p.metrics.Verification = verified
	p.metrics.Latency = verified.Latency
	p.progress.Verified = verified.Unique
	p.addStage(StageVerify, verified.Records, start, workflow.Now(ctx))
	_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.MessageCount.ValueSet(verified.Unique))
	return verified, nil
}

// produceAndDeliver runs the two children and waits for both; the first
// failure cancels the other.
func (p *pipeline) produceAndDeliver(ctx workflow.Context) (ProduceResult, DeliverResult, error) {
	in := p.in
	parentID := workflow.GetInfo(ctx).WorkflowExecution.ID
	childCtx, cancelChildren := workflow.WithCancel(ctx)
	defer cancelChildren()

	produceCtx := workflow.WithChildOptions(childCtx, workflow.ChildWorkflowOptions{
		WorkflowID:    parentID + "/produce",
		StaticSummary: fmt.Sprintf("produce %d messages to %s", in.Messages, p.names.RawTopic),
	})
	produceFuture := workflow.ExecuteChildWorkflow(produceCtx, ProduceWorkflow, ProduceInput{
		ParentWorkflowID: parentID,
		Names:            p.names,
		Messages:         in.Messages,
		ChunkSize:        in.ChunkSize,
		ChunkConcurrency: in.ChunkConcurrency,
		LogicalQueues:    in.LogicalQueues,
		PayloadBytes:     in.PayloadBytes,
		RatePerSecond:    in.productionRate(),
		LagThreshold:     in.LagThreshold,
		LagResume:        in.LagResume,
		LagPollEvery:     in.LagPollEverySeconds,
	})
	deliverCtx := workflow.WithChildOptions(childCtx, workflow.ChildWorkflowOptions{
		WorkflowID:    parentID + "/deliver",
		StaticSummary: fmt.Sprintf("deliver %d messages in batches of %d", in.Messages, in.BatchSize),
	})
	deliverFuture := workflow.ExecuteChildWorkflow(deliverCtx, DeliverWorkflow, DeliverInput{
		ParentWorkflowID: parentID,
		Names:            p.names,
		Messages:         in.Messages,
		BatchSize:        in.BatchSize,
		TokenRenewEvery:  in.TokenRenewEvery,
		StallSeconds:     max(300, 3*in.VerifyIdleSeconds),
	})

	var (
		produced  ProduceResult
		delivered DeliverResult
		firstErr  error
	)
	selector := workflow.NewSelector(ctx)
	selector.AddFuture(produceFuture, func(f workflow.Future) {
		if err := f.Get(ctx, &produced); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("produce: %w", err)
				cancelChildren()
			}
			return
		}
		// Production is over: nothing is held any more, whatever the last
		// progress signal said.
		p.progress.Produced, p.progress.Held = produced.Produced, false
		p.updateDetails(ctx)
	})
	selector.AddFuture(deliverFuture, func(f workflow.Future) {
		if err := f.Get(ctx, &delivered); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("deliver: %w", err)
			cancelChildren()
		}
	})
	selector.Select(ctx)
	selector.Select(ctx)
	if firstErr != nil {
		return ProduceResult{}, DeliverResult{}, firstErr
	}
	// The last progress signals may still be queued; the results are final.
	p.progress.Produced, p.progress.Delivered = produced.Produced, delivered.Delivered
	p.progress.TokenRenewals = delivered.TokenRenewals
	return produced, delivered, nil
}

func (p *pipeline) applyChildProgress(ctx workflow.Context, cp childProgress) {
	switch cp.Source {
	case "produce":
		p.progress.Produced = max(p.progress.Produced, cp.Produced)
		p.progress.Lag, p.progress.Held, p.progress.RatePerSecond = cp.Lag, cp.Held, cp.RatePerSecond
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
	workflow.SetCurrentDetails(ctx, fmt.Sprintf(`### flowproof run %s
| stage | messages | produced | delivered | verified | produce rate | lag | held | token renewals |
|---|---|---|---|---|---|---|---|---|
| %s | %d | %d | %d | %d | %.0f/s | %d | %s | %d |
`, p.in.RunID, pr.Stage, pr.Messages, pr.Produced, pr.Delivered, pr.Verified, pr.RatePerSecond, pr.Lag, held, pr.TokenRenewals))
}

func (p *pipeline) addStage(stage string, messages int64, from, to time.Time) {
	p.metrics.Stages = append(p.metrics.Stages, stageMetrics(stage, messages, to.Sub(from).Milliseconds()))
}

func stageMetrics(stage string, messages, millis int64) StageMetrics {
	m := StageMetrics{Stage: stage, Messages: messages, DurationMillis: millis}
	if messages > 0 && millis > 0 {
		m.PerSecond = float64(messages) / (float64(millis) / 1000)
	}
	return m
}

func verificationFailure(v verify.Result) string {
	msg := fmt.Sprintf("verification failed: %d of %d unique, %d missing, %d duplicates, %d bad records",
		v.Unique, v.Expected, v.Missing, v.Duplicates, v.BadRecords)
	if len(v.Problems) > 0 {
		msg += ": " + v.Problems[0]
	}
	return msg
}

// withOptions is the activity context of a short stage activity.
func withOptions(ctx workflow.Context, timeout time.Duration, attempts int32, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts: attempts, InitialInterval: 2 * time.Second,
			NonRetryableErrorTypes: []string{ErrInvalidInput},
		},
		Summary: summary,
	})
}
