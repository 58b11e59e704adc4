package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
)

// cleanupFlags are the flags of `starter cleanup`.
type cleanupFlags struct {
	kafkaBrokers []string
	flinkURL     string
	dryRun       bool
	includeKept  bool
	runIDPrefix  string
	json         bool
}

// cleanupReport is what `starter cleanup --json` prints: each leftover,
// and whether it was removed.
type cleanupReport struct {
	DryRun    bool              `json:"dry_run"`
	Leftovers []cleanedLeftover `json:"leftovers"`
	Errors    []string          `json:"errors,omitempty"`
}

type cleanedLeftover struct {
	kafkaadmin.Leftover
	Removed bool   `json:"removed"`
	Error   string `json:"error,omitempty"`
}

func (a *app) cleanupCommand() *cobra.Command {
	local := localstack.FromEnv()
	f := &cleanupFlags{}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove what finished runs left behind (topics, consumer groups, Flink jobs)",
		Long: `cleanup finds the runs whose ledger topic (flowproof.<run>.ledger) names a workflow
of this namespace that no longer runs (terminated, failed without cleaning up, reset,
or forgotten by Temporal), and removes the topics and consumer groups the ledger
records as the run's, and the run's Flink jobs. A run still running, a run that kept
its topics on purpose (keep_topics; see --include-kept), and topics without an owner
record are never touched. --dry-run only lists.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.cleanup(cmd, f) },
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&f.kafkaBrokers, "kafka-brokers", local.KafkaBrokers, "Kafka bootstrap brokers ($"+localstack.EnvKafkaBrokers+")")
	fs.StringVar(&f.flinkURL, "flink-url", local.FlinkURL, "Flink JobManager REST URL, to cancel the runs' jobs ($"+localstack.EnvFlinkURL+")")
	fs.BoolVar(&f.dryRun, "dry-run", false, "list the leftovers, remove nothing")
	fs.BoolVar(&f.includeKept, "include-kept", false, "also remove runs that kept their topics on purpose (keep_topics)")
	fs.StringVar(&f.runIDPrefix, "run-id-prefix", "", "only runs whose run id starts with this")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	return cmd
}

func (a *app) cleanup(cmd *cobra.Command, f *cleanupFlags) error {
	ctx := cmd.Context()
	c, namespace, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	kafka, err := kafkaeos.Dial(f.kafkaBrokers)
	if err != nil {
		return err
	}
	defer kafka.Close()
	var jobs *flinksql.JobManager
	if f.flinkURL != "" {
		if jobs, err = flinksql.NewJobManager(f.flinkURL, flinksql.Options{}); err != nil {
			return usagef("--flink-url: %v", err)
		}
	}
	sweeper := kafkaadmin.NewSweeper(kafka, jobs, namespace, kafkaadmin.WorkflowRunning(c))
	sweeper.IncludeKept = f.includeKept

	leftovers, findErr := sweeper.Find(ctx)
	report := cleanupReport{DryRun: f.dryRun, Leftovers: []cleanedLeftover{}}
	if findErr != nil {
		report.Errors = append(report.Errors, findErr.Error())
	}
	logger := log.NewStructuredLogger(slog.New(slog.DiscardHandler))
	var removeErrs []error
	for _, l := range leftovers {
		if !strings.HasPrefix(l.RunID, f.runIDPrefix) {
			continue
		}
		cleaned := cleanedLeftover{Leftover: l}
		if !f.dryRun {
			if err := sweeper.Remove(ctx, l, logger); err != nil {
				cleaned.Error = err.Error()
				removeErrs = append(removeErrs, err)
			} else {
				cleaned.Removed = true
			}
		}
		report.Leftovers = append(report.Leftovers, cleaned)
	}
	if f.json {
		if err := writeJSON(a.stdout, report); err != nil {
			return err
		}
	} else {
		report.print(a.stdout)
	}
	if err := errors.Join(findErr, errors.Join(removeErrs...)); err != nil {
		return exitError{code: 1, err: fmt.Errorf("cleanup incomplete: %w", err)}
	}
	return nil
}

func (r cleanupReport) print(w io.Writer) {
	if len(r.Leftovers) == 0 {
		fmt.Fprintln(w, "no leftovers of finished runs")
	}
	for _, l := range r.Leftovers {
		verb := "removed"
		switch {
		case r.DryRun:
			verb = "would remove"
		case !l.Removed:
			verb = "failed to remove"
		}
		fmt.Fprintf(w, "%s run %s (workflow %s): topics %s; groups %s; Flink jobs named %s\n", verb, l.RunID, l.Owner.WorkflowID,
			listOrNone(l.Topics), listOrNone(l.Groups), listOrNone(l.FlinkJobs))
		if l.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", l.Error)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "not judged: %s\n", e)
	}
}

func listOrNone(values []string) string {
	if len(values) == 0 {
		return "none"
	}
	return strings.Join(values, ", ")
}
