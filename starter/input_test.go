package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/workflows"
)

// buildInput parses args as the start command's flags and builds the input.
func buildInput(t *testing.T, args ...string) (workflows.PipelineInput, error) {
	t.Helper()
	var f inputFlags
	cmd := &cobra.Command{Use: "test"}
	f.register(cmd.Flags(), true)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return f.build(cmd.Flags(), strings.NewReader(""))
}

func TestNoFlagsSendsEmptyInput(t *testing.T) {
	in, err := buildInput(t)
	if err != nil {
		t.Fatal(err)
	}
	// A zero input lets the workflow apply every default, exactly as the
	// UI's empty form or `temporal workflow start --input '{}'` does.
	if !reflect.DeepEqual(in, workflows.PipelineInput{}) {
		t.Errorf("input = %+v, want the zero input", in)
	}
}

func TestFlagsMapToInputFields(t *testing.T) {
	in, err := buildInput(t,
		"--messages", "10000", "--queues", "50", "--partitions", "12", "--payload-bytes", "64",
		"--chunk-size", "2000", "--chunk-concurrency", "3", "--batch-size", "250", "--token-renew-every", "1000",
		"--rate", "2500.5", "--rate-per-queue", "80", "--lag-threshold", "5000", "--flink-parallelism", "4",
		"--lag-threshold-seconds", "7.5", "--lag-resume-seconds", "3",
		"--verify-idle-seconds", "30", "--keep-topics", "--run-id", "ci-42",
		"--replication-factor", "2", "--min-insync-replicas", "1", "--topic-config", "retention.ms=3600000,compression.type=lz4", "--topic-config", "cleanup.policy=delete",
		"--max-duration-seconds", "600", "--min-throughput-msgs-per-sec", "2000", "--max-p99-latency-seconds", "15",
		"--max-p999-latency-seconds", "30", "--max-lag-messages", "500000", "--max-backpressure-hold-seconds", "60",
		"--max-http-retries", "100")
	if err != nil {
		t.Fatal(err)
	}
	want := workflows.PipelineInput{
		RunID: "ci-42", Messages: 10000, LogicalQueues: 50, Partitions: 12, PayloadBytes: 64,
		ChunkSize: 2000, ChunkConcurrency: 3, BatchSize: 250, TokenRenewEvery: 1000,
		RatePerSecond: 2500.5, RatePerQueue: 80, LagThreshold: 5000, FlinkParallelism: 4,
		LagThresholdSeconds: 7.5, LagResumeSeconds: 3,
		VerifyIdleSeconds: 30, KeepTopics: true,
		ReplicationFactor: 2, MinInsyncReplicas: 1,
		TopicConfigs: map[string]string{"retention.ms": "3600000", "compression.type": "lz4", "cleanup.policy": "delete"},
		Thresholds: workflows.Thresholds{
			MaxDurationSeconds: 600, MinThroughputMsgsPerSec: 2000, MaxP99LatencySeconds: 15, MaxP999LatencySeconds: 30,
			MaxLagMessages: 500_000, MaxBackpressureHoldSeconds: 60, MaxHTTPRetries: 100,
		},
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("input = %+v\nwant    %+v", in, want)
	}
}

func TestFlagsOverrideJSONInput(t *testing.T) {
	in, err := buildInput(t, "--input", `{"messages":500,"partitions":6,"keep_topics":true,"topics":{"final":"my.final"}}`, "--messages", "700", "--keep-topics=false")
	if err != nil {
		t.Fatal(err)
	}
	if in.Messages != 700 || in.Partitions != 6 || in.KeepTopics || in.Topics.Final != "my.final" {
		t.Errorf("input = %+v: want messages from the flag, partitions and topics from JSON, keep_topics turned off", in)
	}
}

