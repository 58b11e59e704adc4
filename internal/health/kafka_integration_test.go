//go:build integration

package health

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/internal/localstack"
)

// These tests need the local stack's Kafka: bin/stackctl up --only kafka.

func TestKafkaReportsThreeBrokersAndController(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	brokers := localstack.FromEnv().KafkaBrokers

	res := Kafka(ctx, brokers, BrokerNeed{Min: 3})
	if !res.Healthy {
		t.Fatalf("Kafka(%v, 3) unhealthy: %s", brokers, res.Detail)
	}
	if res.Component != "kafka" {
		t.Errorf("Component = %q, want kafka", res.Component)
	}
	if !strings.HasPrefix(res.Detail, "3 brokers (1,2,3), controller ") {
		t.Errorf("Detail = %q, want it to start with %q", res.Detail, "3 brokers (1,2,3), controller ")
	}
	t.Logf("%s (%d ms)", res.Detail, res.LatencyMillis)

	// Asking for more brokers than exist must fail, or the check proves nothing.
	if more := Kafka(ctx, brokers, BrokerNeed{Min: 4}); more.Healthy {
		t.Errorf("Kafka(%v, 4) healthy with 3 brokers: %s", brokers, more.Detail)
	}
	// A need with a reason says what needs the brokers it lacks.
	res = Kafka(ctx, brokers, BrokerNeed{Min: 4, By: "replication_factor 4"})
	if res.Healthy || !strings.HasPrefix(res.Detail, "replication_factor 4 needs 4 brokers; the cluster has 3 (1,2,3), controller ") {
		t.Errorf("Kafka(4 for replication_factor 4) = %+v, want unhealthy saying replication_factor 4 needs 4 brokers", res)
	}
}

func TestKafkaUnreachableIsUnhealthy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Port 1 on loopback has no listener.
	res := Kafka(ctx, []string{"127.0.0.1:1"}, BrokerNeed{Min: 1})
	if res.Healthy {
		t.Fatalf("Kafka on a closed port reported healthy: %s", res.Detail)
	}
	if !strings.Contains(res.Detail, "127.0.0.1:1") {
		t.Errorf("Detail = %q, want it to name the address", res.Detail)
	}
	t.Logf("closed port: %s", res.Detail)
}

func TestKafkaTopicRoundTripWithAcksAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := localstack.FromEnv().KafkaBrokers

	adminClient, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	// Registered before the topic's deletion, so it runs after it.
	t.Cleanup(adminClient.Close)
	admin := kadm.NewClient(adminClient)

	topic := fmt.Sprintf("flowproof-health-it-%d", time.Now().UnixNano())
	created, err := admin.CreateTopic(ctx, 6, 3, nil, topic)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if created.Err != nil {
		t.Fatalf("create topic %s: %v (%s)", topic, created.Err, created.ErrMessage)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := admin.DeleteTopic(ctx, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
	})

	details, err := admin.ListTopics(ctx, topic)
	if err != nil {
		t.Fatalf("describe topic %s: %v", topic, err)
	}
	detail := details[topic]
	if detail.Err != nil {
		t.Fatalf("describe topic %s: %v", topic, detail.Err)
	}
	if got := len(detail.Partitions); got != 6 {
		t.Errorf("%s has %d partitions, want 6", topic, got)
	}
	for _, p := range detail.Partitions {
		replicas := slices.Clone(p.Replicas)
		slices.Sort(replicas)
		if !slices.Equal(replicas, []int32{1, 2, 3}) {
			t.Errorf("%s partition %d replicas %v, want all of 1,2,3", topic, p.Partition, p.Replicas)
		}
	}

	producer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DefaultProduceTopic(topic),
	)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer producer.Close()
	const records = 12
	want := map[string]string{}
	var batch []*kgo.Record
	for i := range records {
		key, value := fmt.Sprintf("key-%02d", i), fmt.Sprintf("value-%02d-%d", i, time.Now().UnixNano())
		want[key] = value
		batch = append(batch, &kgo.Record{Key: []byte(key), Value: []byte(value)})
	}
	if err := producer.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		t.Fatalf("produce %d records with acks=all to %s: %v", records, topic, err)
	}
	partitionsUsed := map[int32]bool{}
	for _, r := range batch {
		partitionsUsed[r.Partition] = true
	}

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	got := map[string]string{}
	for len(got) < records {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline: %v", len(got), records, ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("fetch from %s: %v", topic, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) { got[string(r.Key)] = string(r.Value) })
	}
	for key, value := range want {
		if got[key] != value {
			t.Errorf("record %s = %q, want %q", key, got[key], value)
		}
	}
	t.Logf("topic %s: produced and consumed %d records across %d partitions", topic, records, len(partitionsUsed))
}
