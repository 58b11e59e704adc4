package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/internal/regression"
	"github.com/flowproof/flowproof/workflows"
)

// compareFlags are the flags of `starter compare`.
type compareFlags struct {
	baseline   int
	tolerances map[string]string
	junit      string
	json       bool
	store      storeFlags
}

// maxBaselineSearch bounds the successful runs of an input read to find
// those older than the compared run.
const maxBaselineSearch = 200

func (a *app) compareCommand() *cobra.Command {
	f := &compareFlags{}
	cmd := &cobra.Command{
		Use:   "compare RUN",
		Short: "Judge a run against the median of earlier successful runs of the same input",
		Long: `compare judges the run RUN (its workflow id) against a baseline: the median of each
figure over the last --baseline successful runs of the same input (FlowproofInputHash:
the input with its defaults, less the run id, topic names, keep_topics, timeout and
thresholds) that started before it, on the run's task queue. Each figure (duration,
end-to-end throughput, p50 and p99 latency, largest lag, hold time) may be worse than
the baseline by its tolerance (default 20%, latency 25%, lag and holds 50%) or by a
small absolute slack, whichever is larger. The run's thresholds are reported too.

Runs come from Temporal's visibility and, past the namespace's retention, from the
results store; compare works from the store alone.

Exit code 0 when the run succeeded, kept its thresholds and no figure regressed
(also when there is no baseline yet), 1 otherwise, 2 for invalid usage.`,
		Example: `  starter compare flowproof-20261202T020000Z
  starter compare nightly-2026-12-02T02:00:00Z --baseline 7 --tolerance throughput=30%,p99=50% --junit compare.xml`,
		Args: exactArgs(1, "a run's workflow id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.baseline < 1 {
				return usagef("--baseline %d: must be at least 1", f.baseline)
			}
			tol, err := regression.ParseTolerances(f.tolerances)
			if err != nil {
				return usagef("--tolerance: %v", err)
			}
			ctx := cmd.Context()
			c, ns, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			report, err := a.compare(ctx, c, ns, f, args[0], tol)
			if err != nil {
				return err
			}
			return a.writeReport(report, f)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&f.baseline, "baseline", 5, "the baseline is the median of this many earlier successful runs of the same input")
	fs.StringToStringVar(&f.tolerances, "tolerance", nil, "tolerances by figure (duration, throughput, p50, p99, max_lag, held, or all), e.g. throughput=30%,p99=50%")
	fs.StringVar(&f.junit, "junit", "", "also write the verdict as JUnit XML to this file (one test case per figure and threshold)")
	fs.BoolVar(&f.json, "json", false, "print the verdict as JSON")
	f.store.register(fs)
	return cmd
}

func (a *app) compare(ctx context.Context, c client.Client, ns string, f *compareFlags, workflowID string, tol regression.Tolerances) (regression.Report, error) {
	run, err := a.findRun(ctx, c, ns, &f.store, workflowID)
	if err != nil {
		return regression.Report{}, err
	}
	if run.Result == nil {
		return regression.Report{}, exitError{code: 1, err: fmt.Errorf("run %s has no result to compare (status %s)", workflowID, run.Status)}
	}
	if run.InputHash == "" {
		return regression.Report{}, exitError{code: 1, err: fmt.Errorf("run %s has no input hash: it ran on a worker older than run history", workflowID)}
	}
	candidates, err := a.findRuns(ctx, c, ns, &f.store, runFilter{
		TaskQueue: run.TaskQueue, Status: string(workflows.StatusSucceeded), InputHash: run.InputHash,
	}, maxBaselineSearch)
	if err != nil {
		return regression.Report{}, err
	}
	var ids []string
	var baseline []workflows.PipelineResult
	for _, b := range candidates { // newest first
		if len(ids) == f.baseline {
			break
		}
		if b.TemporalRunID == run.TemporalRunID || !b.Started.Before(run.Started) || b.Result == nil {
			continue
		}
		ids = append(ids, b.WorkflowID)
		baseline = append(baseline, *b.Result)
	}
	return regression.Judge(run.WorkflowID, *run.Result, run.InputHash, ids, baseline, tol), nil
}

