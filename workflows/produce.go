package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/produce"
)

// ProduceInput drives ProduceWorkflow. State carries the production so far
// across continue-as-new, so a run of any size keeps a short history.
type ProduceInput struct {
	ParentWorkflowID string              `json:"parent_workflow_id"`
	Names            activities.RunNames `json:"names"`
	Messages         int64               `json:"messages"`
	ChunkSize        int                 `json:"chunk_size"`
	ChunkConcurrency int                 `json:"chunk_concurrency"`
	LogicalQueues    int                 `json:"logical_queues"`
	PayloadBytes     int                 `json:"payload_bytes"`
	RatePerSecond    float64             `json:"rate_per_second"`
	// The first WarmupMessages are produced at no more than
	// WarmupRatePerSecond (see PipelineInput); 0, as in inputs written
	// before, leaves them at RatePerSecond.
	WarmupMessages      int64   `json:"warmup_messages,omitempty"`
	WarmupRatePerSecond float64 `json:"warmup_rate_per_second,omitempty"`
	LagThreshold        int64   `json:"lag_threshold"`
	LagResume           int64   `json:"lag_resume"`
	LagPollEvery        int     `json:"lag_poll_every_seconds"`
	// LagThresholdSeconds holds production also while the consumer lag in
	// seconds (see backpressure.go) is above it, until it falls to
	// LagResumeSeconds. 0 leaves only the threshold in messages, which is
	// what inputs written before these fields mean, so their histories
	// replay as they ran. CheckpointIntervalSeconds is the Flink jobs', the
	// lag those jobs' groups show while keeping up.
	LagThresholdSeconds       float64 `json:"lag_threshold_seconds,omitempty"`
	LagResumeSeconds          float64 `json:"lag_resume_seconds,omitempty"`
	CheckpointIntervalSeconds int     `json:"checkpoint_interval_seconds,omitempty"`
	// SegmentMessages is delivery's segment size: a segment commits the
	// deliver group's offsets, and hands split its responses, at once,
	// which the lag in seconds leaves out (see backpressure.go). 0, as in
	// inputs written before it, leaves those steps in.
	SegmentMessages int `json:"segment_messages,omitempty"`
	// ChunksPerRun bounds the chunks one workflow run schedules before it
	// continues as new; 0 means defaultChunksPerRun.
	ChunksPerRun int           `json:"chunks_per_run,omitempty"`
	State        ProduceResult `json:"state"`
}

// ProduceResult is a run's production so far. ProduceWorkflow carries it
// across continue-as-new in ProduceInput.State and returns it once every
// chunk is produced, so each figure is counted in one place.
type ProduceResult struct {
	// NextChunk is the first chunk not yet scheduled, of Chunks in all.
	NextChunk int   `json:"next_chunk"`
	Chunks    int   `json:"chunks"`
	Produced  int64 `json:"produced"`
	// Resumed counts chunks that an earlier attempt had already committed.
	Resumed int `json:"resumed"`
	Backpressure
	StartedUnixMillis int64 `json:"started_unix_ms"`
	// DurationMillis is set when production is complete.
	DurationMillis int64 `json:"duration_ms"`
	// Runs counts the workflow runs that production took.
	Runs int `json:"runs"`
}

const defaultChunksPerRun = 500

