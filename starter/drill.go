package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/workflows"
)

// drillFlags are the flags of `starter drill`.
type drillFlags struct {
	input          inputFlags
	all            bool
	json           bool
	drillTaskQueue string
}

func (a *app) drillCommand() *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:   "drill NAME... | --all",
		Short: "Run fault drills on the local stack, one after the other, and print one table",
		Long: `drill runs each named DrillWorkflow in turn on the drill worker's task queue
(--drill-task-queue; the drill worker runs only next to a local stack: make up DRILLS=1).
Each drill runs a pipeline of its own (default 200,000 messages; the input flags set
it) on the flowproof worker (--task-queue), injects its fault at a progress point,
lifts it, and passes only when the run succeeds with every hop exact or fails by
design naming the fault. The table has, per drill: when the fault was injected, how
long throughput took to come back to 80% of its rate before, the status, and every
hop's missing and duplicated counts. Exit 0 only when every drill passed.

Drills: ` + strings.Join(workflows.DrillNames(), ", "),
		Example: `  starter drill kill-broker kill-taskmanager
  starter drill --all --messages 200000`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.drill(cmd, &f, args) },
	}
	f.input.register(cmd.Flags(), false)
	cmd.Flags().BoolVar(&f.all, "all", false, "run every drill of the catalogue")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the DrillResults as one JSON array on stdout")
	cmd.Flags().StringVar(&f.drillTaskQueue, "drill-task-queue", drillapi.TaskQueue, "task queue of the drill worker")
	return cmd
}

func (a *app) drill(cmd *cobra.Command, f *drillFlags, names []string) error {
	if f.all == (len(names) > 0) {
		return usagef("name the drills to run, or give --all (drills: %s)", strings.Join(workflows.DrillNames(), ", "))
	}
	if f.all {
		names = workflows.DrillNames()
	}
	for _, name := range names {
		if _, ok := workflows.DrillNamed(name); !ok {
			return usagef("unknown drill %q: want one of %s", name, strings.Join(workflows.DrillNames(), ", "))
		}
	}
	in, err := f.input.build(cmd.Flags(), os.Stdin)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, ns, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	var results []workflows.DrillResult
	for _, name := range names {
		id := "drill-" + name + "-" + time.Now().UTC().Format("20060102T150405Z")
		drill := workflows.DrillInput{Drill: name, Pipeline: in, PipelineTaskQueue: a.taskQueue}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: f.drillTaskQueue,
			WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			StaticSummary:                            "flowproof drill " + name,
			WorkflowExecutionTimeout:                 drill.ExecutionTimeout(),
		}, workflows.DrillWorkflow, drill)
		if err != nil {
			return fmt.Errorf("start DrillWorkflow %s on task queue %s: %w", id, f.drillTaskQueue, err)
		}
		began := time.Now()
		fmt.Fprintf(a.stderr, "drill %s started: %s\n", name, workflowLink(a.uiURL, ns, run.GetID(), run.GetRunID()))
		var result workflows.DrillResult
		err = run.Get(ctx, &result)
		if ctx.Err() != nil {
			return exitError{code: 130, err: fmt.Errorf("stopped following drill %s; it keeps running", id)}
		}
		if ended, ok := workflows.DrillResultOfEnding(err); ok {
			result, err = ended, nil
		}
		if err != nil {
			result = workflows.DrillResult{Status: workflows.DrillFailed, Metrics: workflows.DrillMetrics{Drill: name, Verdict: workflowFailure(err)}}
		}
		fmt.Fprintf(a.stderr, "drill %s: %s after %s: %s\n", name, result.Status, time.Since(began).Round(time.Second), result.Metrics.Verdict)
		results = append(results, result)
	}
	if f.json {
		if err := writeJSON(a.stdout, results); err != nil {
			return err
		}
	} else {
		printDrills(a.stdout, results)
	}
	if failed := slices.IndexFunc(results, func(r workflows.DrillResult) bool { return r.Status != workflows.DrillPassed }); failed >= 0 {
		return exitError{code: 1, err: fmt.Errorf("drill %s did not pass", results[failed].Metrics.Drill)}
	}
	return nil
}

// printDrills writes the drills' table: one line per fault.
func printDrills(w io.Writer, results []workflows.DrillResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "drill\tinjected at\ttarget\trecovery\tstatus\tmissing/duplicated per hop\trun")
	for _, r := range results {
		hops := hopCounts(r.Metrics.Run)
		run := strings.TrimSpace(string(r.Metrics.Run.Status) + " " + r.Metrics.RunErrorType)
		if len(r.Metrics.Faults) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%s\t%s\n", r.Metrics.Drill, r.Status, hops, orDash(run))
		}
		for _, o := range r.Metrics.Faults {
			// The table names the process; the verdict lines below and
			// --json keep why it was picked.
			target, _, _ := strings.Cut(o.Target, " (")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Metrics.Drill, injectedAt(o), orDash(target), recoveryText(o), r.Status, hops, orDash(run))
		}
	}
	_ = tw.Flush()
	for _, r := range results {
		fmt.Fprintf(w, "%s: %s\n", r.Metrics.Drill, r.Metrics.Verdict)
		for _, o := range r.Metrics.Faults {
			fmt.Fprintf(w, "  %s: %s\n", o.Fault, strings.Join(nonEmpty(o.Target, o.Detail, o.Error, strings.Join(o.Problems, "; ")), "; "))
		}
	}
}

func injectedAt(o workflows.FaultOutcome) string {
	if !o.Reached {
		return o.At + " (not reached)"
	}
	return fmt.Sprintf("%s (+%.0f s)", o.At, o.InjectedAfterSeconds)
}

func recoveryText(o workflows.FaultOutcome) string {
	switch {
	case !o.Reached || o.Error != "":
		return "-"
	case !o.Recovered:
		return "not recovered"
	}
	return fmt.Sprintf("%.1f s", o.RecoverySeconds)
}

// hopCounts renders each hop as name missing/duplicated.
func hopCounts(run workflows.PipelineResult) string {
	if len(run.Metrics.Hops) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(run.Metrics.Hops))
	for _, h := range run.Metrics.Hops {
		if h.Skipped {
			parts = append(parts, h.Hop+" skipped")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", h.Hop, h.Missing, h.Duplicated))
	}
	return strings.Join(parts, " ")
}

func nonEmpty(values ...string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