// TestEveryInputFieldHasAFlag keeps the flags in step with PipelineInput:
// a field added to the input needs a flag or a reason to be JSON only.
func TestEveryInputFieldHasAFlag(t *testing.T) {
	flagged := map[string]string{}
	names := map[string]bool{}
	for _, f := range inputFlagTable {
		if _, dup := flagged[f.field]; dup {
			t.Errorf("field %s has two flags", f.field)
		}
		if names[f.name] {
			t.Errorf("flag --%s is listed twice", f.name)
		}
		flagged[f.field], names[f.name] = f.name, true
	}
	fields := map[string]bool{}
	// A struct field that is not JSON only (thresholds) has a flag for
	// each of its own fields.
	var check func(typ reflect.Type, prefix string)
	check = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			if !typ.Field(i).IsExported() {
				continue
			}
			field := prefix + jsonName(typ.Field(i))
			fields[field] = true
			_, hasFlag := flagged[field]
			_, jsonOnly := jsonOnlyFields[field]
			switch {
			case hasFlag && jsonOnly:
				t.Errorf("PipelineInput field %s has a flag and is listed as JSON only", field)
			case !hasFlag && !jsonOnly && typ.Field(i).Type.Kind() == reflect.Struct:
				check(typ.Field(i).Type, field+".")
			case !hasFlag && !jsonOnly:
				t.Errorf("PipelineInput field %s has no flag: add it to inputFlagTable, or to jsonOnlyFields with the reason", field)
			}
		}
	}
	check(reflect.TypeFor[workflows.PipelineInput](), "")
	for field := range flagged {
		if !fields[field] {
			t.Errorf("inputFlagTable names %s, which PipelineInput does not have", field)
		}
	}
	for field := range jsonOnlyFields {
		if !fields[field] {
			t.Errorf("jsonOnlyFields names %s, which PipelineInput does not have", field)
		}
	}
}

// TestEveryFlagSetsItsField sets each flag alone and expects exactly its
// field to change.
func TestEveryFlagSetsItsField(t *testing.T) {
	for _, f := range inputFlagTable {
		index := inputFieldIndex(f.field)
		arg := "--" + f.name + "=7"
		switch reflect.TypeFor[workflows.PipelineInput]().FieldByIndex(index).Type.Kind() {
		case reflect.Bool:
			arg = "--" + f.name
		case reflect.String:
			arg = "--" + f.name + "=ci-7"
		case reflect.Map:
			arg = "--" + f.name + "=retention.ms=7"
		}
		in, err := buildInput(t, arg)
		if err != nil {
			t.Errorf("%s: %v", arg, err)
			continue
		}
		got := reflect.ValueOf(in)
		for i := range got.NumField() {
			if changed := !got.Field(i).IsZero(); changed != (i == index[0]) {
				t.Errorf("%s: field %s changed=%v", arg, got.Type().Field(i).Name, changed)
			}
		}
	}
}

func TestFlagHelpShowsTheWorkflowDefaults(t *testing.T) {
	var f inputFlags
	cmd := &cobra.Command{Use: "test"}
	f.register(cmd.Flags(), true)
	for name, want := range map[string]string{
		"messages":                "(default 1,000,000)",
		"rate":                    "(default 50,000)",
		"lag-resume":              "(default half of --lag-threshold)",
		"run-id":                  "(default the workflow id)",
		"max-p99-latency-seconds": "(default not checked)",
	} {
		if usage := cmd.Flags().Lookup(name).Usage; !strings.HasSuffix(usage, want) {
			t.Errorf("--%s help %q does not end with %q", name, usage, want)
		}
	}
}

func TestValidateInputNamesTheFlagOrTheField(t *testing.T) {
	var f inputFlags
	cmd := &cobra.Command{Use: "test"}
	f.register(cmd.Flags(), true)
	if err := cmd.Flags().Parse([]string{"--batch-size", "5000", "--input", `{"lag_threshold": 10, "lag_resume": 20}`}); err != nil {
		t.Fatal(err)
	}
	in, err := f.build(cmd.Flags(), strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	err = validateInput(cmd.Flags(), in, "wf")
	var usage usageError
	if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), "--batch-size: invalid input: batch_size 5000: ") {
		t.Errorf("error %v: want a usage error naming --batch-size and the rule", err)
	}
	in.BatchSize = 0
	if err := validateInput(cmd.Flags(), in, "wf"); err == nil || !strings.HasPrefix(err.Error(), "invalid input: lag_resume 20: ") {
		t.Errorf("error %v: want the JSON field named", err)
	}
	if err := validateInput(cmd.Flags(), workflows.PipelineInput{}, "wf"); err != nil {
		t.Errorf("the empty input: %v", err)
	}
	negative := workflows.PipelineInput{Thresholds: workflows.Thresholds{MaxLagMessages: -5}}
	if err := validateInput(cmd.Flags(), negative, "wf"); err == nil || !strings.HasPrefix(err.Error(), "invalid input: thresholds.max_lag_messages -5: ") {
		t.Errorf("error %v: want the threshold's JSON path named", err)
	}
}

func TestInputFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(path, []byte(`{"messages": 1234, "batch_size": 10}`), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := buildInput(t, "--input-file", path)
	if err != nil {
		t.Fatal(err)
	}
	if in.Messages != 1234 || in.BatchSize != 10 {
		t.Errorf("input = %+v", in)
	}
}

func TestInvalidInputIsAUsageErrorNamingTheField(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--messages", "0"}, "--messages"},
		{[]string{"--queues", "-5"}, "--queues"},
		{[]string{"--rate", "-1"}, "--rate"},
		{[]string{"--input", `{"mesages": 10}`}, `unknown field "mesages"`},
		{[]string{"--input", `{"messages": "ten"}`}, "messages"},
		{[]string{"--input", `{} {}`}, "more than one value"},
		{[]string{"--input", ``}, ""}, // empty --input is the same as none
		{[]string{"--input", `{}`, "--input-file", "x.json"}, "not both"},
		{[]string{"--input-file", "/does/not/exist.json"}, "--input-file"},
	}
	for _, tc := range cases {
		_, err := buildInput(t, tc.args...)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.args, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%v: accepted", tc.args)
			continue
		}
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("%v: %v is not a usage error", tc.args, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q does not mention %q", tc.args, err, tc.want)
		}
	}
}

func TestSummaryAndDetails(t *testing.T) {
	if got := staticSummary(workflows.PipelineInput{}); got != "flowproof run: 1,000,000 messages" {
		t.Errorf("default summary = %q", got)
	}
	if got := staticSummary(workflows.PipelineInput{Messages: 12345}); got != "flowproof run: 12,345 messages" {
		t.Errorf("summary = %q", got)
	}
	details := staticDetails(workflows.PipelineInput{Partitions: 12, RatePerSecond: 1500.5}, "Started by `test`.")
	for _, want := range []string{"- messages: 1,000,000 (default)", "- partitions of the raw topic: 12\n", "- production rate cap: 1500.5 messages/s", "Started by `test`."} {
		if !strings.Contains(details, want) {
			t.Errorf("details lack %q:\n%s", want, details)
		}
	}
}

func TestWorkflowLink(t *testing.T) {
	got := workflowLink("http://127.0.0.1:18233/", "default", "flowproof-20261127T020000Z", "0193-abcd")
	if want := "http://127.0.0.1:18233/namespaces/default/workflows/flowproof-20261127T020000Z/0193-abcd/history"; got != want {
		t.Errorf("link = %s\nwant   %s", got, want)
	}
	// Ids are free text; a slash or space must not break the path.
	got = workflowLink("https://cloud.example.test/ui", "prod ns", "nightly/run 1", "r")
	if want := "https://cloud.example.test/ui/namespaces/prod%20ns/workflows/nightly%2Frun%201/r/history"; got != want {
		t.Errorf("escaped link = %s\nwant           %s", got, want)
	}
	if got, want := scheduleLink("http://127.0.0.1:18233", "default", "flowproof-nightly"), "http://127.0.0.1:18233/namespaces/default/schedules/flowproof-nightly"; got != want {
		t.Errorf("schedule link = %s, want %s", got, want)
	}
}

func TestDefaultWorkflowID(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 0, 5, 0, time.FixedZone("CET", 3600))
	if got := defaultWorkflowID(at); got != "flowproof-20261127T010005Z" {
		t.Errorf("id = %s", got)
	}
}

