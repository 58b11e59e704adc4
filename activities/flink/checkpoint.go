package flink

import (
	"context"
	"fmt"
	"time"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/errtype"
)

// CheckpointInput names the job to checkpoint.
type CheckpointInput struct {
	JobName string `json:"job_name"`
	JobID   string `json:"job_id"`
}

// CheckpointResult is the checkpoint taken.
type CheckpointResult struct {
	CheckpointID int64 `json:"checkpoint_id"`
	TookMillis   int64 `json:"took_ms"`
}

// CheckpointFlinkJob asks a job for a checkpoint now and returns once Flink
// reports it complete. The jobs' Kafka sinks commit their records at
// checkpoints, so a run whose last messages the split job has written
// need not wait up to a checkpoint interval to see them.
func (a *Activities) CheckpointFlinkJob(ctx context.Context, in CheckpointInput) (CheckpointResult, error) {
	if err := ValidateCheckpointInput(in); err != nil {
		return CheckpointResult{}, err
	}
	if a.jobs == nil {
		return CheckpointResult{}, errNoJobManager()
	}
	started := time.Now()
	id, err := a.jobs.Checkpoint(ctx, in.JobID)
	if err != nil {
		return CheckpointResult{}, fmt.Errorf("checkpoint Flink job %s (%s): %w", in.JobName, in.JobID, err)
	}
	res := CheckpointResult{CheckpointID: id, TookMillis: time.Since(started).Milliseconds()}
	activities.ReporterOf(ctx).Log.Info("Flink checkpoint taken", "Job", in.JobName, "JobID", in.JobID,
		"CheckpointID", res.CheckpointID, "TookMillis", res.TookMillis)
	return res, nil
}

// ValidateCheckpointInput is CheckpointFlinkJob's own check of its input.
func ValidateCheckpointInput(in CheckpointInput) error {
	if err := flinksql.ValidateJobID(in.JobID); err != nil {
		return errtype.InvalidInputf("job %q: %v", in.JobName, err)
	}
	return nil
}
