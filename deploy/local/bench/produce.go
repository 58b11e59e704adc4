package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/produce"
)

// shapeSampleSize is how many of flowproof's raw records are read back to
// measure their size and to serve as the Kafka tool's payloads.
const shapeSampleSize = 1000

// produceRound is one round of the producer comparison.
type produceRound struct {
	// flowproof is ProduceChunk as the pipeline runs it (chunks of
	// s.chunkSize, s.concurrency at a time); flowproofOneChunk is one chunk
	// of all the records, which leaves out the per-chunk costs (a new
	// producer, claiming the transactional id, reading the ledger, opening
	// the partitions, the commit).
	flowproof         producerFigures
	flowproofOneChunk producerFigures
	// toolIdempotent is Kafka's ProducerPerformance without transactions;
	// toolTransactional commits every transactionMillis
	// (toolCommitMillis), so that it and flowproof pay about one
	// transaction per chunk of records.
	toolIdempotent    producerFigures
	toolTransactional producerFigures
	transactionMillis int64
}

// producerFigures is one producer's run.
type producerFigures struct {
	records int64
	elapsed time.Duration
	// perSecond is as reported: measured here for flowproof, parsed from
	// the tool's last line for Kafka's tool.
	perSecond float64
	mbPerSec  float64
	// meanChunk is flowproof's mean time per chunk (one transaction).
	meanChunk time.Duration
	p50Millis float64
	p99Millis float64
	cpu       cpuSpent
	// batches are flowproof's, as its producers' hooks saw them; Kafka's
	// tool leaves them zero.
	batches batchFigures
}

// recordShape is the size of flowproof's raw records, read back from Kafka.
type recordShape struct {
	sampled     int
	valueBytes  float64
	keyBytes    float64
	headerBytes float64
}

// producers runs the producer comparison: flowproof's ProduceChunk (in
// chunks, and as one chunk) against Kafka's ProducerPerformance (without
// and with transactions), each on a fresh topic of the same partition
// count. Even rounds run the four in reverse order, so a drift in the
// machine's load favours neither side.
func (b *bench) producers(ctx context.Context) error {
	for round := 1; round <= b.s.rounds; round++ {
		fmt.Printf("\n== producers, round %d of %d: %d records each\n", round, b.s.rounds, b.s.records)
		var r produceRound
		sides := []func() error{
			func() (err error) {
				r.flowproof, err = b.produceWithFlowproof(ctx, fmt.Sprintf("%d-chunks", round), b.s.chunkSize, b.s.concurrency)
				return err
			},
			func() (err error) {
				r.flowproofOneChunk, err = b.produceWithFlowproof(ctx, fmt.Sprintf("%d-one-chunk", round), b.s.records, 1)
				return err
			},
			func() (err error) {
				r.toolIdempotent, err = b.produceWithTool(ctx, round, 0)
				return err
			},
			func() (err error) {
				r.transactionMillis = toolCommitMillis(b.s.chunkSize, b.produceRounds, r)
				r.toolTransactional, err = b.produceWithTool(ctx, round, r.transactionMillis)
				return err
			},
		}
		// Round 1 keeps this order: the tool sends flowproof's records,
		// read back from the first flowproof topic.
		if round%2 == 0 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return err
			}
		}
		b.produceRounds = append(b.produceRounds, r)
	}
	return nil
}

// toolCommitMillis is how often the transactional tool commits in the
// round current, after the rounds earlier: after about as many records as
// a chunk has. ProducerPerformance commits by time only, so it is a
// chunk's worth of time at the transactional tool's rate of the round
// before, which already paid for its commits; in round 1, at the
// idempotent tool's rate, which is faster and so makes the first round's
// transactions smaller.
func toolCommitMillis(chunkSize int, earlier []produceRound, current produceRound) int64 {
	if n := len(earlier); n > 0 {
		return chunkMillisAt(chunkSize, earlier[n-1].toolTransactional.perSecond)
	}
	return chunkMillisAt(chunkSize, current.toolIdempotent.perSecond)
}

