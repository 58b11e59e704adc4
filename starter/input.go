package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/flowproof/flowproof/workflows"
)

// inputFlags are the common PipelineInput fields as flags, plus --input and
// --input-file for everything else. Only flags given on the command line are
// applied, on top of the JSON input, so an unset flag leaves the workflow's
// own default in force.
type inputFlags struct {
	runID             string
	messages          int64
	queues            int
	partitions        int
	payloadBytes      int
	chunkSize         int
	chunkConcurrency  int
	batchSize         int
	tokenRenewEvery   int
	rate              float64
	ratePerQueue      float64
	lagThreshold      int64
	flinkParallelism  int
	verifyIdleSeconds int
	keepTopics        bool

	inputJSON string
	inputFile string
}

// register adds the flags to fs. withRunID is false for schedules, whose
// every run must name its topics after its own workflow id.
func (f *inputFlags) register(fs *pflag.FlagSet, withRunID bool) {
	if withRunID {
		fs.StringVar(&f.runID, "run-id", "", "run id that names the run's topics and groups (default: the workflow id)")
	}
	fs.Int64Var(&f.messages, "messages", 0, fmt.Sprintf("messages to send through the pipeline (default %s)", commas(workflows.DefaultMessages)))
	fs.IntVar(&f.queues, "queues", 0, fmt.Sprintf("logical queues the messages are spread over (default %s)", commas(workflows.DefaultLogicalQueues)))
	fs.IntVar(&f.partitions, "partitions", 0, fmt.Sprintf("partitions of each topic (default %d)", workflows.DefaultPartitions))
	fs.IntVar(&f.payloadBytes, "payload-bytes", 0, fmt.Sprintf("payload size of each message (default %d)", workflows.DefaultPayloadBytes))
	fs.IntVar(&f.chunkSize, "chunk-size", 0, fmt.Sprintf("messages per production chunk, one Kafka transaction each (default %s)", commas(workflows.DefaultChunkSize)))
	fs.IntVar(&f.chunkConcurrency, "chunk-concurrency", 0, fmt.Sprintf("production chunks in flight (default %d)", workflows.DefaultChunkConcurrency))
	fs.IntVar(&f.batchSize, "batch-size", 0, fmt.Sprintf("messages per HTTP batch (default %d)", workflows.DefaultBatchSize))
	fs.IntVar(&f.tokenRenewEvery, "token-renew-every", 0, fmt.Sprintf("delivered messages per security token (default %s)", commas(workflows.DefaultTokenRenewEvery)))
	fs.Float64Var(&f.rate, "rate", 0, fmt.Sprintf("production rate cap over all queues, messages/s (default %s)", commas(workflows.DefaultRatePerSecond)))
	fs.Float64Var(&f.ratePerQueue, "rate-per-queue", 0, fmt.Sprintf("production rate cap per logical queue, messages/s (default %d)", workflows.DefaultRatePerQueue))
	fs.Int64Var(&f.lagThreshold, "lag-threshold", 0, fmt.Sprintf("consumer lag that holds production (default %s)", commas(workflows.DefaultLagThreshold)))
	fs.IntVar(&f.flinkParallelism, "flink-parallelism", 0, fmt.Sprintf("parallelism of the Flink jobs (default %d)", workflows.DefaultFlinkParallelism))
	fs.IntVar(&f.verifyIdleSeconds, "verify-idle-seconds", 0, fmt.Sprintf("seconds without new records before verification gives up (default %d)", workflows.DefaultVerifyIdleSeconds))
	fs.BoolVar(&f.keepTopics, "keep-topics", false, "leave the run's topics in place after the run")
	fs.StringVar(&f.inputJSON, "input", "", `whole PipelineInput as JSON, e.g. '{"messages":10000}'; flags given as well override its fields`)
	fs.StringVar(&f.inputFile, "input-file", "", "file with the PipelineInput JSON ('-' for stdin)")
}

