package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/verify"
)

// consumeRound is one round of the consumer comparison.
type consumeRound struct {
	verify consumerFigures
	tool   consumerStats
}

type consumerFigures struct {
	records   int64
	elapsed   time.Duration
	perSecond float64
}

// fillRecordsPerTransaction sizes the fill's transactions like the split
// job's checkpoints at the pipeline's rate (5 s at 10,000 records/s).
const fillRecordsPerTransaction = 50_000

// verifyIdleTimeout only matters if records are missing, which fails the
// benchmark anyway.
const verifyIdleTimeout = 10 * time.Second

// consumers runs the consumer comparison: flowproof's Verify against Kafka's
// ConsumerPerformance (read_committed, a group of its own each round),
// reading the same final topic of s.records final-contract records.
func (b *bench) consumers(ctx context.Context) error {
	names := activities.RunNamesOf(b.runID + "-verify")
	b.cluster.track(names.Topics()...)
	fmt.Printf("\n== consumers: filling %s with %d final records\n", names.FinalTopic, b.s.records)
	if _, err := kafkaadmin.CreateRunTopics(ctx, b.kafka, kafkaadmin.PrepareTopicsInput{Names: names, Partitions: b.s.partitions, ReplicationFactor: 3}, report.Log); err != nil {
		return fmt.Errorf("prepare topics of %s: %w", names.RunID, err)
	}
	filled := time.Now()
	if err := fillFinalTopic(ctx, b.brokers, names, b.s.records, fillRecordsPerTransaction, b.s.queues); err != nil {
		return err
	}
	fmt.Printf("filled in %s (transactional, %d records per transaction)\n", time.Since(filled).Round(time.Millisecond), fillRecordsPerTransaction)

	configFile := b.workFile("consumer.properties")
	if err := os.WriteFile(configFile, []byte("isolation.level=read_committed\n"), 0o644); err != nil {
		return fmt.Errorf("consumer config: %w", err)
	}
	for round := 1; round <= b.s.rounds; round++ {
		fmt.Printf("\n== consumers, round %d of %d: %d records each\n", round, b.s.rounds, b.s.records)
		var r consumeRound
		verifySide := func() error {
			var err error
			r.verify, err = b.verifyWithFlowproof(ctx, names)
			return err
		}
		toolSide := func() error {
			var err error
			r.tool, err = b.consumeWithTool(ctx, names.FinalTopic, fmt.Sprintf("%s.consumer-perf-%d", names.RunID, round), configFile)
			return err
		}
		order := []func() error{verifySide, toolSide}
		if round%2 == 0 {
			order = []func() error{toolSide, verifySide}
		}
		for _, side := range order {
			if err := side(); err != nil {
				return err
			}
		}
		b.consumeRounds = append(b.consumeRounds, r)
	}
	return b.cluster.deleteTopics(ctx, names.Topics()...)
}

// verifyWithFlowproof runs the Verify activity's code over the final topic;
// a run that does not pass is an error, since the figure would then not be
// the rate of a verification that checked every record.
func (b *bench) verifyWithFlowproof(ctx context.Context, names activities.RunNames) (consumerFigures, error) {
	started := time.Now()
	res, err := verify.FinalTopic(ctx, b.kafka, verify.Input{Names: names, Messages: int64(b.s.records), IdleTimeoutMillis: verifyIdleTimeout.Milliseconds()}, report)
	elapsed := time.Since(started)
	if err != nil {
		return consumerFigures{}, fmt.Errorf("flowproof verify: %w", err)
	}
	if !res.Passed() || res.Records != int64(b.s.records) {
		return consumerFigures{}, fmt.Errorf("flowproof verify of the benchmark's own records did not pass: %d records, %d unique, %d missing, %d bad; problems: %v",
			res.Records, res.Unique, res.Missing, res.BadRecords, res.Problems)
	}
	f := consumerFigures{records: res.Records, elapsed: elapsed, perSecond: float64(res.Records) / elapsed.Seconds()}
	fmt.Printf("flowproof Verify: %d records checked in %s, %.0f records/s (passed)\n", f.records, elapsed.Round(time.Millisecond), f.perSecond)
	return f, nil
}