// findRun finds the newest run of workflowID in visibility, else in the
// store.
func (a *app) findRun(ctx context.Context, c client.Client, ns string, store *storeFlags, workflowID string) (pastRun, error) {
	if store.visibility {
		runs, err := listVisibility(ctx, c, ns, runFilter{WorkflowID: workflowID}, 1)
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			return pastRun{}, err
		}
		if len(runs) == 1 {
			return runs[0], nil
		}
	}
	stored, err := store.readStore(ctx, runFilter{})
	if err != nil {
		return pastRun{}, fmt.Errorf("run %s is not in visibility, and the results store could not be read: %w", workflowID, err)
	}
	var found *pastRun
	for i, r := range stored { // oldest first: the last match is the newest
		if r.WorkflowID == workflowID || r.RunID == workflowID {
			found = &stored[i]
		}
	}
	if found == nil {
		return pastRun{}, exitError{code: 1, err: fmt.Errorf("run %s: %w in visibility nor in the results store", workflowID, errNoSuchRun)}
	}
	return *found, nil
}

func (a *app) writeReport(r regression.Report, f *compareFlags) error {
	if f.junit != "" {
		file, err := os.Create(f.junit)
		if err != nil {
			return fmt.Errorf("--junit: %w", err)
		}
		err = regression.WriteJUnit(file, []regression.Report{r})
		if closeErr := file.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			return fmt.Errorf("--junit %s: %w", f.junit, err)
		}
	}
	if f.json {
		if err := writeJSON(a.stdout, r); err != nil {
			return err
		}
	} else {
		printReport(a.stdout, r)
	}
	if !r.Passed {
		return exitError{code: 1}
	}
	return nil
}

func printReport(w io.Writer, r regression.Report) {
	fmt.Fprintf(w, "run %s: %s, input %s\n", r.RunID, r.Status, r.InputHash)
	if len(r.BaselineRuns) == 0 {
		fmt.Fprintln(w, "baseline: none (no earlier successful run of this input on this task queue): nothing to compare")
	} else {
		fmt.Fprintf(w, "baseline: median of %d run(s): %v\n", len(r.BaselineRuns), r.BaselineRuns)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nFIGURE\tRUN\tBASELINE\tCHANGE\tLIMIT\tTOLERANCE\tVERDICT")
	for _, c := range r.Figures {
		if c.Verdict == regression.NoData {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%.0f%%\t%s\n", c.What, c.Tolerance*100, c.Verdict)
			continue
		}
		op := "<="
		if c.HigherIsBetter {
			op = ">="
		}
		verdict := c.Verdict
		if verdict == regression.Regressed {
			verdict = "REGRESSED"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s %s\t%+.1f%%\t%s %s %s\t%.0f%% (slack %s %s)\t%s\n", c.What, regression.FormatValue(c.Run), c.Unit,
			regression.FormatValue(c.Baseline), c.Unit, c.Change*100, op, regression.FormatValue(c.Limit), c.Unit, c.Tolerance*100,
			regression.FormatValue(c.Slack), c.Unit, verdict)
	}
	_ = tw.Flush()
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(w)
		printThresholds(w, r.Thresholds)
	}
	if r.Passed {
		fmt.Fprintln(w, "\nverdict: PASS")
		return
	}
	var why []string
	if r.Status != string(workflows.StatusSucceeded) {
		why = append(why, "the run ended "+r.Status)
	}
	if len(r.Regressed) > 0 {
		why = append(why, "regressed: "+strings.Join(r.Regressed, ", "))
	}
	if len(r.Broken) > 0 {
		why = append(why, "thresholds broken: "+strings.Join(r.Broken, ", "))
	}
	fmt.Fprintf(w, "\nverdict: FAIL: %s\n", strings.Join(why, "; "))
}