// build makes the PipelineInput: the JSON input if any, then every flag the
// command line set. stdin serves --input-file -.
func (f *inputFlags) build(fs *pflag.FlagSet, stdin io.Reader) (workflows.PipelineInput, error) {
	var in workflows.PipelineInput
	if f.inputJSON != "" && f.inputFile != "" {
		return in, usagef("--input and --input-file: give one of them, not both")
	}
	switch {
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

	changed := func(name string) bool {
		flag := fs.Lookup(name)
		return flag != nil && flag.Changed
	}
	var errs []error
	positive := func(name string, v float64) bool {
		if v <= 0 {
			errs = append(errs, usagef("--%s: must be positive, got %v", name, v))
			return false
		}
		return true
	}
	if changed("run-id") {
		in.RunID = f.runID
	}
	if changed("messages") && positive("messages", float64(f.messages)) {
		in.Messages = f.messages
	}
	for _, field := range []struct {
		name string
		src  int
		dst  *int
	}{
		{"queues", f.queues, &in.LogicalQueues},
		{"partitions", f.partitions, &in.Partitions},
		{"payload-bytes", f.payloadBytes, &in.PayloadBytes},
		{"chunk-size", f.chunkSize, &in.ChunkSize},
		{"chunk-concurrency", f.chunkConcurrency, &in.ChunkConcurrency},
		{"batch-size", f.batchSize, &in.BatchSize},
		{"token-renew-every", f.tokenRenewEvery, &in.TokenRenewEvery},
		{"flink-parallelism", f.flinkParallelism, &in.FlinkParallelism},
		{"verify-idle-seconds", f.verifyIdleSeconds, &in.VerifyIdleSeconds},
	} {
		if changed(field.name) && positive(field.name, float64(field.src)) {
			*field.dst = field.src
		}
	}
	if changed("rate") && positive("rate", f.rate) {
		in.RatePerSecond = f.rate
	}
	if changed("rate-per-queue") && positive("rate-per-queue", f.ratePerQueue) {
		in.RatePerQueue = f.ratePerQueue
	}
	if changed("lag-threshold") && positive("lag-threshold", float64(f.lagThreshold)) {
		in.LagThreshold = f.lagThreshold
	}
	if changed("keep-topics") {
		in.KeepTopics = f.keepTopics
	}
	if len(errs) > 0 {
		return in, errors.Join(errs...)
	}
	return in, nil
}

// decodeInput reads exactly one JSON object into in and rejects unknown
// fields, so a misspelt field fails here instead of silently running the
// default.
func decodeInput(data []byte, in *workflows.PipelineInput) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
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
	return nil
}

// effectiveMessages is the message count the run will use.
func effectiveMessages(in workflows.PipelineInput) int64 {
	if in.Messages > 0 {
		return in.Messages
	}
	return workflows.DefaultMessages
}

// staticSummary is the one-line summary the Temporal UI shows for the run.
func staticSummary(in workflows.PipelineInput) string {
	return fmt.Sprintf("flowproof run: %s messages", commas(effectiveMessages(in)))
}

// staticDetails lists the run's main settings for the UI (Temporal markdown),
// marking those the workflow will default; origin says who started the run.
func staticDetails(in workflows.PipelineInput, origin string) string {
	orDefault := func(set bool, value, def string) string {
		if set {
			return value
		}
		return def + " (default)"
	}
	lines := []string{
		"**flowproof pipeline run**",
		"",
		"- messages: " + orDefault(in.Messages > 0, commas(in.Messages), commas(workflows.DefaultMessages)),
		"- logical queues: " + orDefault(in.LogicalQueues > 0, commas(int64(in.LogicalQueues)), commas(workflows.DefaultLogicalQueues)),
		"- partitions per topic: " + orDefault(in.Partitions > 0, strconv.Itoa(in.Partitions), strconv.Itoa(workflows.DefaultPartitions)),
		"- production chunk: " + orDefault(in.ChunkSize > 0, commas(int64(in.ChunkSize)), commas(workflows.DefaultChunkSize)) + " messages",
		"- HTTP batch: " + orDefault(in.BatchSize > 0, strconv.Itoa(in.BatchSize), strconv.Itoa(workflows.DefaultBatchSize)) + " messages",
		"- production rate cap: " + orDefault(in.RatePerSecond > 0, formatRate(in.RatePerSecond), formatRate(workflows.DefaultRatePerSecond)) + " messages/s",
		"- keep topics: " + strconv.FormatBool(in.KeepTopics),
	}
	if in.RunID != "" {
		lines = append(lines, "- run id: `"+in.RunID+"`")
	}
	lines = append(lines, "", origin)
	return strings.Join(lines, "\n")
}

func formatRate(r float64) string {
	if r == float64(int64(r)) {
		return commas(int64(r))
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// commas writes n with thousands separators: 1000000 -> "1,000,000".
func commas[T ~int | ~int64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