// chunkMillisAt is how many milliseconds chunkSize records take at
// perSecond, at least 1 (also when the rate is unknown).
func chunkMillisAt(chunkSize int, perSecond float64) int64 {
	if perSecond <= 0 {
		return 1
	}
	return max(1, int64(math.Round(float64(chunkSize)*1000/perSecond)))
}

// recordsPerCommit is how many records a producer at perSecond sends
// between two commits transactionMillis apart.
func recordsPerCommit(perSecond float64, transactionMillis int64) float64 {
	return perSecond * float64(transactionMillis) / 1000
}

// produceWithFlowproof produces s.records messages through the Produce
// activity's own code (produce.Writer, one Kafka transaction per chunk), in
// chunks of chunkSize, concurrency at a time and unthrottled, into a fresh
// run's raw topic, and deletes the run's topics afterwards.
func (b *bench) produceWithFlowproof(ctx context.Context, label string, chunkSize, concurrency int) (producerFigures, error) {
	names := activities.RunNamesOf(fmt.Sprintf("%s-produce-%s", b.runID, label))
	b.cluster.track(names.Topics()...)
	if _, err := kafkaadmin.CreateRunTopics(ctx, b.kafka, kafkaadmin.PrepareTopicsInput{Names: names, Partitions: b.s.partitions, ReplicationFactor: 3}, report.Log); err != nil {
		return producerFigures{}, fmt.Errorf("prepare topics of %s: %w", names.RunID, err)
	}

	chunks := (b.s.records + chunkSize - 1) / chunkSize
	cpuStart, err := b.cpu.read()
	if err != nil {
		return producerFigures{}, err
	}
	b.batches.take()
	started := time.Now()
	produced, chunkTime, err := b.writeChunks(ctx, names, chunks, chunkSize, concurrency)
	elapsed := time.Since(started)
	if err != nil {
		return producerFigures{}, fmt.Errorf("flowproof produce: %w", err)
	}
	cpu, err := b.cpu.since(cpuStart, true)
	if err != nil {
		return producerFigures{}, err
	}
	batches := b.batches.take()

	if b.payloadFile == "" {
		shape, err := b.sampleRawRecords(ctx, names)
		if err != nil {
			return producerFigures{}, err
		}
		b.shape = shape
	}
	if err := b.cluster.deleteTopics(ctx, names.Topics()...); err != nil {
		return producerFigures{}, err
	}
	f := producerFigures{
		records:   produced,
		elapsed:   elapsed,
		perSecond: float64(produced) / elapsed.Seconds(),
		meanChunk: chunkTime / time.Duration(chunks),
		cpu:       cpu,
		batches:   batches,
	}
	// Values only, as the tool counts: its records have no key or headers.
	f.mbPerSec = f.perSecond * b.shape.valueBytes / (1 << 20)
	fmt.Printf("flowproof ProduceChunk: %d records in %s, %.0f records/s (%.2f MB/s of values), %d chunks of %d, %d at a time, mean chunk %s; CPU per record %s; %s\n",
		f.records, elapsed.Round(time.Millisecond), f.perSecond, f.mbPerSec, chunks, chunkSize, concurrency, f.meanChunk.Round(time.Millisecond), cpuPerRecordText(f), batches.text())
	return f, nil
}

