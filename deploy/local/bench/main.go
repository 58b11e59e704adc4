// Command bench measures flowproof's Kafka and HTTP paths side by side with
// Kafka's own performance tools on the running local stack, in one run, and
// prints one summary table.
//
// The machine is shared and small, so absolute figures move from run to run
// with whatever else is running; what this program reports as a claim is
// always a ratio of two things measured one right after the other on the
// same cluster, with the absolute figures next to it. `make bench`
// (deploy/local/bench.sh) runs it after the Go micro-benchmarks, whose
// output it reads with -micro to put them in the same table.
//
// Every topic and consumer group it creates is deleted before it exits,
// also when a step fails or it is interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/version"
)

// settings are the sizes of one benchmark run.
type settings struct {
	records      int
	chunkSize    int
	concurrency  int
	partitions   int
	queues       int
	payloadBytes int
	rounds       int
	// consumers false leaves out the consumer comparison, for a run that
	// measures only the producers.
	consumers bool

	stackctl  string
	microFile string
	workDir   string

	endpointMessages    int
	endpointBatch       int
	endpointClients     int
	endpointMaxDuration time.Duration

	e2eMessages int
	starter     string

	timeout time.Duration

	showVersion bool // -version: print the build and exit
}

func parseSettings(args []string) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	// A million records a round: at 200,000, Kafka's tools spent much of a
	// round warming up their JVM, and the producer ratios swung by half
	// from one run to the next (docs/benchmarks.md, "Rounds of a million").
	fs.IntVar(&s.records, "records", 1_000_000, "records each producer and consumer side moves per round")
	fs.IntVar(&s.chunkSize, "chunk", 10_000, "records per flowproof chunk (one Kafka transaction each)")
	fs.IntVar(&s.concurrency, "concurrency", 2, "flowproof chunks produced at the same time")
	fs.IntVar(&s.partitions, "partitions", 12, "partitions of every benchmark topic")
	fs.IntVar(&s.queues, "logical-queues", 1000, "logical queues (record keys) of flowproof's messages")
	fs.IntVar(&s.payloadBytes, "payload-bytes", 128, "payload filler of flowproof's raw messages (the pipeline's default)")
	fs.IntVar(&s.rounds, "rounds", 4, "rounds of each side-by-side comparison; every other round runs its sides in reverse order")
	fs.BoolVar(&s.consumers, "consumers", true, "run the consumer comparison (false: producers and endpoint only)")
	fs.StringVar(&s.stackctl, "stackctl", "bin/stackctl", "stackctl binary, which runs Kafka's tools (kafka-class)")
	fs.StringVar(&s.microFile, "micro", "", "output of `go test -bench` to include in the summary (optional)")
	fs.StringVar(&s.workDir, "workdir", "", "directory for the tools' payload and config files (default: a new temporary directory)")
	fs.IntVar(&s.endpointMessages, "endpoint-messages", 100_000, "messages sent to the running endpoint (upper bound)")
	fs.IntVar(&s.endpointBatch, "endpoint-batch", 100, "messages per batch sent to the endpoint")
	fs.IntVar(&s.endpointClients, "endpoint-clients", runtime.GOMAXPROCS(0), "concurrent endpoint clients (default: GOMAXPROCS, as the in-process benchmark)")
	fs.DurationVar(&s.endpointMaxDuration, "endpoint-max-duration", 15*time.Second, "the endpoint load stops after this long even if messages are left")
	fs.IntVar(&s.e2eMessages, "e2e-messages", 200_000, "messages of the one verified pipeline run at the end, on the stack's worker (0: no run)")
	fs.StringVar(&s.starter, "starter", "bin/starter", "starter binary, which runs the end-to-end pipeline")
	fs.DurationVar(&s.timeout, "timeout", 30*time.Minute, "the whole run is cancelled (and cleaned up) after this long")
	fs.BoolVar(&s.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if s.showVersion {
		return s, nil
	}
	return s, s.validate()
}

func (s settings) validate() error {
	checks := []struct {
		ok   bool
		flag string
		want string
		got  any
	}{
		{s.records >= 1, "-records", "at least 1", s.records},
		{s.chunkSize >= 1, "-chunk", "at least 1", s.chunkSize},
		{s.concurrency >= 1, "-concurrency", "at least 1", s.concurrency},
		{s.partitions >= 1, "-partitions", "at least 1", s.partitions},
		{s.queues >= 1 && s.queues <= 10_000, "-logical-queues", "1 to 10,000", s.queues},
		{s.payloadBytes >= 1 && s.payloadBytes <= 100_000, "-payload-bytes", "1 to 100,000", s.payloadBytes},
		{s.rounds >= 1, "-rounds", "at least 1", s.rounds},
		{s.stackctl != "", "-stackctl", "a path", s.stackctl},
		{s.endpointMessages >= 0, "-endpoint-messages", "0 (skip) or more", s.endpointMessages},
		{s.endpointBatch >= 1 && s.endpointBatch <= 1000, "-endpoint-batch", "1 to 1,000 (the endpoint's limit)", s.endpointBatch},
		{s.endpointClients >= 1, "-endpoint-clients", "at least 1", s.endpointClients},
		{s.endpointMaxDuration > 0, "-endpoint-max-duration", "more than 0", s.endpointMaxDuration},
		{s.e2eMessages >= 0, "-e2e-messages", "0 (no run) or more", s.e2eMessages},
		{s.timeout > 0, "-timeout", "more than 0", s.timeout},
	}
	for _, c := range checks {
		if !c.ok {
			return fmt.Errorf("%s is %v; want %s", c.flag, c.got, c.want)
		}
	}
	return nil
}

