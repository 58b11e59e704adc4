package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/humanfmt"
	"github.com/flowproof/flowproof/workflows"
)

// inputFlag is one PipelineInput field as a command-line flag. The flag's
// type is the field's, and its help ends with the workflow's default.
type inputFlag struct {
	// field is the field's JSON name; a field of a nested struct is named
	// by its path, as in thresholds.max_http_retries.
	field string
	name  string
	usage string
	// defaultText replaces the default read from PipelineInput.WithDefaults
	// when that depends on something else.
	defaultText string
}

// inputFlagTable lists every PipelineInput field that has a flag;
// TestEveryInputFieldHasAFlag fails for a field in neither this table nor
// jsonOnlyFields, so a new knob cannot be left out of the command line.
var inputFlagTable = []inputFlag{
	{field: "run_id", name: "run-id", usage: "flowproof run id, which names the run's topics and groups", defaultText: "the workflow id"},
	{field: "messages", name: "messages", usage: "messages to send through the pipeline"},
	{field: "logical_queues", name: "queues", usage: "logical queues the messages are spread over"},
	{field: "partitions", name: "partitions", usage: "partitions of the raw topic"},
	{field: "derived_partitions", name: "derived-partitions", usage: "partitions of the enriched, responses, final and accepted topics", defaultText: "min(--partitions, 12)"},
	{field: "payload_bytes", name: "payload-bytes", usage: "payload size of each message"},
	{field: "chunk_size", name: "chunk-size", usage: "messages per production chunk, one Kafka transaction each"},
	{field: "chunk_concurrency", name: "chunk-concurrency", usage: "production chunks in flight"},
	{field: "rate_per_second", name: "rate", usage: "production rate cap over all queues, messages/s"},
	{field: "rate_per_queue", name: "rate-per-queue", usage: "production rate cap per logical queue, messages/s"},
	{field: "warmup_messages", name: "warmup-messages", usage: "first messages of a run, produced at no more than --warmup-rate while the Flink jobs are cold"},
	{field: "warmup_rate_per_second", name: "warmup-rate", usage: "production rate cap of the first --warmup-messages, messages/s (at or above --rate: no warmup)"},
	{field: "batch_size", name: "batch-size", usage: "messages per HTTP batch"},
	{field: "token_renew_every", name: "token-renew-every", usage: "delivered messages per security token"},
	{field: "lag_threshold", name: "lag-threshold", usage: "consumer lag that holds production"},
	{field: "lag_resume", name: "lag-resume", usage: "consumer lag below which held production resumes", defaultText: "half of --lag-threshold"},
	{field: "lag_poll_every_seconds", name: "lag-poll-every-seconds", usage: "seconds between two readings of the consumer lag"},
	{field: "lag_threshold_seconds", name: "lag-threshold-seconds", usage: "consumer lag, in seconds of draining at the consumer's rate, that holds production"},
	{field: "lag_resume_seconds", name: "lag-resume-seconds", usage: "consumer lag in seconds below which held production resumes", defaultText: "half of --lag-threshold-seconds"},
	{field: "flink_parallelism", name: "flink-parallelism", usage: "parallelism of the Flink jobs"},
	{field: "checkpoint_interval_seconds", name: "checkpoint-interval-seconds", usage: "seconds between two checkpoints of the Flink jobs"},
	{field: "flink_watch_seconds", name: "flink-watch-seconds", usage: "seconds between two checks of the Flink jobs while messages flow"},
	{field: "max_flink_restarts", name: "max-flink-restarts", usage: "restarts of a Flink job that fail the run when exceeded"},
	{field: "brokers", name: "brokers", usage: "Kafka brokers the health stage expects", defaultText: "--replication-factor"},
	{field: "replication_factor", name: "replication-factor", usage: "replication factor of every topic the run creates"},
	{field: "min_insync_replicas", name: "min-insync-replicas", usage: "min.insync.replicas of every topic the run creates", defaultText: "2, or 1 below --replication-factor 3"},
	{field: "topic_configs", name: "topic-config", usage: "Kafka topic config for every topic the run creates, name=value (repeat the flag or separate with commas), e.g. retention.ms=86400000"},
	{field: "task_managers", name: "task-managers", usage: "Flink TaskManagers the health stage expects"},
	{field: "keep_topics", name: "keep-topics", usage: "leave the run's topics in place after the run"},
	{field: "verify_idle_seconds", name: "verify-idle-seconds", usage: "seconds without new records before verification gives up"},
	{field: "timeout_seconds", name: "timeout-seconds", usage: "the run's deadline; past it the run ends Failed with its figures so far"},
	{field: "thresholds.max_duration_seconds", name: "max-duration-seconds", usage: "threshold: the run fails if it takes longer, health check to cleanup", defaultText: notChecked},
	{field: "thresholds.min_throughput_msgs_per_sec", name: "min-throughput-msgs-per-sec", usage: "threshold: the run fails if fewer messages a second cross the pipeline end to end", defaultText: notChecked},
	{field: "thresholds.max_p99_latency_seconds", name: "max-p99-latency-seconds", usage: "threshold: the run fails if the end-to-end latency's p99 is higher", defaultText: notChecked},
	{field: "thresholds.max_p999_latency_seconds", name: "max-p999-latency-seconds", usage: "threshold: the run fails if the end-to-end latency's p99.9 is higher", defaultText: notChecked},
	{field: "thresholds.max_lag_messages", name: "max-lag-messages", usage: "threshold: the run fails if a consumer lag of the run rose higher", defaultText: notChecked},
	{field: "thresholds.max_backpressure_hold_seconds", name: "max-backpressure-hold-seconds", usage: "threshold: the run fails if production was held for lag longer, all holds together", defaultText: notChecked},
	{field: "thresholds.max_http_retries", name: "max-http-retries", usage: "threshold: the run fails if more HTTP requests to the endpoint were sent again", defaultText: notChecked},
}

