package workflows

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
)

func TestWithDefaultsKeepsWhatIsSet(t *testing.T) {
	in := PipelineInput{Messages: 500, LagThreshold: 1_000, RunID: "ci-1"}.WithDefaults("ignored")
	if in.Messages != 500 || in.RunID != "ci-1" || in.LagResume != 500 || in.Partitions != DefaultPartitions {
		t.Errorf("WithDefaults = %+v: want the set fields kept, lag_resume half the threshold, the rest defaulted", in)
	}
	if got := (PipelineInput{}).WithDefaults("").RunID; got != "" {
		t.Errorf("RunID without a workflow id = %q, want empty", got)
	}
	if got := (PipelineInput{}).WithDefaults("nightly-run-1").RunID; got != "nightly-run-1" {
		t.Errorf("RunID from a workflow id = %q, want nightly-run-1", got)
	}
	if got := (PipelineInput{}).WithDefaults("nightly run/1").RunID; !strings.HasPrefix(got, "nightly-run-1-") {
		t.Errorf("RunID from a workflow id with replaced characters = %q, want nightly-run-1-<hash>", got)
	}
}

func TestDerivedPartitionsDefaultToTwelveButNeverMoreThanTheRawTopic(t *testing.T) {
	for _, c := range []struct{ partitions, derived, want int }{
		{0, 0, DefaultDerivedPartitions}, {6, 0, 6}, {100, 0, DefaultDerivedPartitions}, {6, 50, 50},
	} {
		in := PipelineInput{Partitions: c.partitions, DerivedPartitions: c.derived}.WithDefaults("wf")
		if in.DerivedPartitions != c.want {
			t.Errorf("partitions %d, derived_partitions %d: derived %d, want %d", c.partitions, c.derived, in.DerivedPartitions, c.want)
		}
	}
}

func TestValidateReturnsANonRetryableInvalidInput(t *testing.T) {
	if err := (PipelineInput{}).WithDefaults("wf").Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	err := PipelineInput{BatchSize: 5_000}.WithDefaults("wf").Validate()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
		t.Fatalf("error %v: want a non-retryable %s", err, errtype.InvalidInput)
	}
	if !strings.HasPrefix(appErr.Message(), "invalid input: batch_size 5000: ") {
		t.Errorf("message %q: want it to start with the prefix and the field", appErr.Message())
	}
	if err := (PipelineInput{}).WithDefaults("").Validate(); err == nil || !strings.Contains(err.Error(), "run_id") {
		t.Errorf("input without a run id: %v, want an error about run_id", err)
	}
}