// producer is one run of ProduceWorkflow. Two coroutines share it: the lag
// poller sets held, and the chunk dispatcher only reads it, so neither ever
// blocks the other.
type producer struct {
	in    ProduceInput
	state ProduceResult

	signalEvery int // chunks between progress signals to the parent

	inFlight int
	failure  error // of the lag poller or a chunk; ends the run
	polled   bool  // the lag has been read at least once
	lag      int64 // the largest consumer lag of the last poll
	// lagSeconds is the largest lag in seconds of the last poll, when the
	// threshold in seconds is set and a group's drain rate is known.
	lagSeconds groupLagSeconds
	held       bool
	heldSince  time.Time
	// keepsHoldSpans is false when replaying a run recorded before hold
	// spans were kept.
	keepsHoldSpans bool
	// deliverInputInSteps is false when replaying a run recorded before
	// the deliver group's lag got the checkpoint allowance.
	deliverInputInSteps bool
	// trustedRates is false when replaying a run recorded before drain
	// rates left out the windows that tell nothing (see backpressure.go).
	trustedRates bool
	// stepsAtCap is false when replaying a run recorded before the lag in
	// seconds left out the steps in flight, valued at the rate cap.
	stepsAtCap bool
	// enrichByOutput is false when replaying a run recorded before a held
	// production bounded the enrich group's lag by the job's committed
	// output (see enrichBoundedByOutput).
	enrichByOutput bool
	// heldAtDrainRate is false when replaying a run recorded before a
	// held production told a draining group by its drain rate where that
	// was less than its age (see backpressure.go).
	heldAtDrainRate bool
	rate            float64 // production rate of the last chunk
	stopPolling     bool
	// laneBusy is set when chunks run in lanes (see dispatchChunks): chunk
	// c is in lane c mod len(laneBusy), and a lane runs one chunk at a
	// time. Nil when replaying a run recorded before lanes.
	laneBusy []bool
}

// ProduceWorkflow produces a run's messages in chunks, ChunkConcurrency at a
// time, and holds production while the run's consumer lag is above the
// threshold.
func ProduceWorkflow(ctx workflow.Context, in ProduceInput) (ProduceResult, error) {
	if err := in.validate(); err != nil {
		return ProduceResult{}, err
	}
	p := newProducer(ctx, in)
	result, err := p.run(ctx)
	if err != nil {
		return ProduceResult{}, endedWithFigures(ctx, err, produceFigures, p.figuresSoFar(ctx))
	}
	return result, nil
}

// figuresSoFar is production's result up to now, for a run that ends
// without completing: a hold still on counts until now.
func (p *producer) figuresSoFar(ctx workflow.Context) ProduceResult {
	now := workflow.Now(ctx)
	figures := p.withHoldClosed(p.state, now)
	figures.DurationMillis = now.UnixMilli() - figures.StartedUnixMillis
	return figures
}

// withHoldClosed is r with the hold production is in, if any, counted and
// ended at now.
func (p *producer) withHoldClosed(r ProduceResult, now time.Time) ProduceResult {
	if !p.held {
		return r
	}
	r.HoldSpans = slices.Clone(r.HoldSpans)
	r.HeldMillis += now.Sub(p.heldSince).Milliseconds()
	if p.keepsHoldSpans {
		r.endHold(now.UnixMilli())
	}
	return r
}

func newProducer(ctx workflow.Context, in ProduceInput) *producer {
	if in.ChunksPerRun == 0 {
		in.ChunksPerRun = defaultChunksPerRun
	}
	p := &producer{in: in, state: in.State}
	p.state.Runs++
	if p.state.StartedUnixMillis == 0 {
		p.state.StartedUnixMillis = workflow.Now(ctx).UnixMilli()
	}
	p.state.Chunks = int((in.Messages + int64(in.ChunkSize) - 1) / int64(in.ChunkSize))
	p.signalEvery = max(1, p.state.Chunks/progressSignals)
	return p
}

// chunkRate is the rate cap of the chunk that begins at firstSeq: each
// chunk in flight gets its share of RatePerSecond, or of
// WarmupRatePerSecond where that is lower and the chunk begins within the
// warmup.
func (in ProduceInput) chunkRate(firstSeq int64) float64 {
	rate := in.RatePerSecond
	if firstSeq < in.WarmupMessages && in.WarmupRatePerSecond > 0 {
		rate = min(rate, in.WarmupRatePerSecond)
	}
	return rate / float64(in.ChunkConcurrency)
}

