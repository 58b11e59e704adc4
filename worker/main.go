// Command worker runs flowproof's workflows and activities on the Temporal
// task queue "flowproof".
//
// Every setting has a flag and an environment variable (see -help); the
// defaults address the local stack (deploy/local). Temporal connection
// settings follow Temporal's conventions (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE).
// See docs/running.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/activities/runmetrics"
	"github.com/flowproof/flowproof/activities/wiring"
	"github.com/flowproof/flowproof/internal/searchattr"
	"github.com/flowproof/flowproof/internal/temporalclient"
	"github.com/flowproof/flowproof/internal/version"
	"github.com/flowproof/flowproof/internal/zaplog"
	"github.com/flowproof/flowproof/workflows"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run returns the exit code: 0 after a clean shutdown, 2 for invalid flags
// or environment, 1 for anything else.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if cfg.showVersion {
		fmt.Println(version.String("worker"))
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		var usage usageError
		if errors.As(err, &usage) {
			fmt.Fprintln(stderr, "Run 'worker -help' for the flags and environment variables.")
			return 2
		}
		return 1
	}
	logger, err := zaplog.New("worker", cfg.logFormat, cfg.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 2
	}
	defer func() { _ = logger.Sync() }()
	if err := serve(cfg, logger); err != nil {
		logger.Error("worker failed", zap.Error(err))
		var usage usageError
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	return 0
}

// tokenKeysOf loads the token keys and logs which ones, by id.
func tokenKeysOf(cfg config, temporalAddress string, logger *zap.Logger) (tokenKeyRing, error) {
	keys, err := tokenKeys(cfg, temporalAddress)
	if err != nil {
		return tokenKeyRing{}, err
	}
	// Ids, current first, tell which workers share which keys without
	// revealing any.
	keys.ids, err = deliver.KeyIDs(deliver.Config{TokenKey: keys.current, TokenUnsealKeys: keys.unseal})
	if err != nil {
		return tokenKeyRing{}, err
	}
	if keys.generated {
		logger.Info("generated a token sealing key; every worker of this deployment needs the same one", zap.String("key_file", keys.file))
	}
	for _, path := range append([]string{keys.file}, cfg.tokenUnsealKeyFiles...) {
		// Group bits are left alone: Kubernetes mounts a secret 0440 for
		// the pod's fsGroup, which is the pod's own.
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o007 != 0 {
			logger.Warn("token key file is readable by other users; chmod 600 (or 640) it", zap.String("key_file", path), zap.Stringer("mode", info.Mode().Perm()))
		}
	}
	return keys, nil
}

// serve runs the worker until SIGINT or SIGTERM.
func serve(cfg config, logger *zap.Logger) error {
	clientOpts, err := temporalclient.Options(cfg.temporal, temporalclient.Logger(logger))
	if err != nil {
		return err
	}
	tokenKeys, err := tokenKeysOf(cfg, clientOpts.HostPort, logger)
	if err != nil {
		return err
	}

	sdkMetrics := newSDKMetrics()
	runMetrics := runmetrics.NewRecorder()
	notices := notify.NewCounts()
	ready := newReadiness(cfg.taskQueue)
	var metrics *metricsServer
	if cfg.metricsAddr != "" {
		metrics, err = startMetricsServer(cfg.metricsAddr, []prometheus.Collector{sdkMetrics, runMetrics, notices}, ready, cfg.pprof, logger.Named("metrics"))
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := metrics.Shutdown(ctx); err != nil {
				logger.Warn("metrics server shutdown", zap.Error(err))
			}
		}()
	}

	clientOpts.MetricsHandler = sdkMetrics.Handler()
	temporal, err := connect(clientOpts, logger)
	if err != nil {
		return err
	}
	defer temporal.Close()

	// Activities log through the client's logger (activity.GetLogger),
	// which adds the workflow id, activity id and attempt to every line.
	acts, err := wiring.New(cfg.activitiesConfig(clientOpts, tokenKeys, runMetrics, notices))
	if err != nil {
		return fmt.Errorf("set up activities: %w", err)
	}
	defer acts.Close()

	activityHandBack := newHandBack(cfg.stopTimeout)
	fatal := make(chan error, 1)
	w := worker.New(temporal, cfg.taskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.maxActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.maxWorkflowTasks,
		WorkerStopTimeout:                      cfg.stopTimeout,
		Interceptors:                           []interceptor.WorkerInterceptor{activityHandBack},
		// The SDK calls this at most once; the buffer keeps it from blocking.
		OnFatalError: func(err error) { fatal <- err },
	})
	workflows.Register(w, acts)

	fields := cfg.startFields(clientOpts, tokenKeys)
	if metrics != nil {
		fields = append(fields, zap.String("metrics_url", metrics.URL()))
	}
	logger.Info("worker starting", fields...)
	if warning := cfg.flinkServerNameWarning(); warning != "" {
		logger.Warn(warning)
	}

	// runWorker returns once SIGINT or SIGTERM arrived, the worker stopped
	// polling, and its running activities finished or, cancelled by
	// handBack, were handed back to Temporal (within -stop-timeout); the
	// deferred calls then release the Kafka clients and the connection.
	if err := runWorker(w, activityHandBack.relay(worker.InterruptCh()), fatal, ready); err != nil {
		return fmt.Errorf("run worker on task queue %s: %w", cfg.taskQueue, err)
	}
	logger.Info("worker stopped")
	return nil
}

