package drills

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
)

// Watch reads the progress of the run a drill hits, at the sources: the
// run's raw topic in Kafka (produced) and the reference endpoint's count of
// the run (delivered); Temporal says when the run has ended. Its activities
// only read, so they may be retried at will.
type Watch struct {
	Temporal client.Client
	Kafka    *kadm.Client
	// EndpointURL is the reference endpoint, whose RunStats count what it
	// accepted of each run.
	EndpointURL string
	HTTP        *http.Client
}

const (
	defaultSampleInterval = 500 * time.Millisecond
	// awaitKeeps is how much history AwaitProgress returns: the baseline
	// before a fault is taken from it.
	awaitKeeps = 30 * time.Second
	// closedCheckEvery spaces the checks whether the run has ended.
	closedCheckEvery = 2 * time.Second
	readTimeout      = 5 * time.Second
)

// AwaitProgress samples the run's counter until it reaches req.Mark and
// returns the samples of the last half minute, or Ended when the run
// closed first. Queries that fail (a Temporal server being restarted, a
// worker being replaced) are skipped: the next tick tries again.
func (w *Watch) AwaitProgress(ctx context.Context, req drillapi.ProgressRequest) (drillapi.ProgressSamples, error) {
	var kept []drillapi.Sample
	err := w.sample(ctx, req, func(s drillapi.Sample) bool {
		kept = append(kept, s)
		for len(kept) > 1 && s.At.Sub(kept[0].At) > awaitKeeps {
			kept = kept[1:]
		}
		return s.Count >= req.Mark
	})
	if errors.Is(err, errRunEnded) {
		return drillapi.ProgressSamples{Samples: kept, Ended: true}, nil
	}
	return drillapi.ProgressSamples{Samples: kept}, err
}

// SampleProgress samples the run's counter until it reaches req.Total or
// the run ends, and returns the samples, thinned to drillapi.MaxSamples.
func (w *Watch) SampleProgress(ctx context.Context, req drillapi.ProgressRequest) (drillapi.ProgressSamples, error) {
	var kept []drillapi.Sample
	err := w.sample(ctx, req, func(s drillapi.Sample) bool {
		kept = append(kept, s)
		if len(kept) > drillapi.MaxSamples {
			kept = thin(kept)
		}
		return s.Count >= req.Total
	})
	if errors.Is(err, errRunEnded) {
		return drillapi.ProgressSamples{Samples: kept, Ended: true}, nil
	}
	return drillapi.ProgressSamples{Samples: kept}, err
}

// thin halves the samples, keeping the first and the last.
func thin(samples []drillapi.Sample) []drillapi.Sample {
	out := samples[:0:0]
	for i, s := range samples {
		if i%2 == 0 || i == len(samples)-1 {
			out = append(out, s)
		}
	}
	return out
}

// errRunEnded stops sampling when the watched run has closed.
var errRunEnded = errors.New("the watched run has ended")

// sample calls take with a sample of the counter every interval until take
// returns true, the run closes (errRunEnded) or ctx ends.
func (w *Watch) sample(ctx context.Context, req drillapi.ProgressRequest, take func(drillapi.Sample) bool) error {
	if req.WorkflowID == "" || req.RunID == "" || req.RawTopic == "" ||
		(req.Counter != drillapi.CounterProduced && req.Counter != drillapi.CounterDelivered) {
		return errtype.InvalidInputf("progress request: want a workflow id, run id, raw topic and counter produced or delivered, got %q, %q, %q and %q",
			req.WorkflowID, req.RunID, req.RawTopic, req.Counter)
	}
	interval := defaultSampleInterval
	if req.IntervalMillis > 0 {
		interval = time.Duration(req.IntervalMillis) * time.Millisecond
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var lastClosedCheck time.Time
	for {
		count, err := w.count(ctx, req)
		if err == nil {
			activity.RecordHeartbeat(ctx, count)
			if take(drillapi.Sample{At: time.Now(), Count: count}) {
				return nil
			}
		}
		if time.Since(lastClosedCheck) >= closedCheckEvery {
			lastClosedCheck = time.Now()
			if w.closed(ctx, req.WorkflowID) {
				return errRunEnded
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

func (w *Watch) count(ctx context.Context, req drillapi.ProgressRequest) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	if req.Counter == drillapi.CounterProduced {
		return w.produced(ctx, req.RawTopic)
	}
	return w.delivered(ctx, req.RunID)
}

// produced sums the end offsets of the raw topic: every record written,
// a little more than the messages (transaction markers, aborted retries),
// which is the same before and after a fault and so cancels in a rate. A
// listing that misses a partition (a leader moving) is no sample at all.
func (w *Watch) produced(ctx context.Context, topic string) (int64, error) {
	offsets, err := w.Kafka.ListEndOffsets(ctx, topic)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var sum int64
	offsets.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum, nil
}

// delivered is the reference endpoint's count of the run's distinct
// messages, which moves a batch at a time.
func (w *Watch) delivered(ctx context.Context, runID string) (int64, error) {
	stats, err := endpointapi.FetchRunStats(ctx, w.HTTP, endpointapi.RunStatsURL(w.EndpointURL, runID))
	if err != nil {
		return 0, fmt.Errorf("the endpoint's count of %s: %w", runID, err)
	}
	return stats.UniqueSeqs, nil
}

// closed reports whether the run has ended; an error (a server being
// restarted) reads as still running.
func (w *Watch) closed(ctx context.Context, workflowID string) bool {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	desc, err := w.Temporal.DescribeWorkflow(ctx, workflowID, "")
	if err != nil {
		return false
	}
	return desc.RawResponse.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}
