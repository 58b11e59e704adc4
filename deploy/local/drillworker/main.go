// Command drillworker serves the drill task queue (drillapi.TaskQueue) next
// to a local stack: the activities that kill, stop and restart the stack's
// processes and set the reference endpoint's faults. It runs only where
// stackctl runs the stack; a production worker never registers these
// activities, so it can never kill anything.
//
// The defaults address the local stack (internal/localstack); stackctl
// runs it as the opt-in component drill-worker (`stackctl up --with-drills`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/local/drills"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/envconf"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/temporalclient"
	"github.com/flowproof/flowproof/internal/version"
	"github.com/flowproof/flowproof/internal/zaplog"
	"github.com/flowproof/flowproof/workflows"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// config is what the drill worker is told by its flags.
type config struct {
	temporal     temporalclient.Overrides
	kafkaBrokers []string
	// kafkaSecurity is Kafka's TLS and SASL, from the FLOWPROOF_KAFKA_*
	// variables as the worker reads them (stackctl sets them on the secure
	// profile).
	kafkaSecurity kafkaconn.Settings
	flinkURL      string
	endpointURL   string
	stackDir      string
	repoDir       string
	stackctl      string
	// workerStopLimit is how long the stack's worker may take to exit after
	// SIGTERM before the stop-worker drill reports it.
	workerStopLimit time.Duration
	stopTimeout     time.Duration
	logFormat       string
	logLevel        string
	showVersion     bool
}

// usageError is a mistake on the command line; run exits with 2.
type usageError struct{ error }

func parseConfig(args []string, output io.Writer) (config, error) {
	local := localstack.FromEnv()
	cwd, err := os.Getwd()
	if err != nil {
		return config{}, err
	}
	var cfg config
	var brokers string
	fs := flag.NewFlagSet("drillworker", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.temporal.Address, "temporal-address", "", "Temporal frontend host:port (default: $TEMPORAL_ADDRESS, the temporal.toml profile, or "+local.TemporalAddress+")")
	fs.StringVar(&cfg.temporal.Namespace, "temporal-namespace", "", "Temporal namespace (default: $TEMPORAL_NAMESPACE, the temporal.toml profile, or "+localstack.TemporalNamespace+")")
	fs.StringVar(&brokers, "kafka-brokers", strings.Join(local.KafkaBrokers, ","), "comma-separated Kafka seed brokers of the local stack ($"+localstack.EnvKafkaBrokers+")")
	fs.StringVar(&cfg.flinkURL, "flink-url", local.FlinkURL, "Flink REST URL ($"+localstack.EnvFlinkURL+")")
	fs.StringVar(&cfg.endpointURL, "endpoint-url", local.EndpointURL, "the reference endpoint, whose fault API the endpoint drills use ($"+localstack.EnvEndpointURL+")")
	fs.StringVar(&cfg.stackDir, "stack-dir", localstack.StackDir(), "the local stack's dir, where the endpoint's admin token is kept ($"+localstack.EnvStackDir+")")
	fs.StringVar(&cfg.repoDir, "repo-dir", cwd, "the flowproof checkout whose stackctl runs the stack")
	fs.StringVar(&cfg.stackctl, "stackctl", "", "the stackctl binary (default: bin/stackctl of -repo-dir)")
	fs.DurationVar(&cfg.workerStopLimit, "worker-stop-limit", localstack.WorkerStopTimeout+localstack.WorkerExitMargin, "how long the stack's worker may take to exit after SIGTERM (its stop timeout and a margin)")
	fs.DurationVar(&cfg.stopTimeout, "stop-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long running activities get to finish")
	fs.StringVar(&cfg.logFormat, "log-format", envconf.String(os.Getenv, "FLOWPROOF_LOG_FORMAT", "json"), "log format: json or console ($FLOWPROOF_LOG_FORMAT)")
	fs.StringVar(&cfg.logLevel, "log-level", envconf.String(os.Getenv, "FLOWPROOF_LOG_LEVEL", "info"), "log level: debug, info, warn or error ($FLOWPROOF_LOG_LEVEL)")
	fs.BoolVar(&cfg.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return config{}, usageError{err}
	}
	if cfg.showVersion {
		return cfg, nil
	}
	if fs.NArg() > 0 {
		return config{}, usageError{fmt.Errorf("unexpected argument %q: the drill worker takes flags only", fs.Arg(0))}
	}
	if cfg.kafkaBrokers = envconf.SplitList(brokers); len(cfg.kafkaBrokers) == 0 {
		return config{}, usageError{errors.New("-kafka-brokers: at least one broker is needed")}
	}
	if cfg.stackctl == "" {
		cfg.stackctl = filepath.Join(cfg.repoDir, "bin", "stackctl")
	}
	if cfg.kafkaSecurity, err = kafkaconn.FromEnv(os.Getenv); err != nil {
		return config{}, usageError{err}
	}
	if cfg.workerStopLimit <= 0 || cfg.stopTimeout < 0 {
		return config{}, usageError{fmt.Errorf("-worker-stop-limit must be positive and -stop-timeout not negative, got %s and %s", cfg.workerStopLimit, cfg.stopTimeout)}
	}
	return cfg, nil
}

