// Package activities does the real work of a flowproof run: it talks to
// Kafka, Flink, the token service and the HTTP endpoint. The workflows in
// workflows/ only decide what happens when; everything with I/O is here.
//
// Activities are methods of *Activities, which holds the clients the worker
// builds once; each takes one small input struct and returns one result
// struct (see types.go), so histories stay readable and replayable.
package activities

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Config is what the worker knows about the systems a run touches.
type Config struct {
	KafkaBrokers []string
	// KafkaOptions are added to every Kafka client (TLS, SASL).
	KafkaOptions []kgo.Opt

	FlinkURL      string
	SQLGatewayURL string

	TemporalAddress   string
	TemporalNamespace string

	EndpointURL string
	TokenURL    string
	// TokenClientID and TokenClientSecret are the OAuth2 client credentials
	// for the token service. The secret comes from the environment, never
	// from workflow input.
	TokenClientID     string
	TokenClientSecret string
	// TokenKey seals tokens before they leave an activity (AES-256-GCM, 32
	// bytes); every worker of a deployment needs the same key.
	TokenKey []byte
}

// Activities holds the clients shared by every activity of a worker.
type Activities struct {
	cfg Config
	log *zap.Logger
	// kafka is a plain (non-transactional) client for metadata, admin
	// requests and reads; producers with transactional ids are made per chunk
	// or segment, because a transactional id belongs to one unit of work.
	kafka    *kgo.Client
	admin    *kadm.Client
	flink    flinkClients
	token    tokenClient
	endpoint endpointClient
}

// New builds the shared clients. Close releases them.
func New(cfg Config, log *zap.Logger) (*Activities, error) {
	if len(cfg.KafkaBrokers) == 0 {
		return nil, fmt.Errorf("activities: no Kafka brokers configured")
	}
	kafka, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.KafkaBrokers...)}, cfg.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("activities: kafka client: %w", err)
	}
	flink, err := newFlinkClients(cfg)
	if err != nil {
		kafka.Close()
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	token, err := newTokenClient(cfg, log)
	if err != nil {
		kafka.Close()
		return nil, err
	}
	endpoint, err := newEndpointClient(cfg, log)
	if err != nil {
		kafka.Close()
		return nil, err
	}
	return &Activities{
		cfg:      cfg,
		log:      log,
		kafka:    kafka,
		admin:    kadm.NewClient(kafka),
		flink:    flink,
		token:    token,
		endpoint: endpoint,
	}, nil
}

// Close releases the shared clients.
func (a *Activities) Close() {
	a.kafka.Close()
}

// newClient builds a Kafka client with the worker's connection options plus
// opts (a transactional id, consumed partitions, ...).
func (a *Activities) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	all := append([]kgo.Opt{kgo.SeedBrokers(a.cfg.KafkaBrokers...)}, a.cfg.KafkaOptions...)
	client, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return client, nil
}
