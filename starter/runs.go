package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/flowproof/flowproof/activities/results"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/searchattr"
	"github.com/flowproof/flowproof/workflows"
)

// Where a past run was found.
const (
	sourceVisibility = "visibility"
	sourceStore      = "store"
)

// pastRun is one run as history and compare see it: from Temporal's
// visibility while the namespace keeps it, from the results store after.
type pastRun struct {
	WorkflowID    string    `json:"workflow_id"`
	TemporalRunID string    `json:"temporal_run_id"`
	RunID         string    `json:"run_id,omitempty"`
	TaskQueue     string    `json:"task_queue"`
	ScheduleID    string    `json:"schedule_id,omitempty"`
	InputHash     string    `json:"input_hash,omitempty"`
	Status        string    `json:"status"`
	Started       time.Time `json:"started"`
	Source        string    `json:"source"`
	// Result is the run's PipelineResult; nil while it runs, and for runs
	// that ended without one (terminated, timed out).
	Result *workflows.PipelineResult `json:"-"`
}

// runFilter selects runs; empty fields select all.
type runFilter struct {
	TaskQueue  string
	ScheduleID string
	Status     string
	InputHash  string
	WorkflowID string
}

// query is the filter as a visibility query.
func (f runFilter) query() (string, error) {
	clauses := []string{"WorkflowType = 'PipelineWorkflow'"}
	for _, c := range []struct{ attr, value string }{
		{"TaskQueue", f.TaskQueue}, {"TemporalScheduledById", f.ScheduleID},
		{searchattr.StatusName, f.Status}, {searchattr.InputHashName, f.InputHash}, {"WorkflowId", f.WorkflowID},
	} {
		if c.value == "" {
			continue
		}
		if strings.ContainsAny(c.value, `'"\`) {
			return "", usagef("%s %q: quotes and backslashes are not allowed", c.attr, c.value)
		}
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", c.attr, c.value))
	}
	return strings.Join(clauses, " AND "), nil
}

func (f runFilter) matches(r pastRun) bool {
	return (f.TaskQueue == "" || r.TaskQueue == f.TaskQueue) && (f.ScheduleID == "" || r.ScheduleID == f.ScheduleID) &&
		(f.Status == "" || r.Status == f.Status) && (f.InputHash == "" || r.InputHash == f.InputHash) &&
		(f.WorkflowID == "" || r.WorkflowID == f.WorkflowID)
}

// storeFlags say where the results store is; history and compare read it
// for runs past the namespace's retention.
type storeFlags struct {
	use bool
	// visibility false reads the store alone, as for runs past retention.
	visibility   bool
	kafkaBrokers []string
	topic        string
}

func (s *storeFlags) register(fs *pflag.FlagSet) {
	local := localstack.FromEnv()
	fs.BoolVar(&s.visibility, "visibility", true, "read Temporal's visibility; false reads the results store alone")
	fs.BoolVar(&s.use, "store", true, "also read the results store (runs past the namespace's retention); Kafka security from the FLOWPROOF_KAFKA_* variables, as the worker's")
	fs.StringSliceVar(&s.kafkaBrokers, "kafka-brokers", local.KafkaBrokers, "Kafka bootstrap brokers of the results store ($"+localstack.EnvKafkaBrokers+")")
	fs.StringVar(&s.topic, "results-topic", results.DefaultTopic, "the results store's topic")
}

// storeReadTimeout bounds reading the results store, which is small.
const storeReadTimeout = 30 * time.Second

// readStore returns the store's runs that f selects; nothing when the store
// is not used.
func (s *storeFlags) readStore(ctx context.Context, f runFilter) ([]pastRun, error) {
	if !s.use {
		return nil, nil
	}
	security, err := kafkaconn.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	opts, err := security.ClientOptions()
	if err != nil {
		return nil, err
	}
	kafka, err := kafkaeos.Dial(s.kafkaBrokers, opts...)
	if err != nil {
		return nil, err
	}
	defer kafka.Close()
	ctx, cancel := context.WithTimeout(ctx, storeReadTimeout)
	defer cancel()
	records, err := results.NewStore(kafka, s.topic).All(ctx)
	if err != nil {
		return nil, err
	}
	var runs []pastRun
	for _, rec := range records {
		run := pastRun{
			WorkflowID: rec.WorkflowID, TemporalRunID: rec.TemporalRunID, RunID: rec.RunID, TaskQueue: rec.TaskQueue,
			ScheduleID: rec.ScheduleID, InputHash: rec.InputHash, Status: rec.Status, Started: rec.StartedAt, Source: sourceStore,
		}
		var result workflows.PipelineResult
		if json.Unmarshal(rec.Result, &result) == nil {
			run.Result = &result
		}
		if f.matches(run) {
			runs = append(runs, run)
		}
	}
	return runs, nil
}

// listVisibility returns up to limit runs that f selects, newest first,
// with their results.
func listVisibility(ctx context.Context, c client.Client, namespace string, f runFilter, limit int) ([]pastRun, error) {
	query, err := f.query()
	if err != nil {
		return nil, err
	}
	var runs []pastRun
	var token []byte
	for len(runs) < limit {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, Query: query, PageSize: int32(min(limit, 1000)), NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list runs (%s): %w", query, err)
		}
		for _, info := range resp.GetExecutions() {
			runs = append(runs, fromVisibility(info))
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.SortFunc(runs, func(a, b pastRun) int { return b.Started.Compare(a.Started) })
	runs = runs[:min(len(runs), limit)]
	for i := range runs {
		if err := readResult(ctx, c, &runs[i]); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

func fromVisibility(info *workflowpb.WorkflowExecutionInfo) pastRun {
	fields := info.GetSearchAttributes().GetIndexedFields()
	run := pastRun{
		WorkflowID: info.GetExecution().GetWorkflowId(), TemporalRunID: info.GetExecution().GetRunId(),
		TaskQueue: info.GetTaskQueue(), Started: info.GetStartTime().AsTime(), Source: sourceVisibility,
		ScheduleID: keyword(fields["TemporalScheduledById"]), InputHash: keyword(fields[searchattr.InputHashName]),
		Status: keyword(fields[searchattr.StatusName]),
	}
	// A run that did not end itself (terminated, timed out) still reads
	// Running in FlowproofStatus; Temporal's status says what happened.
	if s := info.GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED && s != enumspb.WORKFLOW_EXECUTION_STATUS_FAILED &&
		s != enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED || run.Status == "" {
		run.Status = s.String() // "Running", "Terminated", ... as the UI shows it
	}
	return run
}

func keyword(p *commonpb.Payload) string {
	var s string
	if p == nil || converter.GetDefaultDataConverter().FromPayload(p, &s) != nil {
		return ""
	}
	return s
}

// readResult fills run.Result from the run's close event: its result, or
// the result its failure carries.
func readResult(ctx context.Context, c client.Client, run *pastRun) error {
	if run.Status == string(workflows.StatusRunning) {
		return nil
	}
	var result workflows.PipelineResult
	err := c.GetWorkflow(ctx, run.WorkflowID, run.TemporalRunID).Get(ctx, &result)
	if err == nil {
		run.Result = &result
		return nil
	}
	if ended, ok := workflows.ResultOfEnding(err); ok {
		run.Result = &ended
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("read result of %s: %w", run.WorkflowID, err)
	}
	return nil // terminated or timed out: no result to show
}

// findRuns merges visibility with the store: visibility's runs as they are,
// and the store's runs that visibility no longer knows; newest first, at
// most limit. A store that cannot be read is a warning, not an error.
func (a *app) findRuns(ctx context.Context, c client.Client, namespace string, store *storeFlags, f runFilter, limit int) ([]pastRun, error) {
	var runs []pastRun
	if store.visibility {
		var err error
		if runs, err = listVisibility(ctx, c, namespace, f, limit); err != nil {
			return nil, err
		}
	}
	stored, storeErr := store.readStore(ctx, f)
	if storeErr != nil && !store.visibility {
		return nil, fmt.Errorf("read the results store: %w", storeErr)
	}
	if storeErr != nil {
		fmt.Fprintf(a.stderr, "starter: warning: results store not read (runs past the namespace's retention are missing): %v\n", storeErr)
	}
	known := map[string]bool{}
	for _, r := range runs {
		known[r.TemporalRunID] = true
	}
	for _, r := range stored {
		if !known[r.TemporalRunID] {
			runs = append(runs, r)
		}
	}
	slices.SortFunc(runs, func(a, b pastRun) int { return b.Started.Compare(a.Started) })
	return runs[:min(len(runs), limit)], nil
}

var errNoSuchRun = errors.New("no such run")
