package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/workflows"
)

const (
	defaultScheduleID = "flowproof-nightly"
	defaultCron       = "0 2 * * *"
	// Memo keys that keep the cron expression as it was written: the server
	// compiles cron into calendar specs and does not return the string.
	memoCron     = "flowproof_cron"
	memoTimezone = "flowproof_timezone"
	// pipelineWorkflowType is the registered name of workflows.PipelineWorkflow.
	pipelineWorkflowType = "PipelineWorkflow"
)

func (a *app) scheduleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Manage the nightly schedule of flowproof runs",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usagef("a schedule command is required: create, list, trigger or delete")
		},
	}
	cmd.AddCommand(a.scheduleCreateCommand(), a.scheduleListCommand(), a.scheduleTriggerCommand(), a.scheduleDeleteCommand())
	return cmd
}

// scheduleSpec is what schedule create is asked for.
type scheduleSpec struct {
	id            string
	cron          string
	timezone      string
	catchupWindow time.Duration
	input         inputFlags
	// drill, when set, schedules that DrillWorkflow on drillTaskQueue
	// instead of a PipelineWorkflow.
	drill          string
	drillTaskQueue string
}

func (a *app) scheduleCreateCommand() *cobra.Command {
	var s scheduleSpec
	cmd := &cobra.Command{
		Use:   "create [flags]",
		Short: "Create a schedule that runs PipelineWorkflow by cron (overlap policy Skip)",
		Long: `create makes a Temporal schedule that starts PipelineWorkflow at every --cron time.
A run that would start while the previous one still runs is skipped (overlap
policy Skip); after a server outage, runs missed by less than --catchup-window
are taken late, older ones are dropped. Each run's workflow id is the schedule
id plus the scheduled time, and it names its Kafka topics after that id.`,
		Example: `  starter schedule create
  starter schedule create --schedule-id flowproof-hourly --cron '0 * * * *' --messages 100000`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := s.options(cmd, a.taskQueue)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, ns, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			handle, err := c.ScheduleClient().Create(ctx, opts)
			if err != nil {
				switch {
				case errors.Is(err, temporal.ErrScheduleAlreadyRunning):
					return fmt.Errorf("schedule %q already exists: delete it first with 'starter schedule delete --schedule-id %s'", s.id, s.id)
				case isInvalidArgument(err):
					return usagef("--cron %q / --timezone %q / --catchup-window %s: rejected by the server: %w", s.cron, s.timezone, s.catchupWindow, err)
				}
				return fmt.Errorf("create schedule %q: %w", s.id, err)
			}
			fmt.Fprintf(a.stdout, "created schedule %s: %s (%s), overlap Skip, catch-up window %s\n", handle.GetID(), s.cron, s.timezone, s.catchupWindow)
			a.printNextRuns(ctx, handle, ns)
			return nil
		},
	}
	s.register(cmd.Flags())
	return cmd
}

// register defines the flags of a schedule, shared by schedule create and
// setup --schedule.
func (s *scheduleSpec) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.id, "schedule-id", defaultScheduleID, "schedule id, also the prefix of every scheduled run's workflow id")
	fs.StringVar(&s.cron, "cron", defaultCron, "when to run, as a cron expression (minute hour day-of-month month day-of-week)")
	fs.StringVar(&s.timezone, "timezone", "UTC", "IANA time zone the cron expression is read in")
	fs.DurationVar(&s.catchupWindow, "catchup-window", time.Hour, "how late a run missed during a server outage may still start")
	fs.StringVar(&s.drill, "drill", "", "schedule this drill (DrillWorkflow, local stack only) instead of a pipeline run: "+strings.Join(workflows.DrillNames(), ", "))
	fs.StringVar(&s.drillTaskQueue, "drill-task-queue", drillapi.TaskQueue, "task queue of the drill worker, with --drill")
	s.input.register(fs, false)
}

