package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/activities/results"
	"github.com/flowproof/flowproof/internal/searchattr"
)

// inputHashBytes is how much of the SHA-256 InputHash keeps: 12 bytes make
// a collision between two inputs of one namespace practically impossible.
const inputHashBytes = 12

// InputHash names what a run measures, so that runs of the same input can
// be compared: the hex SHA-256 (first 12 bytes) of the input's JSON with
// its defaults applied (withDefaults), leaving out what differs between
// runs of the same test without changing the workload or the cluster
// settings: the run id, topic name overrides (derived from the run id by
// default), keep_topics, timeout_seconds and thresholds. Everything else
// (messages, rates, partitions, batch sizes, lag thresholds, Flink
// parallelism, replication settings, topic configs, ...) counts, so a
// changed default gives another hash too.
func InputHash(in PipelineInput) string {
	in.RunID, in.Topics, in.KeepTopics, in.TimeoutSeconds, in.Thresholds = "", TopicNames{}, false, 0, Thresholds{}
	in.unknownField = ""
	// encoding/json writes struct fields in declaration order and map
	// keys sorted, so the same input always gives the same bytes.
	data, err := json.Marshal(in) //workflowcheck:ignore
	if err != nil {
		// PipelineInput holds only plain values; this cannot happen.
		panic(fmt.Sprintf("encode pipeline input: %v", err))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:inputHashBytes])
}

// scheduledByKey is the search attribute Temporal sets on runs a schedule
// started.
var scheduledByKey = temporal.NewSearchAttributeKeyKeyword("TemporalScheduledById")

// keepsHistory is true for runs that carry FlowproofInputHash and store
// their result (runs recorded before replay without either).
func keepsHistory(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, "store-run-result", workflow.DefaultVersion, 1) == 1
}

// storeResult keeps the run's result in the results topic, where history
// and compare find it after the namespace's retention. A result that cannot
// be stored after the retries leaves the run's status as it was: the run
// proved (or disproved) the pipeline whatever the store does, and a
// Succeeded run turned Failed by the archive would send people to the
// wrong place. The failure is not silent either: it is logged and named in
// the result (Metrics.ResultNotStored), which starter run and the UI show.
func (p *pipeline) storeResult(ctx workflow.Context, status Status) {
	rec, err := p.resultRecord(ctx, status)
	if err == nil {
		err = workflow.ExecuteActivity(withOptions(ctx, 2*time.Minute, 5, "store the run's result"),
			resultsActs.StoreRunResult, results.StoreInput{
				Record: rec, ReplicationFactor: p.in.ReplicationFactor, MinInsyncReplicas: p.in.MinInsyncReplicas,
			}).Get(ctx, nil)
	}
	if err != nil {
		workflow.GetLogger(ctx).Error("run result not stored", "error", err)
		p.metrics.ResultNotStored = err.Error()
	}
}

func (p *pipeline) resultRecord(ctx workflow.Context, status Status) (results.Record, error) {
	info := workflow.GetInfo(ctx)
	scheduleID, _ := workflow.GetTypedSearchAttributes(ctx).GetKeyword(scheduledByKey)
	input, err := json.Marshal(p.in) //workflowcheck:ignore
	if err != nil {
		return results.Record{}, fmt.Errorf("encode input: %w", err)
	}
	result, err := json.Marshal(PipelineResult{Status: status, Metrics: p.metrics}) //workflowcheck:ignore
	if err != nil {
		return results.Record{}, fmt.Errorf("encode result: %w", err)
	}
	return results.Record{
		RunID: p.in.RunID, Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID,
		TemporalRunID: info.WorkflowExecution.RunID, TaskQueue: info.TaskQueueName, ScheduleID: scheduleID,
		InputHash: InputHash(p.in), Status: string(status), StartedAt: p.started, EndedAt: workflow.Now(ctx),
		Input: input, Result: result,
	}, nil
}

// upsertInputHash makes the run findable by its input in visibility.
func (p *pipeline) upsertInputHash(ctx workflow.Context) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, searchattr.InputHash.ValueSet(InputHash(p.in)))
}