func main() {
	s, err := parseSettings(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	if s.showVersion {
		fmt.Println(version.String("bench"))
		return
	}
	if err := runWithSignals(s); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// runWithSignals runs the benchmark until it ends, its timeout passes or
// SIGINT/SIGTERM arrives.
func runWithSignals(s settings) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return run(ctx, s)
}

// measureEndpoint loads the running endpoint, unless -endpoint-messages is 0.
func measureEndpoint(ctx context.Context, addrs localstack.Addresses, s settings) (endpointFigures, error) {
	if s.endpointMessages <= 0 {
		return endpointFigures{}, nil
	}
	fmt.Printf("\n== endpoint: %d messages in batches of %d from %d clients to %s (at most %s)\n",
		s.endpointMessages, s.endpointBatch, s.endpointClients, addrs.EndpointURL, s.endpointMaxDuration)
	endpoint, err := loadEndpoint(ctx, addrs, s)
	if err != nil {
		return endpointFigures{}, err
	}
	fmt.Printf("running endpoint: %d messages in %s, %.0f msgs/s, batch p50 %.1f ms, p99 %.1f ms\n",
		endpoint.messages, endpoint.elapsed.Round(time.Millisecond), endpoint.rate(), endpoint.p50Millis, endpoint.p99Millis)
	return endpoint, nil
}

func run(ctx context.Context, s settings) error {
	if _, err := os.Stat(s.stackctl); err != nil {
		return fmt.Errorf("-stackctl %s: %w (build it with go build -o bin/ ./deploy/local/stackctl)", s.stackctl, err)
	}
	var micro []microResult
	if s.microFile != "" {
		raw, err := os.ReadFile(s.microFile)
		if err != nil {
			return fmt.Errorf("-micro: %w", err)
		}
		micro = parseGoBench(string(raw))
	}
	if s.workDir == "" {
		dir, err := os.MkdirTemp("", "flowproof-bench-")
		if err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }() // a temporary directory; nothing to do if it stays
		s.workDir = dir
	}

	addrs := localstack.FromEnv()
	batches := &batchMeter{}
	kafka, err := kafkaeos.Dial(addrs.KafkaBrokers, kgo.WithHooks(batches))
	if err != nil {
		return err
	}
	defer kafka.Close()
	cluster, err := newCluster(addrs.KafkaBrokers)
	if err != nil {
		return err
	}
	defer cluster.close()
	// Cleanup runs on a context of its own: the run's may be cancelled
	// already, and the topics must go anyway.
	defer func() {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := cluster.deleteAll(cleanupCtx); err != nil {
			fmt.Fprintf(os.Stderr, "bench: cleanup: %v\n", err)
		}
	}()

	b := &bench{s: s, kafka: kafka, batches: batches, cluster: cluster, brokers: addrs.KafkaBrokers,
		runID:     "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		loadStart: loadAverage()}
	b.othersStart = otherWork(ctx, cluster, addrs.FlinkURL, b.runID)
	fmt.Printf("bench run %s: %d records per side and round, %d rounds, %d partitions, load average %s; other work on the stack: %s\n",
		b.runID, s.records, s.rounds, s.partitions, b.loadStart, b.othersStart)

	if b.cpu, err = newCPUMeter(); err != nil {
		return err
	}
	fmt.Printf("the brokers' idle CPU: %.0f ms a second, the quietest of %d windows of %s (taken off each side's)\n", b.cpu.brokersIdle*1000, idleWindows, idleWindow)
	if err := b.producers(ctx); err != nil {
		return err
	}
	if s.consumers {
		if err := b.consumers(ctx); err != nil {
			return err
		}
	}
	endpoint, err := measureEndpoint(ctx, addrs, s)
	if err != nil {
		return err
	}
	b.loadEnd = loadAverage()
	b.othersEnd = otherWork(ctx, cluster, addrs.FlinkURL, b.runID)
	// The pipeline runs last: its Flink jobs and worker would otherwise
	// still be settling while the stages are measured alone.
	e2e := e2eFigures{skipped: "-e2e-messages 0 (BENCH_E2E_MESSAGES=0)"}
	if s.e2eMessages > 0 {
		e2e = b.endToEnd(ctx)
	}
	fmt.Println()
	printSummary(os.Stdout, summaryInput{
		settings: s, runID: b.runID, loadStart: b.loadStart, loadEnd: b.loadEnd, loadAfterE2E: loadAverage(),
		othersStart: b.othersStart, othersEnd: b.othersEnd,
		recordShape: b.shape, produce: b.produceRounds, consume: b.consumeRounds,
		endpoint: endpoint, micro: micro, e2e: e2e,
	})
	if e2e.failed != "" {
		return fmt.Errorf("end-to-end run: %s", e2e.failed)
	}
	return nil
}

// bench holds what the steps share.
type bench struct {
	s settings
	// kafka is the connection the activities' own code runs on.
	kafka   *kafkaeos.Conn
	batches *batchMeter // counts what kafka's producers write
	cluster *cluster
	cpu     *cpuMeter
	brokers []string
	runID   string

	shape         recordShape
	payloadFile   string
	produceRounds []produceRound
	consumeRounds []consumeRound

	loadStart, loadEnd     string
	othersStart, othersEnd string
}

// loadAverage is the 1, 5 and 15 minute load averages, or "unknown".
func loadAverage() string {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "unknown"
	}
	load, err := fs.LoadAvg()
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", load.Load1, load.Load5, load.Load15)
}

// report is where the activities' code logs and heartbeats in the
// benchmark: nowhere, since no activity runs.
var report = activities.Reporter{Log: log.NewStructuredLogger(slog.New(slog.DiscardHandler))}

func (b *bench) workFile(name string) string { return filepath.Join(b.s.workDir, name) }