// run produces this workflow run's share of chunks, then either returns the
// result or continues as new with the state so far.
func (p *producer) run(ctx workflow.Context) (ProduceResult, error) {
	p.keepsHoldSpans = workflow.GetVersion(ctx, "record-hold-spans", workflow.DefaultVersion, 1) == 1
	p.deliverInputInSteps = workflow.GetVersion(ctx, "deliver-input-in-steps", workflow.DefaultVersion, 1) == 1
	p.trustedRates = workflow.GetVersion(ctx, "trusted-drain-rates", workflow.DefaultVersion, 1) == 1
	p.stepsAtCap = workflow.GetVersion(ctx, "steps-at-cap", workflow.DefaultVersion, 1) == 1
	p.enrichByOutput = workflow.GetVersion(ctx, "enrich-bounded-by-output", workflow.DefaultVersion, 1) == 1
	p.heldAtDrainRate = workflow.GetVersion(ctx, "held-at-drain-rate", workflow.DefaultVersion, 1) == 1
	if workflow.GetVersion(ctx, "chunk-lanes", workflow.DefaultVersion, 1) == 1 {
		p.laneBusy = make([]bool, produce.LanesPerChunkInFlight*p.in.ChunkConcurrency)
	}
	workflow.Go(ctx, p.pollLag)
	// Production starts only once the lag is known, so a run started into a
	// backlog (or continued as new while one builds) waits for it first.
	if err := workflow.Await(ctx, func() bool { return p.polled || p.failure != nil }); err != nil {
		return ProduceResult{}, err
	}
	if err := p.dispatchChunks(ctx); err != nil {
		return ProduceResult{}, err
	}
	if err := workflow.Await(ctx, func() bool { return p.inFlight == 0 }); err != nil {
		return ProduceResult{}, err
	}
	p.stopPolling = true
	if p.failure != nil {
		return ProduceResult{}, p.failure
	}
	// The next run starts unheld and polls again before producing.
	p.state = p.withHoldClosed(p.state, workflow.Now(ctx))
	if p.state.NextChunk < p.state.Chunks {
		p.in.State = p.state
		return ProduceResult{}, workflow.NewContinueAsNewError(ctx, ProduceWorkflow, p.in)
	}
	p.state.DurationMillis = workflow.Now(ctx).UnixMilli() - p.state.StartedUnixMillis
	return p.state, nil
}

// pollLag reads the run's consumer lag every LagPollEvery seconds until
// production ends, and holds or releases production by it.
func (p *producer) pollLag(ctx workflow.Context) {
	pollCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5, InitialInterval: time.Second},
		Summary:             "poll consumer lag",
	})
	for !p.stopPolling {
		var sample kafkaadmin.LagSample
		if err := workflow.ExecuteActivity(pollCtx, kafkaAdminActs.PollLag, kafkaadmin.PollLagInput{Names: p.in.Names}).Get(ctx, &sample); err != nil {
			p.failure = fmt.Errorf("poll consumer lag: %w", err)
			return
		}
		p.observeLag(ctx, sample)
		p.waitForNextPoll(ctx)
	}
}

