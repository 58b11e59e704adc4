package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/produce"
)

// ProduceInput drives ProduceWorkflow. State carries progress across
// continue-as-new, so a run of any size keeps a short history.
type ProduceInput struct {
	ParentWorkflowID string              `json:"parent_workflow_id"`
	Names            activities.RunNames `json:"names"`
	Messages         int64               `json:"messages"`
	ChunkSize        int                 `json:"chunk_size"`
	ChunkConcurrency int                 `json:"chunk_concurrency"`
	LogicalQueues    int                 `json:"logical_queues"`
	PayloadBytes     int                 `json:"payload_bytes"`
	RatePerSecond    float64             `json:"rate_per_second"`
	LagThreshold     int64               `json:"lag_threshold"`
	LagResume        int64               `json:"lag_resume"`
	LagPollEvery     int                 `json:"lag_poll_every_seconds"`
	// ChunksPerRun bounds the chunks one workflow run schedules before it
	// continues as new; 0 means defaultChunksPerRun.
	ChunksPerRun int          `json:"chunks_per_run,omitempty"`
	State        ProduceState `json:"state"`
}

// ProduceState is the part of ProduceWorkflow that survives continue-as-new.
type ProduceState struct {
	NextChunk    int                    `json:"next_chunk"`
	Produced     int64                  `json:"produced"`
	Resumed      int                    `json:"resumed"`
	Holds        int                    `json:"holds"`
	HeldMillis   int64                  `json:"held_ms"`
	MaxLag       int64                  `json:"max_lag"`
	LagSamples   []kafkaadmin.LagSample `json:"lag_samples"`
	StartedUnixM int64                  `json:"started_unix_ms"`
	Runs         int                    `json:"runs"`
}

// ProduceResult is the outcome of all of a run's production.
type ProduceResult struct {
	Produced       int64                  `json:"produced"`
	Chunks         int                    `json:"chunks"`
	Resumed        int                    `json:"resumed"`
	Holds          int                    `json:"holds"`
	HeldMillis     int64                  `json:"held_ms"`
	MaxLag         int64                  `json:"max_lag"`
	LagSamples     []kafkaadmin.LagSample `json:"lag_samples"`
	DurationMillis int64                  `json:"duration_ms"`
	Runs           int                    `json:"runs"`
}

const (
	defaultChunksPerRun = 500
	// maxLagSamples bounds the lag history kept for the report; older
	// samples are thinned out, not dropped, so the curve keeps its shape.
	maxLagSamples = 120
	// progressSignals is about how many progress signals a child sends its
	// parent over a whole run, whatever the message count.
	progressSignals = 100
)

// progressSignal is the signal children send to PipelineWorkflow.
const progressSignal = "child-progress"

// childProgress is the payload of progressSignal.
type childProgress struct {
	Source        string  `json:"source"` // "produce" or "deliver"
	Produced      int64   `json:"produced,omitempty"`
	Delivered     int64   `json:"delivered,omitempty"`
	Lag           int64   `json:"lag,omitempty"`
	Held          bool    `json:"held,omitempty"`
	RatePerSecond float64 `json:"rate_per_second,omitempty"`
	TokenRenewals int     `json:"token_renewals,omitempty"`
}