// printNextRuns prints the schedule's next run times and its UI link.
func (a *app) printNextRuns(ctx context.Context, handle client.ScheduleHandle, ns string) {
	if desc, err := handle.Describe(ctx); err == nil {
		for i, next := range desc.Info.NextActionTimes {
			if i == 3 {
				break
			}
			fmt.Fprintf(a.stdout, "next run: %s\n", next.UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(a.stdout, "ui: %s\n", scheduleLink(a.uiURL, ns, handle.GetID()))
}

// upsertSchedule creates the schedule, or brings the existing one of the
// same id to opts, and says which it did. An update keeps the schedule's
// state and recent runs; but the cron expression as written lives in the
// memo, which an update cannot change, so a new cron or time zone replaces
// the schedule (runs it started keep running).
func upsertSchedule(ctx context.Context, c client.Client, opts client.ScheduleOptions) (client.ScheduleHandle, string, error) {
	handle, err := c.ScheduleClient().Create(ctx, opts)
	if err == nil {
		return handle, "created", nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil, "", fmt.Errorf("create schedule %q: %w", opts.ID, err)
	}
	handle = c.ScheduleClient().GetHandle(ctx, opts.ID)
	desc, err := handle.Describe(ctx)
	if err != nil {
		return nil, "", scheduleError("describe", opts.ID, err)
	}
	if memoString(desc.Memo, memoCron) != opts.Memo[memoCron] || memoString(desc.Memo, memoTimezone) != opts.Memo[memoTimezone] {
		if err := handle.Delete(ctx); err != nil {
			return nil, "", scheduleError("delete", opts.ID, err)
		}
		handle, err = c.ScheduleClient().Create(ctx, opts)
		if err != nil {
			return nil, "", fmt.Errorf("create schedule %q after deleting its old version: %w", opts.ID, err)
		}
		return handle, "replaced", nil
	}
	err = handle.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		schedule := in.Description.Schedule
		schedule.Action = opts.Action
		schedule.Spec = &opts.Spec
		if schedule.Policy == nil {
			schedule.Policy = &client.SchedulePolicies{}
		}
		schedule.Policy.Overlap = opts.Overlap
		schedule.Policy.CatchupWindow = opts.CatchupWindow
		return &client.ScheduleUpdate{Schedule: &schedule}, nil
	}})
	if err != nil {
		return nil, "", scheduleError("update", opts.ID, err)
	}
	return handle, "updated", nil
}

// options validates the flags and builds the schedule.
func (s *scheduleSpec) options(cmd *cobra.Command, taskQueue string) (client.ScheduleOptions, error) {
	if strings.TrimSpace(s.id) == "" {
		return client.ScheduleOptions{}, usagef("--schedule-id: must not be empty")
	}
	if strings.TrimSpace(s.cron) == "" {
		return client.ScheduleOptions{}, usagef("--cron: must not be empty")
	}
	if _, err := time.LoadLocation(s.timezone); err != nil || s.timezone == "" || s.timezone == "Local" {
		return client.ScheduleOptions{}, usagef("--timezone %q: want an IANA time zone name such as UTC or Europe/Berlin", s.timezone)
	}
	// The server's minimum; a shorter window would drop a run after a
	// restart that takes seconds.
	if s.catchupWindow < 10*time.Second {
		return client.ScheduleOptions{}, usagef("--catchup-window: must be at least 10s, got %s", s.catchupWindow)
	}
	in, err := s.input.build(cmd.Flags(), os.Stdin)
	if err != nil {
		return client.ScheduleOptions{}, err
	}
	if in.RunID != "" {
		return client.ScheduleOptions{}, usagef("run_id %q: a schedule must not fix the flowproof run id; every scheduled run names its topics after its own workflow id", in.RunID)
	}
	if in.Topics != (workflows.TopicNames{}) {
		return client.ScheduleOptions{}, usagef("topics: a schedule must not fix topic names; every scheduled run needs its own topics")
	}
	// Each run's workflow id is the schedule id plus the scheduled time;
	// the schedule id alone stands for it in the check.
	if err := validateInput(cmd.Flags(), in, s.id); err != nil {
		return client.ScheduleOptions{}, err
	}
	action, err := s.action(in, taskQueue)
	if err != nil {
		return client.ScheduleOptions{}, err
	}
	return client.ScheduleOptions{
		ID: s.id,
		Spec: client.ScheduleSpec{
			CronExpressions: []string{s.cron},
			TimeZoneName:    s.timezone,
		},
		Action:        action,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: s.catchupWindow,
		Memo:          map[string]any{memoCron: s.cron, memoTimezone: s.timezone},
	}, nil
}

