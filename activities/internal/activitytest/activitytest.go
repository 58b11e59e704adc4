// Package activitytest runs flowproof's activities as a worker would, for
// the tests of the activity packages: the names of a test run, an activity
// environment in which heartbeats and activity.GetLogger work, and a Kafka
// connection to the local stack.
package activitytest

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/kafkaeos"
	"github.com/flowproof/flowproof/internal/localstack"
)

// Names are the names of run: flowproof.<run>.raw and so on.
func Names(run string) activities.RunNames {
	p := "flowproof." + run + "."
	return activities.RunNames{
		RunID: run, RawTopic: p + "raw", EnrichedTopic: p + "enriched", ResponsesTopic: p + "responses",
		FinalTopic: p + "final", LedgerTopic: p + "ledger",
		EnrichGroup: p + "enrich", DeliverGroup: p + "deliver", SplitGroup: p + "split",
	}
}

// UniqueNames are names no other test run uses: the test's name and the
// time, or label and the time when label is set.
func UniqueNames(t testing.TB, label string) activities.RunNames {
	if label == "" {
		label = strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	}
	run := fmt.Sprintf("it-%s-%s", label, strconv.FormatInt(time.Now().UnixNano(), 36))
	return Names(strings.NewReplacer("/", "-", "_", "-").Replace(run))
}

// Env runs acts like a worker does, so heartbeats and activity loggers
// work.
func Env(acts ...any) *testsuite.TestActivityEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.SetTestTimeout(3 * time.Minute)
	for _, a := range acts {
		env.RegisterActivity(a)
	}
	return env
}

// EnvWithin is Env whose activity contexts descend from background, which
// lets a test cancel an activity midway.
func EnvWithin(background context.Context, acts ...any) *testsuite.TestActivityEnvironment {
	env := Env(acts...)
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: background})
	return env
}

// Execute runs the activity fn with in and decodes its result.
func Execute[T any](t testing.TB, env *testsuite.TestActivityEnvironment, fn any, in any) (T, error) {
	t.Helper()
	var out T
	val, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	if err := val.Get(&out); err != nil {
		t.Fatalf("decode activity result: %v", err)
	}
	return out, nil
}

// Conn connects to the local stack's Kafka and closes when the test ends.
func Conn(t testing.TB) *kafkaeos.Conn {
	t.Helper()
	return dial(t)
}

// EnvConn connects to the stack's Kafka with the environment's security
// settings (FLOWPROOF_KAFKA_*; none on the default profile), so a test or a
// benchmark runs against the secure profile too; opts are added to the
// client's.
func EnvConn(t testing.TB, opts ...kgo.Opt) *kafkaeos.Conn {
	t.Helper()
	security, err := kafkaconn.FromEnv(os.Getenv)
	if err != nil {
		t.Fatalf("kafka settings: %v", err)
	}
	securityOpts, err := security.ClientOptions()
	if err != nil {
		t.Fatalf("kafka settings: %v", err)
	}
	return dial(t, append(securityOpts, opts...)...)
}

// dial connects to the stack's Kafka with opts and closes when the test ends.
func dial(t testing.TB, opts ...kgo.Opt) *kafkaeos.Conn {
	t.Helper()
	conn, err := kafkaeos.Dial(localstack.FromEnv().KafkaBrokers, opts...)
	if err != nil {
		t.Fatalf("kafka: %v", err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// TokenKey is a fresh random token key.
func TokenKey(t testing.TB, size int) []byte {
	t.Helper()
	key := make([]byte, size)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

// ClientSecret is the token service's client secret: the environment's, or
// the local stack's.
func ClientSecret() string {
	if s := os.Getenv("FLOWPROOF_TOKEN_CLIENT_SECRET"); s != "" {
		return s
	}
	return localstack.TokenClientSecret
}

// Discard is a logger for code run outside an activity.
var Discard = log.NewStructuredLogger(slog.New(slog.DiscardHandler))

// DeleteRunAtCleanup deletes the run's topics and consumer groups when the
// test ends.
func DeleteRunAtCleanup(t testing.TB, conn *kafkaeos.Conn, names activities.RunNames) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := conn.Admin.DeleteTopics(ctx, names.Topics()...); err != nil {
			t.Errorf("delete topics of %s: %v", names.RunID, err)
		}
		_, _ = conn.Admin.DeleteGroups(ctx, names.Groups()...)
	})
}

// CreateTopics creates the given topics of names (RF 3, name to partition
// count) and deletes every topic and group of names when the test ends.
func CreateTopics(t testing.TB, conn *kafkaeos.Conn, names activities.RunNames, partitions map[string]int32) {
	t.Helper()
	DeleteRunAtCleanup(t, conn, names)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for topic, n := range partitions {
		resp, err := conn.Admin.CreateTopic(ctx, n, 3, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
}

// ConsumeCommitted reads topic from the start with an ordinary
// read_committed kgo consumer (deliberately not kafkaeos.CommittedReader,
// so the two check each other) until at least want records arrived and
// then nothing more for quiet.
func ConsumeCommitted(t testing.TB, topic string, want int, quiet time.Duration) []*kgo.Record {
	t.Helper()
	client, err := kgo.NewClient(
		kgo.SeedBrokers(localstack.FromEnv().KafkaBrokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer client.Close()
	var records []*kgo.Record
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fetches := client.PollFetches(ctx)
		cancel()
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("consume %s/%d: %v", topic, p, err)
			}
		})
		n := 0
		fetches.EachRecord(func(r *kgo.Record) { records = append(records, r); n++ })
		if n == 0 && len(records) >= want {
			return records
		}
	}
	t.Fatalf("consume %s: %d records after 2 minutes, want %d", topic, len(records), want)
	return nil
}

// CorrelationID is the contract's correlation id of seq, computed here
// independently of the code under test.
func CorrelationID(run string, seq int64) string {
	sum := md5.Sum([]byte(run + ":" + strconv.FormatInt(seq, 10)))
	return hex.EncodeToString(sum[:])
}
