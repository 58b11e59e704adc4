// Package wiring builds every activity struct of flowproof from one worker
// configuration and lists them for registration, so the worker and the
// end-to-end tests build them the same way.
package wiring

import (
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/kafkaadmin"
	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/activities/preflight"
	"github.com/flowproof/flowproof/activities/produce"
	"github.com/flowproof/flowproof/activities/results"
	"github.com/flowproof/flowproof/activities/runmetrics"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// Config is what the worker knows about the systems a run touches.
type Config struct {
	KafkaBrokers []string
	// KafkaOptions are added to every Kafka client (TLS, SASL): those of
	// KafkaSecurity, and whatever else the caller adds.
	KafkaOptions []kgo.Opt
	// KafkaSecurity is what KafkaOptions were made from.
	KafkaSecurity kafkaconn.Settings
	// FlinkKafka is how the Flink jobs' Kafka clients connect: KafkaSecurity
	// as Java client properties, with Flink's own addresses and paths.
	FlinkKafka flink.Kafka

	FlinkURL      string
	SQLGatewayURL string

	// Temporal is how the worker's own client reaches Temporal (address,
	// namespace, TLS, API key); the health check dials with the same.
	Temporal client.Options

	EndpointURL string
	// ReferenceEndpointURL, when the endpoint is flowproof's reference one,
	// lets verification cross-check the endpoint's own count of each run;
	// empty for any other endpoint.
	ReferenceEndpointURL string
	TokenURL             string
	// TokenClientID and TokenClientSecret are the OAuth2 client credentials
	// for the token service. The secret comes from the environment, never
	// from workflow input.
	TokenClientID     string
	TokenClientSecret string
	// TokenKey seals tokens before they leave an activity (AES-256-GCM,
	// deliver.TokenKeyBytes long); every worker of a deployment needs the
	// same key.
	TokenKey []byte
	// TokenUnsealKeys open tokens sealed with other keys, but never seal
	// one: see deliver.Config.
	TokenUnsealKeys [][]byte

	// RunMetrics receives the figures of every run this worker records the
	// end of; the worker serves it on /metrics. Nil: a recorder of its own
	// that nobody serves.
	RunMetrics *runmetrics.Recorder
	// ResultsTopic is the compacted topic every run's result is kept in;
	// empty: results.DefaultTopic.
	ResultsTopic string

	// Notify is where failure notices go (the webhook URL is a secret);
	// NotifyCounts counts them for /metrics (nil: a count nobody serves).
	Notify       notify.Config
	NotifyCounts *notify.Counts
}

// Activities are the activity structs of one worker; they share one Kafka
// connection, which Close releases.
type Activities struct {
	Preflight  *preflight.Activities
	KafkaAdmin *kafkaadmin.Activities
	Flink      *flink.Activities
	Produce    *produce.Activities
	Deliver    *deliver.Activities
	Verify     *verify.Activities
	RunMetrics *runmetrics.Activities
	Results    *results.Activities
	Notify     *notify.Activities

	kafka          *kafkaeos.Conn
	writer         *produce.Writer
	deliverClients *deliver.Clients
}

// New builds the clients once. Without the Flink, endpoint or token
// service addresses, the activities that need them fail with a message
// saying so, and every other activity works.
func New(cfg Config) (*Activities, error) {
	kafka, err := kafkaeos.Dial(cfg.KafkaBrokers, cfg.KafkaOptions...)
	if err != nil {
		return nil, fmt.Errorf("activities: %w", err)
	}
	gateway, jobs, err := flinkClients(cfg)
	if err != nil {
		kafka.Close()
		return nil, err
	}
	deliverClients := deliver.NewClients(kafka)
	deliverActs, err := deliver.New(kafka, deliverClients, deliver.Config{
		EndpointURL:       cfg.EndpointURL,
		TokenURL:          cfg.TokenURL,
		TokenClientID:     cfg.TokenClientID,
		TokenClientSecret: cfg.TokenClientSecret,
		TokenKey:          cfg.TokenKey,
		TokenUnsealKeys:   cfg.TokenUnsealKeys,
	})
	if err != nil {
		kafka.Close()
		return nil, fmt.Errorf("activities: %w", err)
	}
	verifyActs, err := verify.New(kafka).CrossCheckWith(cfg.ReferenceEndpointURL)
	if err != nil {
		kafka.Close()
		return nil, fmt.Errorf("reference endpoint: %w", err)
	}
	writer := produce.NewWriter(kafka)
	recorder := cfg.RunMetrics
	if recorder == nil {
		recorder = runmetrics.NewRecorder()
	}
	return &Activities{
		Preflight: preflight.New(preflight.Config{
			KafkaBrokers:  cfg.KafkaBrokers,
			KafkaOptions:  cfg.KafkaOptions,
			FlinkURL:      cfg.FlinkURL,
			SQLGatewayURL: cfg.SQLGatewayURL,
			Temporal:      cfg.Temporal,
			EndpointURL:   cfg.EndpointURL,
			TokenURL:      cfg.TokenURL,
		}),
		KafkaAdmin:     kafkaadmin.New(kafka, jobs),
		Flink:          flink.New(cfg.FlinkKafka, gateway, jobs),
		Produce:        produce.New(writer),
		Deliver:        deliverActs,
		Verify:         verifyActs,
		RunMetrics:     runmetrics.New(recorder),
		Results:        results.New(results.NewStore(kafka, cfg.ResultsTopic)),
		Notify:         notify.New(cfg.Notify, cfg.NotifyCounts),
		kafka:          kafka,
		writer:         writer,
		deliverClients: deliverClients,
	}, nil
}

func flinkClients(cfg Config) (*flinksql.Gateway, *flinksql.JobManager, error) {
	var (
		gateway *flinksql.Gateway
		jobs    *flinksql.JobManager
		err     error
	)
	if cfg.SQLGatewayURL != "" {
		if gateway, err = flinksql.NewGateway(cfg.SQLGatewayURL, flinksql.Options{}); err != nil {
			return nil, nil, fmt.Errorf("activities: SQL Gateway client: %w", err)
		}
	}
	if cfg.FlinkURL != "" {
		if jobs, err = flinksql.NewJobManager(cfg.FlinkURL, flinksql.Options{}); err != nil {
			return nil, nil, fmt.Errorf("activities: JobManager client: %w", err)
		}
	}
	return gateway, jobs, nil
}

// Close releases the producers kept for the chunks' lanes and the shared
// Kafka connection.
func (a *Activities) Close() {
	if a.writer != nil {
		a.writer.Close()
	}
	if a.deliverClients != nil {
		a.deliverClients.Close()
	}
	if a.kafka != nil {
		a.kafka.Close()
	}
}

// All lists the activity structs, for worker.RegisterActivity: each
// exported method of each is one activity, registered by its name. A zero
// Activities lists empty structs, which is enough to register (and mock)
// the activities in a test.
func (a *Activities) All() []any {
	return []any{
		orZero(a.Preflight), orZero(a.KafkaAdmin), orZero(a.Flink),
		orZero(a.Produce), orZero(a.Deliver), orZero(a.Verify),
		orZero(a.RunMetrics), orZero(a.Results), orZero(a.Notify),
	}
}

func orZero[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}