// ProduceWorkflow produces a run's messages in chunks, ChunkConcurrency at a
// time, and holds production while the run's consumer lag is above the
// threshold.
func ProduceWorkflow(ctx workflow.Context, in ProduceInput) (ProduceResult, error) {
	if in.ChunksPerRun == 0 {
		in.ChunksPerRun = defaultChunksPerRun
	}
	st := in.State
	st.Runs++
	if st.StartedUnixM == 0 {
		st.StartedUnixM = workflow.Now(ctx).UnixMilli()
	}
	chunks := int((in.Messages + int64(in.ChunkSize) - 1) / int64(in.ChunkSize))
	signalEvery := max(1, chunks/progressSignals)
	perChunkRate := in.RatePerSecond / float64(in.ChunkConcurrency)

	var (
		inFlight    int
		failure     error
		held        bool
		heldSince   time.Time
		lastLag     int64
		lastRate    float64
		stopPolling bool
		polled      bool
	)

	pollCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, InitialInterval: time.Second},
		Summary:             "poll consumer lag",
	})
	// The lag poller runs beside the dispatcher and flips held; the
	// dispatcher only looks at held, so the two never block each other.
	workflow.Go(ctx, func(ctx workflow.Context) {
		for !stopPolling {
			var sample kafkaadmin.LagSample
			if err := workflow.ExecuteActivity(pollCtx, kafkaAdminActs.PollLag, kafkaadmin.PollLagInput{Names: in.Names}).Get(ctx, &sample); err != nil {
				failure = fmt.Errorf("poll consumer lag: %w", err)
				return
			}
			lastLag, polled = sample.Max(), true
			st.MaxLag = max(st.MaxLag, lastLag)
			st.LagSamples = appendSample(st.LagSamples, sample)
			now := workflow.Now(ctx)
			switch {
			case !held && lastLag > in.LagThreshold:
				held, heldSince = true, now
				st.Holds++
				workflow.GetLogger(ctx).Info("backpressure: holding production", "lag", lastLag, "threshold", in.LagThreshold)
			case held && lastLag <= in.LagResume:
				held = false
				st.HeldMillis += now.Sub(heldSince).Milliseconds()
				workflow.GetLogger(ctx).Info("backpressure: resuming production", "lag", lastLag, "resume_below", in.LagResume)
			}
			summary := fmt.Sprintf("next lag poll (lag %d)", lastLag)
			if held {
				summary = fmt.Sprintf("backpressure hold: lag %d, resume below %d (threshold %d)", lastLag, in.LagResume, in.LagThreshold)
			}
			_ = workflow.NewTimerWithOptions(ctx, time.Duration(in.LagPollEvery)*time.Second, workflow.TimerOptions{Summary: summary}).Get(ctx, nil)
		}
	})

	// Production starts only once the lag is known, so a run started into a
	// backlog (or continued as new while one builds) waits for it first.
	if err := workflow.Await(ctx, func() bool { return polled || failure != nil }); err != nil {
		return ProduceResult{}, err
	}
	scheduledThisRun := 0
	for st.NextChunk < chunks && failure == nil {
		if err := workflow.Await(ctx, func() bool {
			return failure != nil || (!held && inFlight < in.ChunkConcurrency)
		}); err != nil {
			return ProduceResult{}, err
		}
		if failure != nil {
			break
		}
		if scheduledThisRun >= in.ChunksPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			break
		}
		chunk := st.NextChunk
		st.NextChunk++
		scheduledThisRun++
		inFlight++
		first := int64(chunk) * int64(in.ChunkSize)
		count := int(min(int64(in.ChunkSize), in.Messages-first))
		chunkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// A chunk at its rate takes count/rate seconds; allow generously
			// more, since other chunks and the brokers share two cores.
			StartToCloseTimeout: time.Duration(float64(count)/perChunkRate*3)*time.Second + 2*time.Minute,
			HeartbeatTimeout:    30 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, InitialInterval: 2 * time.Second},
			Summary:             fmt.Sprintf("produce chunk %d/%d", chunk+1, chunks),
		})
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { inFlight-- }()
			var res produce.ChunkResult
			err := workflow.ExecuteActivity(chunkCtx, produceActs.ProduceChunk, produce.ChunkInput{
				Names: in.Names, Chunk: chunk, FirstSeq: first, Count: count,
				LogicalQueues: in.LogicalQueues, PayloadBytes: in.PayloadBytes, RatePerSecond: perChunkRate,
			}).Get(ctx, &res)
			if err != nil {
				failure = fmt.Errorf("produce chunk %d: %w", chunk, err)
				return
			}
			st.Produced += int64(count)
			if res.AlreadyCommitted {
				st.Resumed++
			}
			if res.DurationMillis > 0 {
				lastRate = float64(res.Produced) / (float64(res.DurationMillis) / 1000)
			}
			if (chunk+1)%signalEvery == 0 || chunk == chunks-1 {
				signalParent(ctx, in.ParentWorkflowID, childProgress{
					Source: "produce", Produced: st.Produced, Lag: lastLag, Held: held, RatePerSecond: lastRate,
				})
			}
		})
	}
	if err := workflow.Await(ctx, func() bool { return inFlight == 0 }); err != nil {
		return ProduceResult{}, err
	}
	stopPolling = true
	if failure != nil {
		return ProduceResult{}, failure
	}
	if held {
		st.HeldMillis += workflow.Now(ctx).Sub(heldSince).Milliseconds()
	}
	if st.NextChunk < chunks {
		in.State = st
		return ProduceResult{}, workflow.NewContinueAsNewError(ctx, ProduceWorkflow, in)
	}
	return ProduceResult{
		Produced:       st.Produced,
		Chunks:         chunks,
		Resumed:        st.Resumed,
		Holds:          st.Holds,
		HeldMillis:     st.HeldMillis,
		MaxLag:         st.MaxLag,
		LagSamples:     st.LagSamples,
		DurationMillis: workflow.Now(ctx).UnixMilli() - st.StartedUnixM,
		Runs:           st.Runs,
	}, nil
}

// appendSample keeps at most maxLagSamples, dropping every other old sample
// when full so the series still spans the whole run.
func appendSample(samples []kafkaadmin.LagSample, s kafkaadmin.LagSample) []kafkaadmin.LagSample {
	if len(samples) >= maxLagSamples {
		thinned := samples[:0]
		for i, old := range samples {
			if i%2 == 0 {
				thinned = append(thinned, old)
			}
		}
		samples = thinned
	}
	return append(samples, s)
}

// signalParent reports progress to PipelineWorkflow. Progress is advisory,
// so a failed signal (a parent that already ended) is logged, not fatal.
func signalParent(ctx workflow.Context, parentID string, p childProgress) {
	if parentID == "" {
		return
	}
	err := workflow.SignalExternalWorkflow(ctx, parentID, "", progressSignal, p).Get(ctx, nil)
	var canceled *temporal.CanceledError
	if err != nil && !errors.As(err, &canceled) {
		workflow.GetLogger(ctx).Warn("progress signal to parent failed", "error", err)
	}
}
