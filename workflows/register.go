package workflows

import (
	"go.temporal.io/sdk/worker"

	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/activities/preflight"
	"github.com/flowproof/flowproof/activities/produce"
	"github.com/flowproof/flowproof/activities/results"
	"github.com/flowproof/flowproof/activities/runmetrics"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/activities/wiring"
)

// Register puts every workflow and activity of flowproof on a worker.
func Register(r worker.Registry, acts *wiring.Activities) {
	RegisterWorkflows(r)
	RegisterActivities(r, acts)
}

// RegisterActivities registers every activity of acts; a zero
// wiring.Activities registers them for a test that mocks them.
func RegisterActivities(r worker.ActivityRegistry, acts *wiring.Activities) {
	for _, a := range acts.All() {
		r.RegisterActivity(a)
	}
}

// RegisterWorkflows registers the workflows alone, for a replayer or a test
// environment that provides its own activities.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(PipelineWorkflow)
	r.RegisterWorkflow(ProduceWorkflow)
	r.RegisterWorkflow(DeliverWorkflow)
}

// These name activities in ExecuteActivity calls by method value; they are
// never dereferenced in a workflow, since the worker runs the activities on
// its own instances.
var (
	preflightActs  *preflight.Activities
	kafkaAdminActs *kafkaadmin.Activities
	flinkActs      *flink.Activities
	produceActs    *produce.Activities
	deliverActs    *deliver.Activities
	verifyActs     *verify.Activities
	runMetricsActs *runmetrics.Activities
	resultsActs    *results.Activities
	notifyActs     *notify.Activities
)

// RegisterDrill registers DrillWorkflow, for the drill worker of a local
// stack only: the activities it calls can kill the stack's processes.
func RegisterDrill(r worker.WorkflowRegistry) {
	r.RegisterWorkflow(DrillWorkflow)
}