// run returns the exit code: 0 after a clean stop, 2 for a wrong command
// line, 1 for anything else.
func run(args []string, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "drillworker: %v\n", err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	case cfg.showVersion:
		fmt.Println(version.String("drillworker"))
		return 0
	}
	logger, err := zaplog.New("drillworker", cfg.logFormat, cfg.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "drillworker: %v\n", err)
		return 2
	}
	defer func() { _ = logger.Sync() }()
	if err := serve(cfg, logger); err != nil {
		logger.Error("drill worker failed", zap.Error(err))
		return 1
	}
	return 0
}

// newFaults builds the fault activities' clients.
func newFaults(cfg config) (*drills.Faults, func(), error) {
	if _, err := os.Stat(cfg.stackctl); err != nil {
		return nil, nil, fmt.Errorf("stackctl: %w (make build)", err)
	}
	token, err := endpointapi.LoadAdminToken(cfg.stackDir)
	if err != nil {
		return nil, nil, err
	}
	jm, err := flinksql.NewJobManager(cfg.flinkURL, flinksql.Options{})
	if err != nil {
		return nil, nil, err
	}
	security, err := cfg.kafkaSecurity.ClientOptions()
	if err != nil {
		return nil, nil, err
	}
	kafka, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.kafkaBrokers...)}, security...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	return &drills.Faults{
		Stackctl:        cfg.stackctl,
		RepoDir:         cfg.repoDir,
		Kafka:           kadm.NewClient(kafka),
		Flink:           jm,
		Endpoint:        endpointapi.AdminClient{BaseURL: cfg.endpointURL, Token: token},
		WorkerStopLimit: cfg.workerStopLimit,
	}, kafka.Close, nil
}

// serve runs the drill worker until SIGINT or SIGTERM.
func serve(cfg config, logger *zap.Logger) error {
	faults, closeFaults, err := newFaults(cfg)
	if err != nil {
		return fmt.Errorf("set up fault activities: %w", err)
	}
	defer closeFaults()
	clientOpts, err := temporalclient.Options(cfg.temporal, temporalclient.Logger(logger))
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	temporal, err := temporalclient.Dial(dialCtx, clientOpts)
	cancel()
	if err != nil {
		return err
	}
	defer temporal.Close()

	w := worker.New(temporal, drillapi.TaskQueue, worker.Options{WorkerStopTimeout: cfg.stopTimeout})
	workflows.RegisterDrill(w)
	w.RegisterActivityWithOptions(faults.ApplyFault, activity.RegisterOptions{Name: drillapi.ApplyFault})
	// Method names are the activity names: AwaitProgress, SampleProgress.
	w.RegisterActivity(&drills.Watch{
		Temporal: temporal, Kafka: faults.Kafka, EndpointURL: cfg.endpointURL,
		HTTP: &http.Client{Timeout: 5 * time.Second},
	})

	logger.Info("drill worker starting",
		zap.String("temporal_address", clientOpts.HostPort),
		zap.String("temporal_namespace", clientOpts.Namespace),
		zap.String("task_queue", drillapi.TaskQueue),
		zap.Strings("kafka_brokers", cfg.kafkaBrokers),
		zap.String("kafka_security", cfg.kafkaSecurity.Describe()),
		zap.String("flink_url", cfg.flinkURL),
		zap.String("endpoint_url", cfg.endpointURL),
		zap.String("stackctl", cfg.stackctl),
		zap.String("repo_dir", cfg.repoDir),
		zap.Duration("worker_stop_limit", cfg.workerStopLimit))
	if err := w.Run(worker.InterruptCh()); err != nil {
		return fmt.Errorf("run drill worker on task queue %s: %w", drillapi.TaskQueue, err)
	}
	logger.Info("drill worker stopped")
	return nil
}