// writeChunks writes the run's chunks of chunkSize, concurrency at a time,
// and returns the records produced and the chunks' summed time. As the
// workflow does, each of the concurrent writers takes its chunks in turns
// from its own lanes, whose producers are kept from one of the lane's
// chunks to the next.
func (b *bench) writeChunks(ctx context.Context, names activities.RunNames, chunks, chunkSize, concurrency int) (int64, time.Duration, error) {
	var (
		nextChunk  atomic.Int64
		produced   atomic.Int64
		chunkNanos atomic.Int64
		mu         sync.Mutex
		firstErr   error
		wg         sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writer := produce.NewWriter(b.kafka)
	defer writer.Close()
	for w := range concurrency {
		wg.Go(func() {
			for turn := 0; ; turn++ {
				lane := w*produce.LanesPerChunkInFlight + turn%produce.LanesPerChunkInFlight
				chunk := int(nextChunk.Add(1) - 1)
				if chunk >= chunks || ctx.Err() != nil {
					return
				}
				firstSeq := chunk * chunkSize
				count := min(chunkSize, b.s.records-firstSeq)
				chunkStarted := time.Now()
				res, err := writer.WriteChunk(ctx, produce.ChunkInput{
					Names: names, Chunk: chunk, FirstSeq: int64(firstSeq), Count: count,
					LogicalQueues: b.s.queues, PayloadBytes: b.s.payloadBytes,
					TransactionalID: produce.LaneTransactionalID(names, lane),
				}, false, report)
				if err == nil && (res.AlreadyCommitted || res.Produced != count) {
					err = fmt.Errorf("chunk %d produced %d of %d records (already committed: %t) on a fresh topic", chunk, res.Produced, count, res.AlreadyCommitted)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				chunkNanos.Add(int64(time.Since(chunkStarted)))
				produced.Add(int64(res.Produced))
			}
		})
	}
	wg.Wait()
	return produced.Load(), time.Duration(chunkNanos.Load()), firstErr
}

// sampleRawRecords reads the first committed records of the raw topic back,
// measures them, and writes their values, one per line, as the Kafka tool's
// payload file: the tool then sends exactly flowproof's bytes.
func (b *bench) sampleRawRecords(ctx context.Context, names activities.RunNames) (recordShape, error) {
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(b.brokers...),
		kgo.ConsumeTopics(names.RawTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return recordShape{}, fmt.Errorf("sample consumer: %w", err)
	}
	defer consumer.Close()
	sampleCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var shape recordShape
	var values [][]byte
	for shape.sampled < shapeSampleSize {
		fetches := consumer.PollRecords(sampleCtx, shapeSampleSize-shape.sampled)
		if err := sampleCtx.Err(); err != nil {
			return recordShape{}, fmt.Errorf("read back %s: %d of %d records after 30s: %w", names.RawTopic, shape.sampled, shapeSampleSize, err)
		}
		var fetchErr error
		fetches.EachError(func(topic string, partition int32, err error) {
			fetchErr = errors.Join(fetchErr, fmt.Errorf("%s/%d: %w", topic, partition, err))
		})
		if fetchErr != nil {
			return recordShape{}, fmt.Errorf("read back %s: %w", names.RawTopic, fetchErr)
		}
		for _, rec := range fetches.Records() {
			var raw struct {
				RunID string `json:"run_id"`
			}
			if err := json.Unmarshal(rec.Value, &raw); err != nil || raw.RunID != names.RunID {
				return recordShape{}, fmt.Errorf("read back %s: partition %d offset %d is not a raw message of run %s", names.RawTopic, rec.Partition, rec.Offset, names.RunID)
			}
			shape.sampled++
			shape.valueBytes += float64(len(rec.Value))
			shape.keyBytes += float64(len(rec.Key))
			for _, h := range rec.Headers {
				shape.headerBytes += float64(len(h.Key) + len(h.Value))
			}
			values = append(values, rec.Value)
		}
	}
	n := float64(shape.sampled)
	shape.valueBytes /= n
	shape.keyBytes /= n
	shape.headerBytes /= n

	path := b.workFile("raw-payloads.txt")
	if err := writeLines(path, values); err != nil {
		return recordShape{}, err
	}
	b.payloadFile = path
	fmt.Printf("flowproof raw record: value %.1f B, key %.1f B, headers %.1f B (mean of %d read back); the tool sends these values\n",
		shape.valueBytes, shape.keyBytes, shape.headerBytes, shape.sampled)
	return shape, nil
}

func writeLines(path string, lines [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("payload file: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, line := range lines {
		_, _ = w.Write(line)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		_ = f.Close() // the flush error says more
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// produceWithTool runs Kafka's ProducerPerformance for s.records records of
// flowproof's raw values into a fresh topic. With transactionMillis > 0 it
// is transactional and commits that often. Its producer is set up like
// flowproof's franz-go producer: acks=all, idempotence, snappy, 10 ms
// linger, batches up to 1,000,012 bytes.
func (b *bench) produceWithTool(ctx context.Context, round int, transactionMillis int64) (producerFigures, error) {
	label, topic := "idempotent", fmt.Sprintf("flowproof.%s.tool-produce-%d", b.runID, round)
	if transactionMillis > 0 {
		label, topic = fmt.Sprintf("transactional, commit every %d ms", transactionMillis), topic+"-txn"
	}
	if err := b.cluster.createTopic(ctx, topic, b.s.partitions); err != nil {
		return producerFigures{}, err
	}
	args := []string{"org.apache.kafka.tools.ProducerPerformance",
		"--topic", topic,
		"--num-records", fmt.Sprint(b.s.records),
		"--throughput", "-1",
		"--payload-file", b.payloadFile,
		"--producer-props",
		"bootstrap.servers=" + joinComma(b.brokers),
		"acks=all",
		"enable.idempotence=true",
		"compression.type=snappy",
		"linger.ms=10",
		"batch.size=1000012",
	}
	if transactionMillis > 0 {
		args = append(args, "--transactional-id", topic, "--transaction-duration-ms", fmt.Sprint(transactionMillis))
	}
	cpuStart, err := b.cpu.read()
	if err != nil {
		return producerFigures{}, err
	}
	started := time.Now()
	out, err := runKafkaClass(ctx, b.s.stackctl, args...)
	wall := time.Since(started)
	if err != nil {
		return producerFigures{}, fmt.Errorf("ProducerPerformance (%s): %w", label, err)
	}
	cpu, err := b.cpu.since(cpuStart, false)
	if err != nil {
		return producerFigures{}, err
	}
	total, err := parseProducerTotal(out)
	if err != nil {
		return producerFigures{}, fmt.Errorf("ProducerPerformance (%s): %w", label, err)
	}
	if total.records != int64(b.s.records) {
		return producerFigures{}, fmt.Errorf("ProducerPerformance (%s) sent %d records, want %d", label, total.records, b.s.records)
	}
	if err := b.cluster.deleteTopics(ctx, topic); err != nil {
		return producerFigures{}, err
	}
	f := producerFigures{records: total.records, perSecond: total.perSecond, mbPerSec: total.mbPerSec,
		elapsed:   time.Duration(float64(total.records) / total.perSecond * float64(time.Second)),
		p50Millis: total.p50Millis, p99Millis: total.p99Millis, cpu: cpu}
	if transactionMillis > 0 {
		label += fmt.Sprintf(", about %.0f records a commit", recordsPerCommit(f.perSecond, transactionMillis))
	}
	fmt.Printf("Kafka ProducerPerformance (%s): %.0f records/s (%.2f MB/s of values), latency p50 %.0f ms p99 %.0f ms (JVM included: %s wall); CPU per record %s\n",
		label, f.perSecond, f.mbPerSec, f.p50Millis, f.p99Millis, wall.Round(time.Millisecond), cpuPerRecordText(f))
	return f, nil
}

// cpuPerRecordText is a side's CPU per record, the brokers' and the
// client's.
func cpuPerRecordText(f producerFigures) string {
	brokers, client := f.cpuPerRecord()
	return fmt.Sprintf("brokers %.2f µs, client %.2f µs", brokers, client)
}

// cpuPerRecord is the brokers' and the client's CPU per record, in µs.
func (f producerFigures) cpuPerRecord() (brokers, client float64) {
	if f.records == 0 {
		return 0, 0
	}
	perRecord := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(f.records) }
	return perRecord(f.cpu.brokers), perRecord(f.cpu.client)
}
