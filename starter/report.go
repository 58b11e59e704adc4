package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowproof/flowproof/internal/report"
)

func (a *app) reportCommand() *cobra.Command {
	var temporalRunID, htmlFile string
	cmd := &cobra.Command{
		Use:   "report WORKFLOW_ID --html FILE",
		Short: "Write a finished run's result as one self-contained HTML file with charts",
		Args:  exactArgs(1, "one workflow id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if htmlFile == "" {
				return usagef("--html FILE is required")
			}
			ctx := cmd.Context()
			c, ns, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			run, err := describeRun(ctx, c, args[0], temporalRunID)
			if err != nil {
				return err
			}
			if run.Result == nil {
				return fmt.Errorf("run %s has no result to report (status %s%s)", run.WorkflowID, run.Status, orNothing(run.Failure))
			}
			return writeReport(htmlFile, report.Run{
				WorkflowID: run.WorkflowID, Status: run.Status,
				UIURL:  workflowLink(a.uiURL, ns, run.WorkflowID, run.TemporalRunID),
				Result: *run.Result,
			})
		},
	}
	cmd.Flags().StringVar(&htmlFile, "html", "", "the HTML file to write")
	cmd.Flags().StringVar(&temporalRunID, "temporal-run-id", "", "a specific Temporal run of the workflow id (default: the latest)")
	return cmd
}

func orNothing(failure string) string {
	if failure == "" {
		return ""
	}
	return ": " + failure
}

func writeReport(path string, run report.Run) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if err := report.Write(f, run, time.Now()); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the report %s: %w", path, err)
	}
	return nil
}