// action is what the schedule starts: a pipeline run, or with --drill a
// drill whose run uses the input.
func (s *scheduleSpec) action(in workflows.PipelineInput, taskQueue string) (*client.ScheduleWorkflowAction, error) {
	if s.drill != "" {
		if _, ok := workflows.DrillNamed(s.drill); !ok {
			return nil, usagef("--drill %q: want one of %s", s.drill, strings.Join(workflows.DrillNames(), ", "))
		}
		drill := workflows.DrillInput{Drill: s.drill, Pipeline: in, PipelineTaskQueue: taskQueue}
		return &client.ScheduleWorkflowAction{
			ID:                       s.id,
			Workflow:                 workflows.DrillWorkflow,
			Args:                     []any{drill},
			TaskQueue:                s.drillTaskQueue,
			WorkflowExecutionTimeout: drill.ExecutionTimeout(),
			StaticSummary:            "flowproof drill " + s.drill + " (schedule " + s.id + ")",
		}, nil
	}
	return &client.ScheduleWorkflowAction{
		// The server appends the scheduled time to make each run's id.
		ID:        s.id,
		Workflow:  workflows.PipelineWorkflow,
		Args:      []any{in},
		TaskQueue: taskQueue,
		// A wedged night must not make overlap Skip skip every night after it.
		WorkflowExecutionTimeout: in.WithDefaults(s.id).ExecutionTimeout(),
		StaticSummary:            staticSummary(in) + " (schedule " + s.id + ")",
		StaticDetails:            staticDetails(in, fmt.Sprintf("Started by schedule `%s` (`%s`, %s).", s.id, s.cron, s.timezone)),
	}, nil
}

// scheduleRow is one line of schedule list.
type scheduleRow struct {
	ID       string      `json:"schedule_id"`
	Cron     string      `json:"cron"`
	Timezone string      `json:"timezone"`
	Paused   bool        `json:"paused"`
	NextRuns []time.Time `json:"next_runs"`
	LastRun  string      `json:"last_run_workflow_id,omitempty"`
}

func (a *app) scheduleListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the schedules of PipelineWorkflow with their cron and next run times",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, _, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			rows, err := listSchedules(ctx, c)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.stdout, "no PipelineWorkflow schedules")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SCHEDULE\tCRON\tTIMEZONE\tSTATE\tNEXT RUNS\tLAST RUN")
			for _, r := range rows {
				state := "active"
				if r.Paused {
					state = "paused"
				}
				var next []string
				for i, t := range r.NextRuns {
					if i == 2 {
						break
					}
					next = append(next, t.UTC().Format(time.RFC3339))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Cron, r.Timezone, state, orDash(strings.Join(next, ", ")), orDash(r.LastRun))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the schedules as JSON")
	return cmd
}