// notChecked is the default of every threshold.
const notChecked = "not checked"

// jsonOnlyFields are the PipelineInput fields without a flag, and why.
var jsonOnlyFields = map[string]string{
	"topics": "four topic names in one object; give them with --input or --input-file",
}

// inputFlags are the PipelineInput fields as flags, plus --input and
// --input-file for the whole input as JSON. Only flags given on the command
// line are applied, on top of the JSON input, so an unset flag leaves the
// workflow's own default in force.
type inputFlags struct {
	// values holds what the flags parsed into, field by field.
	values workflows.PipelineInput

	inputJSON string
	inputFile string
}

// register adds the flags to fs. withRunID is false for schedules, whose
// every run must name its topics after its own workflow id.
func (f *inputFlags) register(fs *pflag.FlagSet, withRunID bool) {
	defaults := reflect.ValueOf(workflows.PipelineInput{}.WithDefaults(""))
	for _, flag := range inputFlagTable {
		if flag.field == "run_id" && !withRunID {
			continue
		}
		index := inputFieldIndex(flag.field)
		usage := flag.usage
		switch def := defaults.FieldByIndex(index); {
		case flag.defaultText != "":
			usage += " (default " + flag.defaultText + ")"
		case !def.IsZero():
			usage += " (default " + formatValue(def) + ")"
		}
		switch p := reflect.ValueOf(&f.values).Elem().FieldByIndex(index).Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, flag.name, "", usage)
		case *bool:
			fs.BoolVar(p, flag.name, false, usage)
		case *int:
			fs.IntVar(p, flag.name, 0, usage)
		case *int64:
			fs.Int64Var(p, flag.name, 0, usage)
		case *float64:
			fs.Float64Var(p, flag.name, 0, usage)
		case *map[string]string:
			fs.StringToStringVar(p, flag.name, nil, usage)
		default:
			panic(fmt.Sprintf("starter: PipelineInput field %s: no flag for type %T", flag.field, p))
		}
	}
	fs.StringVar(&f.inputJSON, "input", "", `whole PipelineInput as JSON, e.g. '{"messages":10000}'; flags given as well override its fields`)
	fs.StringVar(&f.inputFile, "input-file", "", "file with the PipelineInput JSON ('-' for stdin)")
}

// inputFieldIndex finds the PipelineInput field with the JSON name field,
// or the JSON path of a nested one (thresholds.max_http_retries).
func inputFieldIndex(field string) []int {
	t := reflect.TypeFor[workflows.PipelineInput]()
	var index []int
	for name := range strings.SplitSeq(field, ".") {
		fields := reflect.VisibleFields(t)
		i := slices.IndexFunc(fields, func(f reflect.StructField) bool { return jsonName(f) == name })
		if i < 0 {
			panic(fmt.Sprintf("starter: PipelineInput has no field %q", field))
		}
		index, t = append(index, fields[i].Index...), fields[i].Type
	}
	return index
}

// jsonName is the name a struct field has in JSON.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// formatValue writes a default as the help text shows it: 1,000,000.
func formatValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		return humanfmt.Commas(v.Int())
	case reflect.Float64:
		return formatRate(v.Float())
	}
	return fmt.Sprint(v.Interface())
}

// build makes the PipelineInput: the JSON input if any, then every flag the
// command line set. stdin serves --input-file -.
func (f *inputFlags) build(fs *pflag.FlagSet, stdin io.Reader) (workflows.PipelineInput, error) {
	in, err := f.decode(stdin)
	if err != nil {
		return in, err
	}
	target := reflect.ValueOf(&in).Elem()
	source := reflect.ValueOf(f.values)
	var errs []error
	for _, flag := range inputFlagTable {
		if given := fs.Lookup(flag.name); given == nil || !given.Changed {
			continue
		}
		index := inputFieldIndex(flag.field)
		value := source.FieldByIndex(index)
		// Zero is how the JSON input says "the default", so a flag given as
		// 0 would silently run the default; no numeric knob takes a
		// negative value either.
		if isNumber(value) && !(value.Convert(reflect.TypeFor[float64]()).Float() > 0) {
			errs = append(errs, usagef("--%s: must be positive, got %v", flag.name, value.Interface()))
			continue
		}
		target.FieldByIndex(index).Set(value)
	}
	if len(errs) > 0 {
		return in, errors.Join(errs...)
	}
	return in, nil
}

