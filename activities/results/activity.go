package results

import (
	"context"
	"errors"

	"go.temporal.io/sdk/activity"

	"github.com/flowproof/flowproof/internal/errtype"
)

// StoreInput is StoreRunResult's input: the record and how to create the
// results topic should it not exist yet (the run's cluster settings).
type StoreInput struct {
	Record            Record `json:"record"`
	ReplicationFactor int    `json:"replication_factor"`
	MinInsyncReplicas int    `json:"min_insync_replicas,omitempty"`
}

// Activities holds the store StoreRunResult writes to.
type Activities struct {
	store *Store
}

// New returns the activity writing to store.
func New(store *Store) *Activities { return &Activities{store: store} }

// StoreRunResult keeps a finished run's result in the results topic. The
// workflow retries it and, should it still fail, reports the failure in the
// run's result without changing the run's status (see PipelineWorkflow).
func (a *Activities) StoreRunResult(ctx context.Context, in StoreInput) error {
	if a.store == nil {
		return errors.New("store run result: this worker has no results store")
	}
	if in.Record.RunID == "" || len(in.Record.Result) == 0 {
		return errtype.InvalidInputf("store run result: the record needs a run id and a result")
	}
	if in.ReplicationFactor < 1 {
		return errtype.InvalidInputf("store run result: replication_factor %d must be at least 1", in.ReplicationFactor)
	}
	if err := a.store.Put(ctx, in.Record, in.ReplicationFactor, in.MinInsyncReplicas); err != nil {
		return err
	}
	activity.GetLogger(ctx).Info("run result stored", "RunID", in.Record.RunID, "Topic", a.store.Topic(), "Status", in.Record.Status)
	return nil
}