// observeLag records a lag sample and starts or ends a hold by it: held
// while either threshold, in messages or in seconds, says hold.
func (p *producer) observeLag(ctx workflow.Context, sample kafkaadmin.LagSample) {
	// The report keeps what Kafka said; the hold goes by what is known.
	lag := sample
	if p.enrichByOutput {
		lag = p.enrichBoundedByOutput(sample)
	}
	p.lag, p.polled = lag.Max(), true
	hold := holdProduction(p.held, p.lag, p.in.LagThreshold, p.in.LagResume)
	if p.in.LagThresholdSeconds > 0 {
		p.observeLagSeconds(lag)
		if p.lagSeconds.known {
			hold = hold || holdProduction(p.held, p.lagSeconds.seconds, p.in.LagThresholdSeconds, p.in.LagResumeSeconds)
		}
	}
	p.state.observe(sample)
	now := workflow.Now(ctx)
	switch {
	case hold && !p.held:
		p.held, p.heldSince = true, now
		p.state.Holds++
		if p.keepsHoldSpans {
			p.state.startHold(now.UnixMilli())
		}
		workflow.GetLogger(ctx).Info("backpressure: holding production", p.lagLogFields(p.in.LagThreshold, p.in.LagThresholdSeconds)...)
	case !hold && p.held:
		p.held = false
		p.state.HeldMillis += now.Sub(p.heldSince).Milliseconds()
		p.endHoldSpan(now)
		workflow.GetLogger(ctx).Info("backpressure: resuming production", p.lagLogFields(p.in.LagResume, p.in.LagResumeSeconds)...)
	}
}

// enrichBoundedByOutput is the sample with the enrich group's lag bounded
// by what the enrich job has committed downstream, while production is
// held and no chunk is in flight.
//
// The job's Kafka source commits its offsets when a checkpoint completes,
// but only once its consumer's poll returns, and a source that has read
// everything polls up to 10 s for more (the connector's POLL_TIMEOUT; the
// commit is queued behind the poll, which nothing wakes). So while
// production is held, the group's committed lag and its oldest unconsumed
// record's age go on reading what the job read before it caught up, for
// up to 10 s after the checkpoint that committed its output, and holds
// ended when that late commit landed (docs/performance.md, "A Flink
// source that has caught up commits its offsets up to 10 s late").
//
// The job writes one enriched record for each raw one, in transactions
// committed at the same checkpoints, so the enriched topic's end (the
// deliver group's position plus its lag: committed records and their
// commit markers) counts at least the raw records the job has finished.
// Held with no chunk in flight, every chunk the workflow counts in
// Produced is in the raw topic and no other is, so Produced less that end
// bounds what the job has left. Where it bounds it to nothing, the group's
// oldest unconsumed record is one it has read. The bound can only lower
// the lag: output records of aborted transactions count as finished, a
// Flink failover's worth at most, which the deliver group and the
// threshold in messages still see.
func (p *producer) enrichBoundedByOutput(s kafkaadmin.LagSample) kafkaadmin.LagSample {
	if !p.held || p.inFlight > 0 {
		return s
	}
	left := max(0, p.state.Produced-(s.DeliverPosition+s.Deliver))
	if left < s.Enrich {
		s.Enrich = left
		if left == 0 {
			s.EnrichOldestMillis = 0
		}
	}
	return s
}

func (p *producer) endHoldSpan(now time.Time) {
	if p.keepsHoldSpans {
		p.state.endHold(now.UnixMilli())
	}
}

// observeLagSeconds updates the drain rates and the lag in seconds by a
// sample, before the sample joins the history it is measured against.
func (p *producer) observeLagSeconds(sample kafkaadmin.LagSample) {
	meter := secondsMeter{
		// Two polls at least, and two checkpoint intervals: the Flink
		// groups' positions move once per interval, so a window of whole
		// intervals holds whole steps (see backpressure.go).
		windowMillis:        int64(max(2*p.in.LagPollEvery, 2*p.in.CheckpointIntervalSeconds)) * 1000,
		checkpointSeconds:   float64(p.in.CheckpointIntervalSeconds),
		deliverInputInSteps: p.deliverInputInSteps,
		trustedRates:        p.trustedRates,
		heldAtDrainRate:     p.heldAtDrainRate,
	}
	if p.stepsAtCap {
		meter.stepSeconds = p.in.stepSecondsAtCap()
	}
	p.state.DrainRates, p.lagSeconds = meter.lagSeconds(p.state.LagSamples, sample, p.state.DrainRates, p.held)
	p.state.LagSeconds, p.state.LagSecondsGroup = p.lagSeconds.seconds, p.lagSeconds.group
	p.state.MaxLagSeconds = max(p.state.MaxLagSeconds, p.lagSeconds.seconds)
}

