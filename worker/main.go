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

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/activities/wiring"
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
		return 1
	}
	return 0
}

// tokenKeyOf loads the token sealing key, or generates it on first use
// when no key file is configured.
func tokenKeyOf(cfg config, logger *zap.Logger) (key []byte, keyFile string, err error) {
	keyFile, generate := cfg.tokenKeyFile, false
	if keyFile == "" {
		keyFile, generate = defaultTokenKeyFile(), true
	}
	key, created, err := loadTokenKey(keyFile, generate)
	if err != nil {
		return nil, "", err
	}
	if created {
		logger.Info("generated a token sealing key; every worker of this deployment needs the same one", zap.String("key_file", keyFile))
	} else if info, err := os.Stat(keyFile); err == nil && info.Mode().Perm()&0o077 != 0 {
		logger.Warn("token key file is readable by other users; chmod 600 it", zap.String("key_file", keyFile), zap.Stringer("mode", info.Mode().Perm()))
	}
	return key, keyFile, nil
}

// serve runs the worker until SIGINT or SIGTERM.
func serve(cfg config, logger *zap.Logger) error {
	tokenKey, keyFile, err := tokenKeyOf(cfg, logger)
	if err != nil {
		return err
	}

	sdkMetrics := newSDKMetrics()
	var metrics *metricsServer
	if cfg.metricsAddr != "" {
		metrics, err = startMetricsServer(cfg.metricsAddr, sdkMetrics, cfg.pprof, logger.Named("metrics"))
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

	clientOpts, err := temporalclient.Options(cfg.temporal, temporalclient.Logger(logger))
	if err != nil {
		return err
	}
	clientOpts.MetricsHandler = sdkMetrics.Handler()
	dialCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	temporal, err := temporalclient.Dial(dialCtx, clientOpts)
	cancel()
	if err != nil {
		return err
	}
	defer temporal.Close()

	// Activities log through the client's logger (activity.GetLogger),
	// which adds the workflow id, activity id and attempt to every line.
	acts, err := wiring.New(cfg.activitiesConfig(clientOpts, tokenKey))
	if err != nil {
		return fmt.Errorf("set up activities: %w", err)
	}
	defer acts.Close()

	activityHandBack := newHandBack(cfg.stopTimeout)
	w := worker.New(temporal, cfg.taskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.maxActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.maxWorkflowTasks,
		WorkerStopTimeout:                      cfg.stopTimeout,
		Interceptors:                           []interceptor.WorkerInterceptor{activityHandBack},
	})
	workflows.Register(w, acts)

	fields := []zap.Field{
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
		zap.String("token_client_id", cfg.tokenClientID),
		zap.String("token_key_file", keyFile),
		zap.Int("max_concurrent_activities", cfg.maxActivities),
		zap.Int("max_concurrent_workflow_tasks", cfg.maxWorkflowTasks),
	}
	if metrics != nil {
		fields = append(fields, zap.String("metrics_url", metrics.URL()))
	}
	logger.Info("worker starting", fields...)
	if warning := cfg.flinkServerNameWarning(); warning != "" {
		logger.Warn(warning)
	}

	// Run returns once SIGINT or SIGTERM arrived, the worker stopped
	// polling, and its running activities finished or, cancelled by
	// handBack, were handed back to Temporal (within -stop-timeout); the
	// deferred calls then release the Kafka clients and the connection.
	if err := w.Run(activityHandBack.relay(worker.InterruptCh())); err != nil {
		return fmt.Errorf("run worker on task queue %s: %w", cfg.taskQueue, err)
	}
	logger.Info("worker stopped")
	return nil
}

// activitiesConfig is the part of cfg the activities use.
func (cfg config) activitiesConfig(temporal client.Options, tokenKey []byte) wiring.Config {
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
		TokenKey:             tokenKey,
	}
}