func (b *bench) consumeWithTool(ctx context.Context, topic, group, configFile string) (consumerStats, error) {
	b.cluster.trackGroup(group)
	out, err := runKafkaClass(ctx, b.s.stackctl, "org.apache.kafka.tools.ConsumerPerformance",
		"--bootstrap-server", joinComma(b.brokers),
		"--topic", topic,
		"--messages", strconv.Itoa(b.s.records),
		"--group", group,
		"--consumer.config", configFile,
		"--timeout", "30000",
	)
	if err != nil {
		return consumerStats{}, fmt.Errorf("ConsumerPerformance: %w", err)
	}
	stats, err := parseConsumerStats(out)
	if err != nil {
		return consumerStats{}, fmt.Errorf("ConsumerPerformance: %w", err)
	}
	if stats.messages != int64(b.s.records) {
		return consumerStats{}, fmt.Errorf("ConsumerPerformance read %d records, want %d", stats.messages, b.s.records)
	}
	fmt.Printf("Kafka ConsumerPerformance: %.0f records/s including its group join of %.0f ms, %.0f records/s fetching\n",
		stats.perSecond, stats.rebalanceMs, stats.fetchPerSecond)
	return stats, nil
}

// finalValue is the JSON value of a final record (docs/message-contract.md).
type finalValue struct {
	RunID         string `json:"run_id"`
	Seq           int64  `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	ProducedAt    string `json:"produced_at"`
	CorrelationID string `json:"correlation_id"`
	SendingID     string `json:"sending_id"`
	BatchNumber   int64  `json:"batch_number"`
}

// fillBatchSize is how many messages share a batch number and sending id
// prefix, as the endpoint's batches of 100 do.
const fillBatchSize = 100

// fillFinalTopic writes records final-contract records of names.RunID to the
// final topic, in transactions of perTransaction records like the split
// job's checkpoints, so Verify can pass on them.
func fillFinalTopic(ctx context.Context, brokers []string, names activities.RunNames, records, perTransaction, queues int) error {
	producer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.TransactionalID(names.FinalTopic+".fill"),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.DefaultProduceTopic(names.FinalTopic),
	)
	if err != nil {
		return fmt.Errorf("fill producer: %w", err)
	}
	defer producer.Close()
	for first := 0; first < records; first += perTransaction {
		if err := producer.BeginTransaction(); err != nil {
			return fmt.Errorf("fill: begin transaction: %w", err)
		}
		for seq := int64(first); seq < int64(min(first+perTransaction, records)); seq++ {
			rec, err := finalRecord(names.RunID, seq, queues)
			if err != nil {
				return err
			}
			producer.Produce(ctx, rec, nil)
		}
		if err := producer.Flush(ctx); err != nil {
			return fmt.Errorf("fill: flush: %w", err)
		}
		if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return fmt.Errorf("fill: commit: %w", err)
		}
	}
	return nil
}

// finalRecord is message seq of runID as the split job writes it.
func finalRecord(runID string, seq int64, queues int) (*kgo.Record, error) {
	sum := md5.Sum([]byte(runID + ":" + strconv.FormatInt(seq, 10)))
	batch := seq / fillBatchSize
	v := finalValue{
		RunID:         runID,
		Seq:           seq,
		LogicalQueue:  fmt.Sprintf("q-%04d", seq%int64(queues)),
		ProducedAt:    time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		CorrelationID: hex.EncodeToString(sum[:]),
		SendingID:     fmt.Sprintf("bench-%d-%d", batch, seq%fillBatchSize),
		BatchNumber:   batch,
	}
	value, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("final record %d: %w", seq, err)
	}
	return &kgo.Record{
		Key:   []byte(v.LogicalQueue),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: "correlation.id", Value: []byte(v.CorrelationID)},
			{Key: "sending.id", Value: []byte(v.SendingID)},
			{Key: "logical.queue", Value: []byte(v.LogicalQueue)},
			{Key: "batch.number", Value: []byte(strconv.FormatInt(batch, 10))},
		},
	}, nil
}
