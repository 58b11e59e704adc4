package kafkaadmin

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

func TestRunTopicSpecs(t *testing.T) {
	in := PrepareTopicsInput{Names: activitytest.Names("r"), Partitions: 12, ReplicationFactor: 3}
	specs := map[string]topicSpec{}
	for _, s := range runTopicSpecs(in) {
		specs[s.name] = s
	}
	if len(specs) != 5 {
		t.Fatalf("%d specs, want 5", len(specs))
	}
	for _, name := range []string{in.Names.RawTopic, in.Names.EnrichedTopic, in.Names.ResponsesTopic, in.Names.FinalTopic} {
		if specs[name].partitions != 12 {
			t.Errorf("%s: %d partitions, want 12", name, specs[name].partitions)
		}
		if got := specs[name].configs["min.insync.replicas"]; got == nil || *got != "2" {
			t.Errorf("%s: min.insync.replicas %v, want 2", name, got)
		}
	}
	ledger := specs[in.Names.LedgerTopic]
	if ledger.partitions != 1 || *ledger.configs["cleanup.policy"] != "compact" {
		t.Errorf("ledger spec %+v", ledger)
	}
	if got := specs[in.Names.FinalTopic].configs["message.timestamp.type"]; got == nil || *got != "LogAppendTime" {
		t.Errorf("final topic timestamp type %v", got)
	}
	if got := specs[in.Names.RawTopic].configs["message.timestamp.type"]; got != nil {
		t.Errorf("raw topic should keep CreateTime, has %s", *got)
	}

	withAccepted := in
	withAccepted.Names.AcceptedTopic = "flowproof.r.accepted"
	if all := runTopicSpecs(withAccepted); len(all) != 6 || all[5].name != "flowproof.r.accepted" || all[5].partitions != 12 {
		t.Errorf("specs with the accepted topic: %+v", all)
	}

	fewer := withAccepted
	fewer.Partitions, fewer.DerivedPartitions = 100, 6
	for _, spec := range runTopicSpecs(fewer) {
		want := int32(6)
		switch spec.name {
		case fewer.Names.RawTopic:
			want = 100
		case fewer.Names.LedgerTopic:
			want = 1
		}
		if spec.partitions != want {
			t.Errorf("with derived partitions 6: %s has %d partitions, want %d", spec.name, spec.partitions, want)
		}
	}

	single := runTopicSpecs(PrepareTopicsInput{Names: activitytest.Names("r"), Partitions: 1, ReplicationFactor: 1})
	if _, set := single[0].configs["min.insync.replicas"]; set {
		t.Error("min.insync.replicas set with one replica")
	}
}

func TestValidatePrepareTopicsNamesTheField(t *testing.T) {
	valid := PrepareTopicsInput{Names: activitytest.Names("r"), Partitions: 100, ReplicationFactor: 3}
	if err := validatePrepareTopics(valid); err != nil {
		t.Fatalf("valid input rejected: %v", err)
	}
	for field, mutate := range map[string]func(*PrepareTopicsInput){
		"names.final_topic":    func(in *PrepareTopicsInput) { in.Names.FinalTopic = "" },
		"names.ledger_topic":   func(in *PrepareTopicsInput) { in.Names.LedgerTopic = in.Names.RawTopic },
		"names.accepted_topic": func(in *PrepareTopicsInput) { in.Names.AcceptedTopic = in.Names.RawTopic },
		"partitions":           func(in *PrepareTopicsInput) { in.Partitions = 0 },
		"replication_factor":   func(in *PrepareTopicsInput) { in.ReplicationFactor = 0 },
	} {
		in := valid
		mutate(&in)
		err := validatePrepareTopics(in)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func TestRunTopicSpecsTakeTheRunsClusterSettings(t *testing.T) {
	in := PrepareTopicsInput{Names: activitytest.Names("r"), Partitions: 4, ReplicationFactor: 2, MinInsyncReplicas: 1,
		TopicConfigs: map[string]string{"cleanup.policy": "delete", "retention.ms": "3600000"}}
	for _, spec := range runTopicSpecs(in) {
		if got := spec.configs["min.insync.replicas"]; got == nil || *got != "1" {
			t.Errorf("%s: min.insync.replicas %v, want 1", spec.name, got)
		}
		if got := spec.configs["retention.ms"]; got == nil || *got != "3600000" {
			t.Errorf("%s: retention.ms %v, want the run's 3600000", spec.name, got)
		}
		wantPolicy := "delete"
		if spec.name == in.Names.LedgerTopic {
			wantPolicy = "compact" // the run's own setting wins: the ledger is read whole
		}
		if got := spec.configs["cleanup.policy"]; got == nil || *got != wantPolicy {
			t.Errorf("%s: cleanup.policy %v, want %s", spec.name, got, wantPolicy)
		}
	}
}

func TestValidatePrepareTopicsClusterSettings(t *testing.T) {
	valid := PrepareTopicsInput{Names: activitytest.Names("r"), Partitions: 1, ReplicationFactor: 2, MinInsyncReplicas: 2}
	if err := validatePrepareTopics(valid); err != nil {
		t.Fatalf("valid input rejected: %v", err)
	}
	for want, mutate := range map[string]func(*PrepareTopicsInput){
		"min_insync_replicas is 3; want 1 to replication_factor 2": func(in *PrepareTopicsInput) { in.MinInsyncReplicas = 3 },
		"min_insync_replicas is -1":                                func(in *PrepareTopicsInput) { in.MinInsyncReplicas = -1 },
		"topic_configs min.insync.replicas: set by flowproof":      func(in *PrepareTopicsInput) { in.TopicConfigs = map[string]string{"min.insync.replicas": "1"} },
		"topic_configs message.timestamp.type: set by flowproof": func(in *PrepareTopicsInput) {
			in.TopicConfigs = map[string]string{"message.timestamp.type": "CreateTime"}
		},
		"topic_configs retention.ms: the value is empty": func(in *PrepareTopicsInput) { in.TopicConfigs = map[string]string{"retention.ms": ""} },
	} {
		in := valid
		mutate(&in)
		err := validatePrepareTopics(in)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), want) {
			t.Errorf("want a non-retryable error saying %q, got %v", want, err)
		}
	}
}
