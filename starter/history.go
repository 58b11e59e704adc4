package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowproof/flowproof/internal/humanfmt"
	"github.com/flowproof/flowproof/internal/regression"
	"github.com/flowproof/flowproof/workflows"
)

// historyFlags are the flags of `starter history`.
type historyFlags struct {
	filter runFilter
	limit  int
	json   bool
	store  storeFlags
}

// historyRow is one line of `starter history`, and of its --json. A figure
// is nil (null in the JSON, a dash in the table) when the run never
// measured it: it has no result yet, or it ended before the stage that
// reports the figure. A zero would read as measured.
type historyRow struct {
	pastRun
	Verified          *int64   `json:"verified"`
	DurationSeconds   *float64 `json:"duration_s"`
	EndToEndPerSecond *float64 `json:"end_to_end_per_second"`
	P99Millis         *float64 `json:"p99_ms"`
	MaxLag            *int64   `json:"max_lag"`
	HeldSeconds       *float64 `json:"held_s"`
	Failure           string   `json:"failure,omitempty"`
}

func (a *app) historyCommand() *cobra.Command {
	f := &historyFlags{}
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List past runs with their key figures",
		Long: `history lists the PipelineWorkflow runs of the task queue, newest first, with their
status, messages verified, duration, end-to-end throughput, p99 latency, largest
consumer lag and backpressure hold time. It asks Temporal's visibility, filtered by
flowproof's search attributes, and adds the runs that the namespace's retention has
deleted from the results store (the Kafka topic every run's result is kept in; see
'starter compare' and docs/running.md).`,
		Example: `  starter history
  starter history --schedule flowproof-nightly --status Succeeded --limit 30
  starter history --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.limit < 1 {
				return usagef("--limit %d: must be at least 1", f.limit)
			}
			switch f.filter.Status {
			case "", string(workflows.StatusRunning), string(workflows.StatusSucceeded), string(workflows.StatusFailed), string(workflows.StatusCanceled):
			default:
				return usagef("--status %q: want Running, Succeeded, Failed or Canceled", f.filter.Status)
			}
			ctx := cmd.Context()
			c, ns, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			f.filter.TaskQueue = a.taskQueue
			runs, err := a.findRuns(ctx, c, ns, &f.store, f.filter, f.limit)
			if err != nil {
				return err
			}
			rows := make([]historyRow, 0, len(runs))
			for _, r := range runs {
				rows = append(rows, newHistoryRow(r))
			}
			if f.json {
				return writeJSON(a.stdout, rows)
			}
			printHistory(a.stdout, rows)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.filter.ScheduleID, "schedule", "", "only the runs this schedule started")
	fs.StringVar(&f.filter.Status, "status", "", "only runs with this status: Running, Succeeded, Failed or Canceled")
	fs.StringVar(&f.filter.InputHash, "input", "", "only runs of this input (FlowproofInputHash, the INPUT column)")
	fs.IntVar(&f.limit, "limit", 20, "at most this many runs")
	fs.BoolVar(&f.json, "json", false, "print the runs as JSON")
	f.store.register(fs)
	return cmd
}

func newHistoryRow(r pastRun) historyRow {
	row := historyRow{pastRun: r}
	if r.Result == nil {
		return row
	}
	m := r.Result.Metrics
	row.DurationSeconds = ptr(float64(m.TotalMillis) / 1000)
	row.Failure = m.FailureMessage
	shown := m.ShownFigures()
	if shown.Verification {
		row.Verified, row.EndToEndPerSecond, row.P99Millis = ptr(m.Verified), ptr(m.EndToEndPerSecond), ptr(m.Latency.P99)
	}
	if shown.Production {
		row.MaxLag, row.HeldSeconds = ptr(m.Backpressure.MaxLag), ptr(float64(m.Backpressure.HeldMillis)/1000)
	}
	return row
}

func ptr[T any](v T) *T { return &v }

// formatted is f of the figure, or a dash for a figure not measured.
func formatted[T any](v *T, f func(T) string) string {
	if v == nil {
		return "-"
	}
	return f(*v)
}

func seconds(s float64) time.Duration { return time.Duration(s*1000) * time.Millisecond }

func printHistory(w io.Writer, rows []historyRow) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no runs")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED (UTC)\tWORKFLOW\tSTATUS\tVERIFIED\tDURATION\tE2E MSG/S\tP99 MS\tMAX LAG\tHELD\tINPUT\tSOURCE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Started.UTC().Format("2006-01-02 15:04:05"), r.WorkflowID, r.Status,
			formatted(r.Verified, humanfmt.Commas),
			formatted(r.DurationSeconds, func(s float64) string { return seconds(s).Round(time.Second).String() }),
			formatted(r.EndToEndPerSecond, regression.FormatValue),
			formatted(r.P99Millis, regression.FormatValue),
			formatted(r.MaxLag, humanfmt.Commas),
			formatted(r.HeldSeconds, func(s float64) string { return seconds(s).Round(100 * time.Millisecond).String() }),
			orDash(r.InputHash), r.Source)
	}
	_ = tw.Flush()
}