func TestScheduleOptions(t *testing.T) {
	s := scheduleSpec{}
	cmd := &cobra.Command{Use: "create"}
	cmd.Flags().StringVar(&s.id, "schedule-id", defaultScheduleID, "")
	cmd.Flags().StringVar(&s.cron, "cron", defaultCron, "")
	cmd.Flags().StringVar(&s.timezone, "timezone", "UTC", "")
	cmd.Flags().DurationVar(&s.catchupWindow, "catchup-window", time.Hour, "")
	s.input.register(cmd.Flags(), false)
	if err := cmd.Flags().Parse([]string{"--messages", "5000", "--timezone", "Europe/Berlin"}); err != nil {
		t.Fatal(err)
	}
	opts, err := s.options(cmd, "flowproof")
	if err != nil {
		t.Fatal(err)
	}
	if opts.ID != "flowproof-nightly" || opts.Spec.CronExpressions[0] != "0 2 * * *" || opts.Spec.TimeZoneName != "Europe/Berlin" {
		t.Errorf("spec = %+v", opts.Spec)
	}
	if opts.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP || opts.CatchupWindow != time.Hour {
		t.Errorf("policy = %v, catch-up %s", opts.Overlap, opts.CatchupWindow)
	}
	action := opts.Action.(*client.ScheduleWorkflowAction)
	if action.TaskQueue != "flowproof" || action.ID != "flowproof-nightly" {
		t.Errorf("action = %+v", action)
	}
	if in := action.Args[0].(workflows.PipelineInput); in.Messages != 5000 {
		t.Errorf("scheduled input = %+v", in)
	}
	if action.StaticSummary != "flowproof run: 5,000 messages (schedule flowproof-nightly)" {
		t.Errorf("summary = %q", action.StaticSummary)
	}
	if opts.Memo[memoCron] != "0 2 * * *" {
		t.Errorf("memo = %v", opts.Memo)
	}
}

func TestScheduleRejectsFixedRunIDAndBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--input", `{"run_id":"fixed"}`}, "run_id"},
		{[]string{"--input", `{"topics":{"raw":"x"}}`}, "topics"},
		{[]string{"--timezone", "Mars/Olympus"}, "--timezone"},
		{[]string{"--catchup-window", "1s"}, "--catchup-window"},
		{[]string{"--cron", " "}, "--cron"},
	} {
		s := scheduleSpec{}
		cmd := &cobra.Command{Use: "create"}
		cmd.Flags().StringVar(&s.id, "schedule-id", defaultScheduleID, "")
		cmd.Flags().StringVar(&s.cron, "cron", defaultCron, "")
		cmd.Flags().StringVar(&s.timezone, "timezone", "UTC", "")
		cmd.Flags().DurationVar(&s.catchupWindow, "catchup-window", time.Hour, "")
		s.input.register(cmd.Flags(), false)
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		_, err := s.options(cmd, "flowproof")
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want a usage error about %s", tc.args, err, tc.want)
		}
	}
}

func TestDescribeSpecWithoutMemo(t *testing.T) {
	// The calendar the server compiles "0 2 * * *" into.
	spec := &client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{{
		Second:     []client.ScheduleRange{{Step: 1}},
		Minute:     []client.ScheduleRange{{Step: 1}},
		Hour:       []client.ScheduleRange{{Start: 2, End: 2, Step: 1}},
		DayOfMonth: []client.ScheduleRange{{Start: 1, End: 31, Step: 1}},
		Month:      []client.ScheduleRange{{Start: 1, End: 12, Step: 3}},
		DayOfWeek:  []client.ScheduleRange{{End: 6, Step: 1}},
	}}}
	if got := describeSpec(spec); got != "0 2 * 1-12/3 *" {
		t.Errorf("describeSpec = %q", got)
	}
}

// TestCommandLineErrorsExitWithTwo runs the real command tree; every case
// fails before any connection is made, so no server is needed.
func TestCommandLineErrorsExitWithTwo(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"start", "--no-such-flag"},
		{"start", "--messages", "many"},
		{"start", "--messages", "-1"},
		{"start", "extra-arg"},
		{"run", "--input", `{"nope":1}`},
		{"run", "--progress-every", "0s"},
		{"status"},
		{"status", "a", "b"},
		{"schedule"},
		{"schedule", "pause"},
		{"schedule", "create", "--timezone", "Nowhere/Special"},
		{"start", "--batch-size", "5000"},
		{"schedule", "create", "--input", `{"lag_resume": 300000}`},
	} {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code := execute(ctx, args, &stdout, &stderr)
		cancel()
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr: %s)", args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "starter:") || !strings.Contains(stderr.String(), "--help") {
			t.Errorf("%q: stderr lacks the error and the help hint: %q", args, stderr.String())
		}
	}
}
