package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/internal/searchattr"
)

func (a *app) setupCommand() *cobra.Command {
	var (
		checkPollers bool
		schedule     bool
		s            scheduleSpec
	)
	cmd := &cobra.Command{
		Use:   "setup [flags]",
		Short: "Prepare a Temporal namespace for flowproof: search attributes, worker check, nightly schedule",
		Long: `setup makes a Temporal namespace ready for flowproof runs, on any cluster:

 1. registers flowproof's search attributes (` + strings.Join(attributeNames(), ", ") + `),
    leaving those already there alone; this needs the permission to add search
    attributes (namespace admin), and where it is refused setup prints the
    temporal CLI commands for someone who has it;
 2. checks that a worker polls the task queue (skip with --check-pollers=false
    when setup runs before the workers start);
 3. with --schedule, creates the nightly schedule or brings it to the given
    flags (the flags of 'starter schedule create').

It can run any number of times. Exit code 0 when everything is in place, 1
when a step failed (each is reported), 2 for invalid flags.`,
		Example: `  starter setup
  TEMPORAL_ADDRESS=temporal.example:7233 TEMPORAL_NAMESPACE=flowproof starter setup --check-pollers=false
  starter setup --schedule --cron '30 1 * * *' --messages 1000000`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var opts *client.ScheduleOptions
			if schedule {
				o, err := s.options(cmd, a.taskQueue)
				if err != nil {
					return err
				}
				opts = &o
			} else if name := changedScheduleFlag(cmd.LocalNonPersistentFlags()); name != "" {
				return usagef("--%s: a schedule flag, which needs --schedule", name)
			}
			ctx := cmd.Context()
			c, ns, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			return a.setup(ctx, c, ns, checkPollers, opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&checkPollers, "check-pollers", true, "check that a worker polls the task queue")
	fs.BoolVar(&schedule, "schedule", false, "also create or update the schedule (flags as for 'starter schedule create')")
	s.register(fs)
	return cmd
}

// changedScheduleFlag names a schedule flag given on the command line, if any.
func changedScheduleFlag(fs *pflag.FlagSet) string {
	var name string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed && name == "" && f.Name != "check-pollers" && f.Name != "schedule" {
			name = f.Name
		}
	})
	return name
}

// setup runs the steps, printing one line (or paragraph) per step, and
// fails with exit code 1 when any step failed; a schedule is not made
// while the search attributes are missing, since its runs would fail.
func (a *app) setup(ctx context.Context, c client.Client, ns string, checkPollers bool, schedule *client.ScheduleOptions) error {
	var failed []string
	attrsOK := a.setupSearchAttributes(ctx, c, ns)
	if !attrsOK {
		failed = append(failed, "search attributes")
	}
	if checkPollers && !a.checkPollers(ctx, c, ns) {
		failed = append(failed, "workers")
	}
	if schedule != nil {
		switch {
		case !attrsOK:
			fmt.Fprintf(a.stdout, "schedule %s: not created, since its runs would fail without the search attributes\n", schedule.ID)
			failed = append(failed, "schedule")
		default:
			handle, did, err := upsertSchedule(ctx, c, *schedule)
			if err != nil {
				if isInvalidArgument(err) {
					return usagef("schedule %s: rejected by the server: %w", schedule.ID, err)
				}
				fmt.Fprintf(a.stdout, "schedule %s: FAILED: %v\n", schedule.ID, err)
				failed = append(failed, "schedule")
				break
			}
			fmt.Fprintf(a.stdout, "schedule %s: %s (%s %s, overlap Skip, catch-up window %s)\n",
				schedule.ID, did, schedule.Spec.CronExpressions[0], schedule.Spec.TimeZoneName, schedule.CatchupWindow)
			a.printNextRuns(ctx, handle, ns)
		}
	}
	if len(failed) > 0 {
		return exitError{code: 1, err: fmt.Errorf("setup of namespace %s failed: %s (see above)", ns, strings.Join(failed, ", "))}
	}
	fmt.Fprintf(a.stdout, "namespace %s is ready for flowproof\n", ns)
	return nil
}

// setupSearchAttributes registers the missing search attributes and
// reports; false when they are not all in place.
func (a *app) setupSearchAttributes(ctx context.Context, c client.Client, ns string) bool {
	added, err := searchattr.Register(ctx, c.OperatorService(), ns)
	if err != nil {
		fmt.Fprintf(a.stdout, "search attributes: FAILED: %s\n", explainRegisterError(err, ns))
		return false
	}
	if len(added) == 0 {
		fmt.Fprintf(a.stdout, "search attributes: %s already registered on namespace %s\n", strings.Join(attributeNames(), ", "), ns)
		return true
	}
	names := make([]string, 0, len(added))
	for _, d := range added {
		names = append(names, d.Name+" ("+d.Type+")")
	}
	fmt.Fprintf(a.stdout, "search attributes: registered %s on namespace %s\n", strings.Join(names, ", "), ns)
	return true
}

// explainRegisterError turns a refusal into what to do about it: which
// permission is missing and the commands that someone who has it runs.
func explainRegisterError(err error, ns string) string {
	var denied *serviceerror.PermissionDenied
	var unimplemented *serviceerror.Unimplemented
	if !errors.As(err, &denied) && !errors.As(err, &unimplemented) {
		return err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v\n  Registering search attributes needs the namespace admin permission (operator service AddSearchAttributes;", err)
	b.WriteString(" on Temporal Cloud, a Namespace Admin, or the namespace's settings in the Cloud UI).\n")
	b.WriteString("  Ask someone who has it to run, with the same connection settings:\n")
	for _, command := range searchattr.CreateCommands(ns, searchattr.Definitions()) {
		b.WriteString("    " + command + "\n")
	}
	b.WriteString("  then run 'starter setup' again.")
	return b.String()
}

// checkPollers reports the workers polling the task queue; false when no
// worker polls it.
func (a *app) checkPollers(ctx context.Context, c client.Client, ns string) bool {
	counts := make([]string, 0, 2)
	none := false
	for _, tq := range []struct {
		kind string
		typ  enumspb.TaskQueueType
	}{{"workflow", enumspb.TASK_QUEUE_TYPE_WORKFLOW}, {"activity", enumspb.TASK_QUEUE_TYPE_ACTIVITY}} {
		resp, err := c.DescribeTaskQueue(ctx, a.taskQueue, tq.typ)
		if err != nil {
			fmt.Fprintf(a.stdout, "workers: FAILED: describe task queue %s (%s): %v\n", a.taskQueue, tq.kind, err)
			return false
		}
		pollers := resp.GetPollers()
		none = none || len(pollers) == 0
		counts = append(counts, fmt.Sprintf("%d %s poller(s)", len(pollers), tq.kind))
	}
	if none {
		fmt.Fprintf(a.stdout, "workers: FAILED: no worker polls task queue %s on namespace %s (%s).\n"+
			"  Start a worker with 'worker -task-queue %s -temporal-namespace %s' (see docs/running.md), or pass\n"+
			"  --check-pollers=false when setup runs before the workers start.\n",
			a.taskQueue, ns, strings.Join(counts, ", "), a.taskQueue, ns)
		return false
	}
	fmt.Fprintf(a.stdout, "workers: task queue %s has %s\n", a.taskQueue, strings.Join(counts, ", "))
	return true
}

func attributeNames() []string {
	var names []string
	for _, d := range searchattr.Definitions() {
		names = append(names, d.Name)
	}
	return names
}
