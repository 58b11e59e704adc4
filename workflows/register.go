package workflows

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/flowproof/flowproof/activities"
)

// Register puts every workflow and activity of flowproof on a worker.
// Exported methods of *activities.Activities that are not activities (Close)
// are skipped instead of making registration panic.
func Register(r worker.Registry, a *activities.Activities) {
	RegisterWorkflows(r)
	r.RegisterActivityWithOptions(a, activity.RegisterOptions{SkipInvalidStructFunctions: true})
}

// RegisterWorkflows registers the workflows alone, for a replayer or a test
// environment that provides its own activities.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(PipelineWorkflow)
	r.RegisterWorkflow(ProduceWorkflow)
	r.RegisterWorkflow(DeliverWorkflow)
}

// acts names activities in ExecuteActivity calls; it is never dereferenced
// in a workflow, since the worker runs the activities on its own instance.
var acts *activities.Activities
