package workflows

import (
	"go.temporal.io/sdk/worker"

	"github.com/flowproof/flowproof/activities"
)

// Register registers every workflow of flowproof on a worker.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(PipelineWorkflow)
	r.RegisterWorkflow(ProduceWorkflow)
	r.RegisterWorkflow(DeliverWorkflow)
}

// acts names activities in ExecuteActivity calls; it is never dereferenced
// in a workflow, since the worker runs the activities on its own instance.
var acts *activities.Activities
