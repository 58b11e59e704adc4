//go:build integration

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
)

// secureStackFromEnv is the running secure stack that `stackctl env` told
// the test about; the test is skipped on the default profile.
func secureStackFromEnv(t *testing.T) (*stack, kafkaconn.Settings) {
	t.Helper()
	s := secureLiveStack(t)
	settings, err := kafkaconn.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return s, settings
}

// TestSecureKafkaServesSCRAMOverTLSOnly produces and consumes with the
// settings `stackctl env` gives, and checks that what lacks any part of
// them is refused, each for its own reason.
func TestSecureKafkaServesSCRAMOverTLSOnly(t *testing.T) {
	s, settings := secureStackFromEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := localstack.FromEnv().KafkaBrokers

	if res := (kafka{}).check(ctx, s); !res.Healthy {
		t.Fatalf("stackctl's own check of the secure Kafka: %s", res.Detail)
	}

	security, err := settings.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("client security: %s", settings.Describe())
	topic := fmt.Sprintf("stackctl-secure-%d", time.Now().UnixNano())
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, security...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	if _, err := admin.CreateTopic(ctx, 3, 3, nil, topic); err != nil {
		t.Fatalf("create %s (RF 3, so the brokers replicate over their own SASL_SSL listener): %v", topic, err)
	}
	defer func() { _, _ = admin.DeleteTopics(context.Background(), topic) }()
	const records = 100
	for i := range records {
		client.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// acks=all with min ISR 2: a produce that succeeded was replicated.
	seen := map[string]bool{}
	for len(seen) < records && ctx.Err() == nil {
		fetches := client.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 && ctx.Err() == nil {
			t.Fatalf("fetch: %v", errs)
		}
		fetches.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != records {
		t.Fatalf("consumed %d distinct records, produced %d", len(seen), records)
	}

	sha256 := settings
	sha256.SASLMechanism = kafkaconn.MechanismSCRAMSHA256
	sha256Security, err := sha256.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := metadataWith(ctx, brokers, sha256Security); err != nil {
		t.Errorf("the client user with SCRAM-SHA-256: %v", err)
	}

	wrongPassword := settings
	wrongPassword.SASLPassword += "-wrong"
	refusedSecurity, err := wrongPassword.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	tlsOnly := settings
	tlsOnly.SASLMechanism, tlsOnly.SASLUser, tlsOnly.SASLPassword = "", "", ""
	tlsOnlySecurity, err := tlsOnly.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		security []kgo.Opt
		want     func(error) bool
	}{
		{"wrong password", refusedSecurity, func(err error) bool { return errors.Is(err, kerr.SaslAuthenticationFailed) }},
		{"plaintext", nil, func(err error) bool { return err != nil }},
		{"TLS without SASL", tlsOnlySecurity, func(err error) bool { return err != nil }},
		{"SASL without trusting the stack's CA", []kgo.Opt{
			kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}),
			kgo.SASL(scram.Auth{User: settings.SASLUser, Pass: settings.SASLPassword}.AsSha512Mechanism()),
		}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "certificate") }},
	} {
		err := metadataWith(ctx, brokers, tc.security)
		t.Logf("%s: %v", tc.name, err)
		if !tc.want(err) {
			t.Errorf("%s: metadata request returned %v, want it refused", tc.name, err)
		}
	}
}

// metadataWith asks the cluster for its brokers with a fresh client of the
// given security, without retrying for long.
func metadataWith(ctx context.Context, brokers []string, security []kgo.Opt) error {
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...),
		kgo.DialTimeout(3 * time.Second), kgo.RetryTimeout(5 * time.Second), kgo.RequestRetries(1)}, security...)...)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = kadm.NewClient(client).BrokerMetadata(ctx)
	return err
}