// startFields describe the worker's settings for its start-up log line,
// without any secret.
func (cfg config) startFields(clientOpts client.Options, tokenKeys tokenKeyRing) []zap.Field {
	return []zap.Field{
		zap.String("temporal_address", clientOpts.HostPort),
		zap.String("temporal_namespace", clientOpts.Namespace),
		zap.String("temporal_connection", temporalclient.Describe(clientOpts)),
		zap.String("task_queue", cfg.taskQueue),
		zap.Strings("kafka_brokers", cfg.kafkaBrokers),
		zap.String("kafka_security", cfg.kafka.Describe()),
		zap.Strings("flink_kafka_brokers", cfg.flinkKafka.Brokers),
		// Names only: values may be credentials.
		zap.Strings("flink_kafka_properties", slices.Sorted(maps.Keys(cfg.flinkKafka.Properties))),
		zap.String("flink_url", cfg.flinkURL),
		zap.String("sql_gateway_url", cfg.sqlGatewayURL),
		zap.String("endpoint_url", cfg.endpointURL),
		zap.String("token_url", cfg.tokenURL),
		zap.String("temporal_ui_url", cfg.temporalUIURL),
		// Whether, never where: the URL is a secret.
		zap.Bool("failure_webhook", cfg.webhookURL != ""),
		zap.String("token_client_id", cfg.tokenClientID),
		zap.String("token_key_file", tokenKeys.file),
		zap.Strings("token_unseal_key_files", cfg.tokenUnsealKeyFiles),
		zap.Strings("token_key_ids", tokenKeys.ids),
		zap.Int("max_concurrent_activities", cfg.maxActivities),
		zap.Int("max_concurrent_workflow_tasks", cfg.maxWorkflowTasks),
	}
}

// activitiesConfig is the part of cfg the activities use, with what they
// need of the worker: its Temporal client options, token keys and the
// recorder and notice counts its /metrics serves.
func (cfg config) activitiesConfig(temporal client.Options, tokenKeys tokenKeyRing, runMetrics *runmetrics.Recorder, notices *notify.Counts) wiring.Config {
	return wiring.Config{
		KafkaBrokers:         cfg.kafkaBrokers,
		KafkaOptions:         cfg.kafkaOptions,
		KafkaSecurity:        cfg.kafka,
		FlinkKafka:           cfg.flinkKafka,
		FlinkURL:             cfg.flinkURL,
		SQLGatewayURL:        cfg.sqlGatewayURL,
		Temporal:             temporal,
		EndpointURL:          cfg.endpointURL,
		ReferenceEndpointURL: cfg.referenceEndpointURL,
		TokenURL:             cfg.tokenURL,
		TokenClientID:        cfg.tokenClientID,
		TokenClientSecret:    cfg.tokenClientSecret,
		TokenKey:             tokenKeys.current,
		TokenUnsealKeys:      tokenKeys.unseal,
		RunMetrics:           runMetrics,
		Notify:               notify.Config{WebhookURL: cfg.webhookURL, TemporalUIURL: cfg.temporalUIURL},
		NotifyCounts:         notices,
	}
}

// connect dials Temporal and checks the namespace's search attributes.
func connect(opts client.Options, logger *zap.Logger) (client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := checkSearchAttributes(ctx, c, opts.Namespace, logger); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// checkSearchAttributes refuses a namespace without flowproof's search
// attributes: every run would fail its first workflow task there. A worker
// not allowed to list them (a narrow role) starts all the same.
func checkSearchAttributes(ctx context.Context, c client.Client, namespace string, logger *zap.Logger) error {
	err := searchattr.Check(ctx, c.OperatorService(), namespace)
	var missing *searchattr.MissingError
	var denied *serviceerror.PermissionDenied
	var unimplemented *serviceerror.Unimplemented
	switch {
	case err == nil:
		return nil
	case errors.As(err, &missing):
		return fmt.Errorf("%w; run 'starter setup' with this worker's Temporal settings to register them", err)
	case errors.As(err, &denied), errors.As(err, &unimplemented):
		logger.Warn("cannot check the namespace's search attributes; if they are missing, runs fail (see 'starter setup')", zap.Error(err))
		return nil
	default:
		return err
	}
}