func isNumber(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64:
		return true
	}
	return false
}

// decode reads --input or --input-file, if either is given.
func (f *inputFlags) decode(stdin io.Reader) (workflows.PipelineInput, error) {
	var in workflows.PipelineInput
	switch {
	case f.inputJSON != "" && f.inputFile != "":
		return in, usagef("--input and --input-file: give one of them, not both")
	case f.inputJSON != "":
		if err := decodeInput([]byte(f.inputJSON), &in); err != nil {
			return in, usagef("--input: %w", err)
		}
	case f.inputFile != "":
		var data []byte
		var err error
		if f.inputFile == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(f.inputFile)
		}
		if err != nil {
			return in, usagef("--input-file: %w", err)
		}
		if err := decodeInput(data, &in); err != nil {
			return in, usagef("--input-file %s: %w", f.inputFile, err)
		}
	}
	return in, nil
}

// validateInput checks in as the workflow will, with its defaults applied
// and workflowID as the default run id, so that a run that cannot succeed
// is refused here (exit 2) instead of failing once started. The error
// names the flag when the field came from one.
func validateInput(fs *pflag.FlagSet, in workflows.PipelineInput, workflowID string) error {
	err := in.WithDefaults(workflowID).Validate()
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	message := err.Error()
	if errors.As(err, &appErr) {
		message = appErr.Message()
	}
	field, _, _ := strings.Cut(strings.TrimPrefix(message, "invalid input: "), " ")
	for _, flag := range inputFlagTable {
		if flag.field == field {
			if given := fs.Lookup(flag.name); given != nil && given.Changed {
				return usagef("--%s: %s", flag.name, message)
			}
		}
	}
	return usagef("%s", message)
}

// decodeInput reads exactly one JSON object into in and rejects unknown
// fields (the workflow's own check, PipelineInput.CheckFields), so a
// misspelt field fails here instead of silently running the default.
func decodeInput(data []byte, in *workflows.PipelineInput) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(in); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("empty input: want a JSON object such as {}")
		}
		return fmt.Errorf("invalid PipelineInput JSON: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("invalid PipelineInput JSON: more than one value")
	}
	var trailing json.RawMessage
	if err := dec.Decode(&trailing); !errors.Is(err, io.EOF) {
		return fmt.Errorf("invalid PipelineInput JSON: trailing data after the object")
	}
	return in.CheckFields()
}

// effectiveMessages is the message count the run will use.
func effectiveMessages(in workflows.PipelineInput) int64 {
	return in.WithDefaults("").Messages
}

// staticSummary is the one-line summary the Temporal UI shows for the run.
func staticSummary(in workflows.PipelineInput) string {
	return fmt.Sprintf("flowproof run: %s messages", humanfmt.Commas(effectiveMessages(in)))
}

// staticDetails lists the run's main settings for the UI (Temporal markdown),
// marking those the workflow will default; origin says who started the run.
func staticDetails(in workflows.PipelineInput, origin string) string {
	d := in.WithDefaults("")
	orDefault := func(set bool, value string) string {
		if set {
			return value
		}
		return value + " (default)"
	}
	lines := []string{
		"**flowproof pipeline run**",
		"",
		"- messages: " + orDefault(in.Messages > 0, humanfmt.Commas(d.Messages)),
		"- logical queues: " + orDefault(in.LogicalQueues > 0, humanfmt.Commas(d.LogicalQueues)),
		"- partitions of the raw topic: " + orDefault(in.Partitions > 0, strconv.Itoa(d.Partitions)),
		"- partitions of the derived topics: " + orDefault(in.DerivedPartitions > 0, strconv.Itoa(d.DerivedPartitions)),
		"- production chunk: " + orDefault(in.ChunkSize > 0, humanfmt.Commas(d.ChunkSize)) + " messages",
		"- HTTP batch: " + orDefault(in.BatchSize > 0, strconv.Itoa(d.BatchSize)) + " messages",
		"- production rate cap: " + orDefault(in.RatePerSecond > 0, formatRate(d.RatePerSecond)) + " messages/s",
		"- keep topics: " + strconv.FormatBool(in.KeepTopics),
	}
	if in.RunID != "" {
		lines = append(lines, "- flowproof run id: `"+in.RunID+"`")
	}
	lines = append(lines, "", origin)
	return strings.Join(lines, "\n")
}

func formatRate(r float64) string {
	if r == float64(int64(r)) {
		return humanfmt.Commas(int64(r))
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}
