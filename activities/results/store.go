// Package results keeps every run's result beyond the Temporal namespace's
// retention: the run's last activity, StoreRunResult, writes it to a
// compacted Kafka topic (key: the flowproof run id, value: a Record as
// JSON), where `starter history` and `starter compare` find runs that
// visibility has forgotten.
package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// DefaultTopic is the results topic unless the worker is told otherwise.
const DefaultTopic = "flowproof.results"

// maxRecordBytes bounds one stored result; the topic accepts as much.
const maxRecordBytes = 8 << 20

// Record is one run as the store keeps it. Fields are only added, never
// renamed, so that records of older runs still decode.
type Record struct {
	// RunID is the flowproof run (the record's key).
	RunID         string `json:"run_id"`
	Namespace     string `json:"namespace"`
	WorkflowID    string `json:"workflow_id"`
	TemporalRunID string `json:"temporal_run_id"`
	TaskQueue     string `json:"task_queue"`
	// ScheduleID is the schedule that started the run, if one did.
	ScheduleID string `json:"schedule_id,omitempty"`
	// InputHash identifies runs of the same input (workflows' InputHash).
	InputHash string    `json:"input_hash"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Input is the run's input with its defaults applied, as JSON.
	Input json.RawMessage `json:"input,omitempty"`
	// Result is the run's whole PipelineResult as JSON.
	Result json.RawMessage `json:"result"`
}

// Store reads and writes the results topic.
type Store struct {
	kafka *kafkaeos.Conn
	topic string
}

// NewStore returns the store in topic ("" takes DefaultTopic).
func NewStore(kafka *kafkaeos.Conn, topic string) *Store {
	if topic == "" {
		topic = DefaultTopic
	}
	return &Store{kafka: kafka, topic: topic}
}

// Topic is the topic the store uses.
func (s *Store) Topic() string { return s.topic }

// Put writes rec, creating the topic (with the replication settings given)
// if it does not exist; a record of the same run id replaces the earlier
// one once the topic is compacted.
func (s *Store) Put(ctx context.Context, rec Record, replicationFactor, minInsyncReplicas int) error {
	if rec.RunID == "" {
		return errors.New("store result: the record has no run id")
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("store result of run %s: encode: %w", rec.RunID, err)
	}
	if len(value) > maxRecordBytes {
		return fmt.Errorf("store result of run %s: %d bytes, more than the topic's %d", rec.RunID, len(value), maxRecordBytes)
	}
	if err := kafkaadmin.EnsureResultsTopic(ctx, s.kafka, s.topic, replicationFactor, minInsyncReplicas); err != nil {
		return fmt.Errorf("store result of run %s: %w", rec.RunID, err)
	}
	producer, err := s.kafka.NewClient(kgo.ProducerBatchMaxBytes(maxRecordBytes), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		return err
	}
	defer producer.Close()
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: s.topic, Key: []byte(rec.RunID), Value: value}).FirstErr(); err != nil {
		return fmt.Errorf("store result of run %s in topic %s: %w", rec.RunID, s.topic, err)
	}
	return nil
}

// All reads every record of the topic, the newest per run id, sorted by
// start time; none when the topic does not exist.
func (s *Store) All(ctx context.Context) ([]Record, error) {
	// A fresh answer, which the client also caches for ListEndOffsets: a
	// topic created moments ago can still be unknown in the cache.
	details, err := kafkaeos.FreshTopicDetails(ctx, s.kafka.Client, s.topic)
	if err != nil {
		return nil, fmt.Errorf("read results topic %s: %w", s.topic, err)
	}
	if errors.Is(details[s.topic].Err, kerr.UnknownTopicOrPartition) {
		return nil, nil // no run has stored a result yet
	}
	ends, err := s.kafka.Admin.ListEndOffsets(ctx, s.topic)
	if err != nil {
		return nil, fmt.Errorf("read results topic %s: %w", s.topic, err)
	}
	want := map[int32]int64{} // last offset to read, per partition
	var partitionErr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			// No run has stored a result yet.
		case o.Err != nil:
			partitionErr = errors.Join(partitionErr, fmt.Errorf("partition %d: %w", o.Partition, o.Err))
		case o.Offset > 0:
			want[o.Partition] = o.Offset - 1
		}
	})
	if partitionErr != nil {
		return nil, fmt.Errorf("read results topic %s: end offsets: %w", s.topic, partitionErr)
	}
	if len(want) == 0 {
		return nil, nil
	}
	partitions := map[int32]kgo.Offset{}
	for p := range want {
		partitions[p] = kgo.NewOffset().AtStart()
	}
	consumer, err := s.kafka.NewClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: partitions}),
		kgo.FetchMaxPartitionBytes(maxRecordBytes), kgo.FetchMaxBytes(4*maxRecordBytes))
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	byRun := map[string]Record{}
	for len(want) > 0 {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read results topic %s: %w", s.topic, err)
		}
		var fetchErr error
		fetches.EachError(func(_ string, _ int32, err error) { fetchErr = errors.Join(fetchErr, err) })
		if fetchErr != nil {
			return nil, fmt.Errorf("read results topic %s: %w", s.topic, fetchErr)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var rec Record
			// A record that does not decode is not a result; skip it
			// rather than hide every other run.
			if json.Unmarshal(r.Value, &rec) == nil && rec.RunID != "" {
				byRun[rec.RunID] = rec
			}
			if last, ok := want[r.Partition]; ok && r.Offset >= last {
				delete(want, r.Partition)
			}
		})
	}
	all := make([]Record, 0, len(byRun))
	for _, rec := range byRun {
		all = append(all, rec)
	}
	slices.SortFunc(all, func(a, b Record) int { return a.StartedAt.Compare(b.StartedAt) })
	return all, nil
}