func TestUnknownFieldsAreRefusedWithAGuess(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{"mesages": 5000}`, `unknown field "mesages" (did you mean "messages"?)`},
		{`{"messages": 5000, "topics": {"fnal": "x"}}`, `unknown field "topics.fnal" (did you mean "topics.final"?)`},
		{`{"zzz_unrelated": true}`, `unknown field "zzz_unrelated": `},
	}
	for _, c := range cases {
		var in PipelineInput
		if err := json.Unmarshal([]byte(c.json), &in); err != nil {
			t.Fatalf("%s: decoding failed: %v", c.json, err)
		}
		err := in.WithDefaults("wf").Validate()
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
			t.Fatalf("%s: error %v, want a non-retryable %s", c.json, err, errtype.InvalidInput)
		}
		if !strings.Contains(appErr.Message(), c.want) {
			t.Errorf("%s: message %q, want it to contain %q", c.json, appErr.Message(), c.want)
		}
	}
}

func TestKnownFieldsDecodeAsBefore(t *testing.T) {
	var in PipelineInput
	// encoding/json matches keys without regard to case; so does the check.
	if err := json.Unmarshal([]byte(`{"Messages": 7, "keep_topics": true, "topics": {"raw": "r"}}`), &in); err != nil {
		t.Fatal(err)
	}
	if in.Messages != 7 || !in.KeepTopics || in.Topics.Raw != "r" {
		t.Errorf("decoded %+v", in)
	}
	if err := in.WithDefaults("wf").Validate(); err != nil {
		t.Errorf("known fields refused: %v", err)
	}
	if err := json.Unmarshal([]byte(`null`), &in); err != nil {
		t.Errorf("null input: %v", err)
	}
}

func TestClusterSettingsDefaults(t *testing.T) {
	for _, c := range []struct {
		name                string
		in                  PipelineInput
		rf, minISR, brokers int
	}{
		{"none set", PipelineInput{}, 3, 2, 3},
		{"one broker", PipelineInput{ReplicationFactor: 1}, 1, 1, 1},
		{"two replicas", PipelineInput{ReplicationFactor: 2}, 2, 1, 2},
		{"five replicas", PipelineInput{ReplicationFactor: 5}, 5, 2, 5},
		{"all set", PipelineInput{ReplicationFactor: 2, MinInsyncReplicas: 2, Brokers: 4}, 2, 2, 4},
	} {
		got := c.in.WithDefaults("wf")
		if got.ReplicationFactor != c.rf || got.MinInsyncReplicas != c.minISR || got.Brokers != c.brokers {
			t.Errorf("%s: replication_factor %d, min_insync_replicas %d, brokers %d; want %d, %d, %d",
				c.name, got.ReplicationFactor, got.MinInsyncReplicas, got.Brokers, c.rf, c.minISR, c.brokers)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: defaults refused: %v", c.name, err)
		}
	}
	var decoded PipelineInput
	if err := json.Unmarshal([]byte(`{"replication_factor": 2, "min_insync_replicas": 1, "topic_configs": {"retention.ms": "3600000"}}`), &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.ReplicationFactor != 2 || decoded.MinInsyncReplicas != 1 || decoded.TopicConfigs["retention.ms"] != "3600000" {
		t.Errorf("decoded %+v", decoded)
	}
	if err := decoded.WithDefaults("wf").Validate(); err != nil {
		t.Errorf("cluster settings refused: %v", err)
	}
}

func TestClusterSettingsValidation(t *testing.T) {
	for _, c := range []struct {
		in   PipelineInput
		want string
	}{
		{PipelineInput{ReplicationFactor: 2, MinInsyncReplicas: 3}, "invalid input: min_insync_replicas 3: must be between 1 and replication_factor 2"},
		{PipelineInput{MinInsyncReplicas: -1}, "invalid input: min_insync_replicas -1: must be between 1"},
		{PipelineInput{ReplicationFactor: -1}, "invalid input: replication_factor -1: must be between 1 and 32"},
		{PipelineInput{ReplicationFactor: 33}, "invalid input: replication_factor 33"},
		{PipelineInput{ReplicationFactor: 3, Brokers: 2}, "invalid input: brokers 2: must be at least replication_factor 3"},
		{PipelineInput{TopicConfigs: map[string]string{"min.insync.replicas": "1"}}, "invalid input: topic_configs min.insync.replicas: set by flowproof: it is min_insync_replicas"},
		{PipelineInput{TopicConfigs: map[string]string{"message.timestamp.type": "CreateTime"}}, "topic_configs message.timestamp.type: set by flowproof"},
		{PipelineInput{TopicConfigs: map[string]string{"Retention MS": "1"}}, `topic_configs "Retention MS": a Kafka topic config name`},
		{PipelineInput{TopicConfigs: map[string]string{"retention.ms": ""}}, "topic_configs retention.ms: the value is empty"},
	} {
		err := c.in.WithDefaults("wf").Validate()
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
			t.Errorf("%+v: error %v, want a non-retryable %s", c.in, err, errtype.InvalidInput)
			continue
		}
		if !strings.Contains(appErr.Message(), c.want) {
			t.Errorf("%+v: message %q, want %q", c.in, appErr.Message(), c.want)
		}
	}
	ok := PipelineInput{TopicConfigs: map[string]string{"cleanup.policy": "delete", "compression.type": "lz4"}}
	if err := ok.WithDefaults("wf").Validate(); err != nil {
		t.Errorf("configs flowproof does not own refused: %v", err)
	}
}