// segmentsInFlight is how many delivery segments may run at once: one,
// and the next one overlapping its end.
const segmentsInFlight = 2

// stepSecondsAtCap are what the lag in seconds leaves out for the steps the
// pipeline moves in (see backpressure.go), per group in
// kafkaadmin.LagSample.ByGroup's order: the time the rate cap takes to
// produce the messages that reach the group at once, or that it commits at
// once. Those are the chunks in flight for enrich, and the segments in
// flight for deliver and, as their responses, for split; an input without
// delivery's segment size, as written before it, leaves only the chunks.
func (in ProduceInput) stepSecondsAtCap() (seconds [3]float64) {
	seconds[0] = float64(in.ChunkSize) * float64(in.ChunkConcurrency) / in.RatePerSecond
	if in.SegmentMessages > 0 {
		seconds[1] = segmentsInFlight * float64(in.SegmentMessages) / in.RatePerSecond
		seconds[2] = seconds[1]
	}
	return seconds
}

// lagLogFields are the lag figures of a hold or resume log line against
// the given marks.
func (p *producer) lagLogFields(mark int64, markSeconds float64) []any {
	fields := []any{"lag", p.lag, "mark", mark}
	if p.lagSeconds.known {
		fields = append(fields, "lag_seconds", p.lagSeconds.seconds, "mark_seconds", markSeconds,
			"group", p.lagSeconds.group, "drain_rate", p.lagSeconds.rate, "by_age", p.lagSeconds.byAge)
	}
	return fields
}

// waitForNextPoll sleeps until the next lag poll; the timer's summary tells
// the UI why production waits when it is held.
func (p *producer) waitForNextPoll(ctx workflow.Context) {
	summary := fmt.Sprintf("next lag poll (lag %d)", p.lag)
	if p.held {
		summary = fmt.Sprintf("backpressure hold: lag %d, resume below %d (threshold %d)", p.lag, p.in.LagResume, p.in.LagThreshold)
	}
	if p.in.LagThresholdSeconds > 0 {
		summary = p.secondsSummary()
	}
	every := time.Duration(p.in.LagPollEvery) * time.Second
	_ = workflow.NewTimerWithOptions(ctx, every, workflow.TimerOptions{Summary: summary}).Get(ctx, nil)
}

// secondsSummary is the lag poll timer's summary when a threshold in
// seconds is set: which threshold holds production, or the lag so far.
func (p *producer) secondsSummary() string {
	ls := p.lagSeconds
	inSeconds := "seconds unknown (no drain rate yet)"
	if ls.known {
		inSeconds = fmt.Sprintf("%.1f s (%s)", ls.seconds, ls.basis())
	}
	if !p.held {
		return fmt.Sprintf("next lag poll (lag %d, %s)", p.lag, inSeconds)
	}
	var reasons []string
	if p.lag > p.in.LagResume {
		reasons = append(reasons, fmt.Sprintf("lag %d > %d", p.lag, p.in.LagResume))
	}
	if ls.known && ls.seconds > p.in.LagResumeSeconds {
		reasons = append(reasons, fmt.Sprintf("lag %.1f s > %.3g s (%s)", ls.seconds, p.in.LagResumeSeconds, ls.basis()))
	}
	return fmt.Sprintf("backpressure hold: %s; resumes at %d msgs and %.3g s (hold above %d or %.3g s)",
		strings.Join(reasons, ", "), p.in.LagResume, p.in.LagResumeSeconds, p.in.LagThreshold, p.in.LagThresholdSeconds)
}