// listSchedules lists the schedules whose action is PipelineWorkflow. The
// list comes from the visibility store, which trails a create or delete by
// a moment.
func listSchedules(ctx context.Context, c client.Client) ([]scheduleRow, error) {
	iter, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	rows := []scheduleRow{}
	for iter.HasNext() {
		entry, err := iter.Next()
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		if entry.WorkflowType.Name != pipelineWorkflowType {
			continue
		}
		row := scheduleRow{
			ID:       entry.ID,
			Paused:   entry.Paused,
			NextRuns: entry.NextActionTimes,
			Cron:     memoString(entry.Memo, memoCron),
			Timezone: memoString(entry.Memo, memoTimezone),
		}
		if row.Cron == "" {
			row.Cron = describeSpec(entry.Spec)
		}
		if row.Timezone == "" && entry.Spec != nil {
			row.Timezone = entry.Spec.TimeZoneName
		}
		if n := len(entry.RecentActions); n > 0 && entry.RecentActions[n-1].StartWorkflowResult != nil {
			row.LastRun = entry.RecentActions[n-1].StartWorkflowResult.WorkflowID
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// memoString reads a string memo field; a schedule made by other tools may
// not have it.
func memoString(memo *commonpb.Memo, key string) string {
	payload, ok := memo.GetFields()[key]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(payload, &s); err != nil {
		return ""
	}
	return s
}

// describeSpec renders a schedule spec without a cron memo, e.g. one made
// in the UI: its calendars in cron field order, or its intervals.
func describeSpec(spec *client.ScheduleSpec) string {
	if spec == nil {
		return "-"
	}
	var parts []string
	parts = append(parts, spec.CronExpressions...)
	for _, cal := range spec.Calendars {
		parts = append(parts, strings.Join([]string{
			ranges(cal.Minute, 0, 59), ranges(cal.Hour, 0, 23), ranges(cal.DayOfMonth, 1, 31),
			ranges(cal.Month, 1, 12), ranges(cal.DayOfWeek, 0, 6),
		}, " "))
	}
	for _, iv := range spec.Intervals {
		parts = append(parts, "every "+iv.Every.String())
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// ranges renders one calendar field in cron syntax; a field that covers
// lowest..highest is "*".
func ranges(rs []client.ScheduleRange, lowest, highest int) string {
	if len(rs) == 0 {
		return "*"
	}
	var out []string
	for _, r := range rs {
		end := max(r.End, r.Start)
		if r.Start == lowest && end == highest && r.Step <= 1 {
			return "*"
		}
		s := strconv.Itoa(r.Start)
		if end > r.Start {
			s += "-" + strconv.Itoa(end)
		}
		if r.Step > 1 {
			s += "/" + strconv.Itoa(r.Step)
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func (a *app) scheduleTriggerCommand() *cobra.Command {
	var id string
	var allowOverlap bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Run the schedule's workflow now",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, ns, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			started, err := triggerSchedule(ctx, c, id, allowOverlap, wait)
			if err != nil {
				return err
			}
			if started == nil {
				fmt.Fprintf(a.stdout, "triggered schedule %s; its run has not started within %s (see 'starter schedule list')\n", id, wait)
				return nil
			}
			fmt.Fprintf(a.stdout, "triggered schedule %s: workflow %s (temporal run %s)\nui: %s\n", id, started.WorkflowID, started.FirstExecutionRunID,
				workflowLink(a.uiURL, ns, started.WorkflowID, started.FirstExecutionRunID))
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "schedule-id", defaultScheduleID, "schedule to trigger")
	cmd.Flags().BoolVar(&allowOverlap, "allow-overlap", false, "start even if a run of the schedule is still running (the schedule's policy, Skip, would skip it)")
	cmd.Flags().DurationVar(&wait, "wait", 15*time.Second, "how long to wait for the triggered run to start")
	return cmd
}

// triggerSchedule asks the schedule for a run now and waits up to wait for
// it to start. It returns nil without error when the run has not started in
// time, and an error when the schedule skipped it for overlap.
func triggerSchedule(ctx context.Context, c client.Client, id string, allowOverlap bool, wait time.Duration) (*client.ScheduleWorkflowExecution, error) {
	handle := c.ScheduleClient().GetHandle(ctx, id)
	before, err := handle.Describe(ctx)
	if err != nil {
		return nil, scheduleError("describe", id, err)
	}
	overlap := enumspb.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED // the schedule's own
	if allowOverlap {
		overlap = enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
	}
	if err := handle.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: overlap}); err != nil {
		return nil, scheduleError("trigger", id, err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		after, err := handle.Describe(ctx)
		if err != nil {
			return nil, scheduleError("describe", id, err)
		}
		if after.Info.NumActions > before.Info.NumActions {
			recent := after.Info.RecentActions
			if n := len(recent); n > 0 && recent[n-1].StartWorkflowResult != nil {
				return recent[n-1].StartWorkflowResult, nil
			}
		}
		if after.Info.NumActionsSkippedOverlap > before.Info.NumActionsSkippedOverlap {
			return nil, fmt.Errorf("schedule %s skipped the triggered run: a previous run is still running and the overlap policy is Skip (use --allow-overlap to run anyway)", id)
		}
	}
	return nil, nil
}

func (a *app) scheduleDeleteCommand() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete the schedule (runs it already started keep running)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, _, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.ScheduleClient().GetHandle(ctx, id).Delete(ctx); err != nil {
				return scheduleError("delete", id, err)
			}
			fmt.Fprintf(a.stdout, "deleted schedule %s\n", id)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "schedule-id", defaultScheduleID, "schedule to delete")
	return cmd
}

func scheduleError(op, id string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return fmt.Errorf("%s schedule %q: no such schedule (see 'starter schedule list')", op, id)
	}
	return fmt.Errorf("%s schedule %q: %w", op, id, err)
}

func isInvalidArgument(err error) bool {
	var invalid *serviceerror.InvalidArgument
	return errors.As(err, &invalid)
}