// dispatchChunks schedules chunks, at most ChunkConcurrency at a time and
// none while production is held, until every chunk is scheduled, one has
// failed, or this run has scheduled its share and should continue as new.
//
// Chunks run in lanes: chunk c waits for chunk c-lanes, the lane's
// previous chunk, and is written under the lane's transactional id, so a
// worker keeps the lane's producer from chunk to chunk (no new connections,
// no claim of a new id) and an attempt of a chunk still fences every earlier
// one. A chunk's lane must not depend on which chunks end first: a reset
// run schedules the chunk again, and its attempts fence the old ones only
// under the same id.
func (p *producer) dispatchChunks(ctx workflow.Context) error {
	for scheduled := 0; p.state.NextChunk < p.state.Chunks && p.failure == nil; scheduled++ {
		if err := workflow.Await(ctx, func() bool {
			return p.failure != nil || (!p.held && p.inFlight < p.in.ChunkConcurrency && !p.laneIsBusy(p.state.NextChunk))
		}); err != nil {
			return err
		}
		if p.failure != nil || scheduled >= p.in.ChunksPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return nil
		}
		chunk := p.state.NextChunk
		p.state.NextChunk++
		p.inFlight++
		p.markLane(chunk, true)
		workflow.Go(ctx, func(ctx workflow.Context) { p.produceChunk(ctx, chunk) })
	}
	return nil
}

// laneIsBusy reports whether chunk's lane runs a chunk now; without lanes
// no lane is ever busy.
func (p *producer) laneIsBusy(chunk int) bool {
	return p.laneBusy != nil && p.laneBusy[chunk%len(p.laneBusy)]
}

func (p *producer) markLane(chunk int, busy bool) {
	if p.laneBusy != nil {
		p.laneBusy[chunk%len(p.laneBusy)] = busy
	}
}

// produceChunk produces one chunk and counts it.
func (p *producer) produceChunk(ctx workflow.Context, chunk int) {
	in := produce.ChunkInput{
		Names: p.in.Names, Chunk: chunk, FirstSeq: int64(chunk) * int64(p.in.ChunkSize),
		LogicalQueues: p.in.LogicalQueues, PayloadBytes: p.in.PayloadBytes,
	}
	in.Count = int(min(int64(p.in.ChunkSize), p.in.Messages-in.FirstSeq))
	in.RatePerSecond = p.in.chunkRate(in.FirstSeq)
	if p.laneBusy != nil {
		in.TransactionalID = produce.LaneTransactionalID(p.in.Names, chunk%len(p.laneBusy))
	}
	defer func() {
		p.inFlight--
		p.markLane(chunk, false)
	}()
	var res produce.ChunkResult
	err := workflow.ExecuteActivity(p.chunkOptions(ctx, in), produceActs.ProduceChunk, in).Get(ctx, &res)
	if err != nil {
		p.failure = fmt.Errorf("produce chunk %d: %w", chunk, err)
		return
	}
	p.state.Produced += int64(in.Count)
	if res.AlreadyCommitted {
		p.state.Resumed++
	}
	if res.DurationMillis > 0 {
		p.rate = float64(res.Produced) / (float64(res.DurationMillis) / 1000)
	}
	if (chunk+1)%p.signalEvery == 0 || chunk == p.state.Chunks-1 {
		signalParent(ctx, p.in.ParentWorkflowID, childProgress{
			Source: "produce", Produced: p.state.Produced, Lag: p.lag, Held: p.held, RatePerSecond: p.rate,
			LagSeconds: p.lagSeconds.seconds, LagGroup: p.lagSeconds.group, DrainRate: p.lagSeconds.rate,
		})
	}
}

func (p *producer) chunkOptions(ctx workflow.Context, in produce.ChunkInput) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A chunk at its rate takes count/rate seconds; allow generously
		// more, since other chunks and the brokers share two cores.
		StartToCloseTimeout: time.Duration(float64(in.Count)/in.RatePerSecond*3)*time.Second + 2*time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10, InitialInterval: 2 * time.Second},
		Summary:             fmt.Sprintf("produce chunk %d/%d", in.Chunk+1, p.state.Chunks),
	})
}
