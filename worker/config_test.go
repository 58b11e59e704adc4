package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaultsAddressLocalStack(t *testing.T) {
	cfg, err := parseConfig(nil, envMap(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if cfg.taskQueue != "flowproof" {
		t.Errorf("task queue = %q, want flowproof", cfg.taskQueue)
	}
	if cfg.tokenClientID != "flowproof" {
		t.Errorf("token client id = %q, want flowproof", cfg.tokenClientID)
	}
	// Only the local stack's token service gets the built-in secret.
	if cfg.tokenClientSecret != localstack.TokenClientSecret {
		t.Errorf("token client secret was not the local stack's")
	}
	if cfg.metricsAddr != "127.0.0.1:19464" {
		t.Errorf("metrics addr = %q, want 127.0.0.1:19464", cfg.metricsAddr)
	}
	if cfg.kafka.Describe() != "plaintext" || len(cfg.kafkaOptions) != 0 {
		t.Errorf("kafka security = %s with %d client options, want plaintext and none", cfg.kafka.Describe(), len(cfg.kafkaOptions))
	}
}

func TestParseConfigFlagsAndEnvironment(t *testing.T) {
	env := envMap(map[string]string{
		localstack.EnvTokenClientID:     "ci",
		localstack.EnvTokenClientSecret: "s3cret",
		envMaxActivities:                "4",
		envMetricsAddr:                  "127.0.0.1:0",
	})
	cfg, err := parseConfig([]string{
		"-kafka-brokers", " k1:9092, k2:9092 ,",
		"-token-url", "https://tokens.example.test",
		"-max-concurrent-workflow-tasks", "8",
		"-temporal-address", "temporal.example.test:7233",
		"-log-format", "console",
	}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	if got := strings.Join(cfg.kafkaBrokers, ","); got != "k1:9092,k2:9092" {
		t.Errorf("brokers = %q", got)
	}
	if cfg.tokenClientID != "ci" || cfg.tokenClientSecret != "s3cret" {
		t.Errorf("token client = %q / secret from env not taken", cfg.tokenClientID)
	}
	if cfg.maxActivities != 4 || cfg.maxWorkflowTasks != 8 {
		t.Errorf("concurrency = %d activities, %d workflow tasks; want 4, 8", cfg.maxActivities, cfg.maxWorkflowTasks)
	}
	if cfg.temporal.Address != "temporal.example.test:7233" {
		t.Errorf("temporal address override = %q", cfg.temporal.Address)
	}
	if cfg.metricsAddr != "127.0.0.1:0" || cfg.logFormat != "console" {
		t.Errorf("metrics addr %q, log format %q", cfg.metricsAddr, cfg.logFormat)
	}
}

func TestParseConfigRejectsInvalidInputNamingTheField(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"-no-such-flag"}, nil, "no-such-flag"},
		{"positional", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"no brokers", []string{"-kafka-brokers", " , "}, nil, "-kafka-brokers"},
		{"bad url", []string{"-flink-url", "localhost:8081"}, nil, "-flink-url"},
		{"zero activities", []string{"-max-concurrent-activities", "0"}, nil, "-max-concurrent-activities"},
		{"bad env int", nil, map[string]string{envMaxActivities: "many"}, envMaxActivities},
		{"log format", []string{"-log-format", "xml"}, nil, "-log-format"},
		{"remote token service without secret", []string{"-token-url", "https://tokens.example.test"}, nil, localstack.EnvTokenClientSecret},
		{"sasl without mechanism", nil, map[string]string{kafkaconn.EnvSASLUser: "u", kafkaconn.EnvSASLPassword: "p"}, kafkaconn.EnvSASLMechanism},
		{"sasl without password", nil, map[string]string{kafkaconn.EnvSASLMechanism: "PLAIN", kafkaconn.EnvSASLUser: "u"}, kafkaconn.EnvSASLPassword},
		{"sasl unknown", nil, map[string]string{kafkaconn.EnvSASLMechanism: "GSSAPI", kafkaconn.EnvSASLUser: "u", kafkaconn.EnvSASLPassword: "p"}, "GSSAPI"},
		{"tls flag", nil, map[string]string{kafkaconn.EnvTLS: "yes please"}, kafkaconn.EnvTLS},
		{"pprof beyond loopback", []string{"-pprof", "-metrics-addr", "0.0.0.0:19464"}, nil, "-pprof"},
		{"pprof on a host name", nil, map[string]string{envPprof: "1", envMetricsAddr: "localhost:19464"}, "-pprof"},
		{"pprof without metrics", []string{"-pprof", "-metrics-addr", ""}, nil, "-pprof"},
		{"ca without tls", nil, map[string]string{kafkaconn.EnvTLSCAFile: "/ca.pem"}, kafkaconn.EnvTLS + "=1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, envMap(tc.env), &bytes.Buffer{})
			if err == nil {
				t.Fatalf("parseConfig accepted %v %v", tc.args, tc.env)
			}
			var usage usageError
			if !errors.As(err, &usage) {
				t.Errorf("error %v is not a usage error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	_, err := parseConfig(nil, envMap(map[string]string{
		kafkaconn.EnvSASLMechanism: "SCRAM-SHA-1", kafkaconn.EnvSASLUser: "alice", kafkaconn.EnvSASLPassword: "hunter2-password",
	}), &bytes.Buffer{})
	if err == nil || strings.Contains(err.Error(), "hunter2-password") {
		t.Fatalf("error %v: want a failure that does not contain the password", err)
	}
}

func TestTokenKeyIsGeneratedOnceAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "worker", "token.key")
	first, created, err := loadTokenKey(path, true)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	if len(first) != deliver.TokenKeyBytes || bytes.Equal(first, make([]byte, deliver.TokenKeyBytes)) {
		t.Fatalf("generated key is %d bytes / all zero", len(first))
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	second, created, err := loadTokenKey(path, true)
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	if !bytes.Equal(first, second) {
		t.Error("restart read a different key than was generated")
	}
}

func TestTokenKeyConcurrentGenerationAgrees(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.key")
	const workers = 8
	keys := make([][]byte, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, _, err := loadTokenKey(path, true)
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
			// A worker that lost the race must use the file's key, so read
			// the file as the next start would.
			onDisk, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
			if !bytes.Equal(key, onDisk) {
				keys[i] = nil
				return
			}
			keys[i] = key
		}()
	}
	wg.Wait()
	for i, k := range keys {
		if k == nil {
			t.Errorf("worker %d holds a key that is not the one on disk", i)
		}
	}
}

func TestTokenKeyConfiguredFile(t *testing.T) {
	dir := t.TempDir()
	want := []byte("0123456789abcdef0123456789abcdef")
	forms := map[string][]byte{
		"raw":    want,
		"hex":    []byte(hex.EncodeToString(want) + "\n"),
		"base64": []byte(base64.StdEncoding.EncodeToString(want) + "\n"),
	}
	for name, content := range forms {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		got, created, err := loadTokenKey(path, false)
		if err != nil || created || !bytes.Equal(got, want) {
			t.Errorf("%s: key %x created=%v err=%v", name, got, created, err)
		}
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("too short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadTokenKey(short, false); err == nil || !strings.Contains(err.Error(), "want 32 bytes") {
		t.Errorf("short key gave %v", err)
	}
	// A configured file that is missing is an error, not a reason to
	// generate a key nobody else has.
	missing := filepath.Join(dir, "missing")
	if _, _, err := loadTokenKey(missing, false); err == nil {
		t.Error("missing configured key file was accepted")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a key was generated for a configured file")
	}
}

// A worker generates its own key only against the local stack's Temporal
// and token service; against any other, it refuses to start without a key
// file and generates nothing.
func TestTokenKeyGeneratedOnlyOnTheLocalStack(t *testing.T) {
	stackDir := t.TempDir()
	t.Setenv(localstack.EnvStackDir, stackDir)
	local := config{tokenURL: localstack.TokenServiceURL()}
	keys, err := tokenKeys(local, localstack.TemporalServiceAddress())
	if err != nil || !keys.generated || keys.file != defaultTokenKeyFile() || len(keys.current) != deliver.TokenKeyBytes {
		t.Fatalf("local stack: keys %+v, err %v; want a generated key in the stack dir", keys.file, err)
	}
	if err := os.Remove(keys.file); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		cfg      config
		temporal string
	}{
		"own Temporal":      {local, "temporal.example:7233"},
		"own token service": {config{tokenURL: "https://auth.example/"}, localstack.TemporalServiceAddress()},
	} {
		_, err := tokenKeys(c.cfg, c.temporal)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), envTokenKeyFile) {
			t.Errorf("%s: err = %v, want a usage error naming %s", name, err, envTokenKeyFile)
		}
		if _, err := os.Stat(defaultTokenKeyFile()); err == nil {
			t.Fatalf("%s: a key was generated", name)
		}
	}
}

// A rotation's key ring: the current key file and the unseal key files,
// each loaded as given; a missing unseal key file is an error that names
// its variable.
func TestTokenKeyRingFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, key []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(hex.EncodeToString(key)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	current, previous := bytes.Repeat([]byte{1}, deliver.TokenKeyBytes), bytes.Repeat([]byte{2}, deliver.TokenKeyBytes)
	cfg, err := parseConfig([]string{"-token-key-file", write("current.key", current)},
		envMap(map[string]string{envTokenUnsealKeyFiles: write("previous.key", previous) + ", "}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := tokenKeys(cfg, "temporal.example:7233")
	if err != nil {
		t.Fatal(err)
	}
	if keys.generated || !bytes.Equal(keys.current, current) || len(keys.unseal) != 1 || !bytes.Equal(keys.unseal[0], previous) {
		t.Fatalf("ring: current %x, unseal %x, generated %v", keys.current, keys.unseal, keys.generated)
	}
	cfg.tokenUnsealKeyFiles = append(cfg.tokenUnsealKeyFiles, filepath.Join(dir, "missing.key"))
	if _, err := tokenKeys(cfg, "temporal.example:7233"); err == nil || !strings.Contains(err.Error(), envTokenUnsealKeyFiles) {
		t.Errorf("missing unseal key file: err = %v, want it named", err)
	}
	// Unseal keys alone leave nothing to seal with.
	_, err = parseConfig(nil, envMap(map[string]string{envTokenUnsealKeyFiles: filepath.Join(dir, "previous.key")}), &bytes.Buffer{})
	var usage usageError
	if !errors.As(err, &usage) {
		t.Errorf("unseal keys without a current key: err = %v, want a usage error", err)
	}
}

// selfSignedCAPEM makes a throwaway CA certificate for the pool tests.

// Flink reaches Kafka at the worker's brokers unless told otherwise, by
// flag over environment; the properties file's entries reach the jobs and
// a key the jobs own is refused at start.
func TestFlinkKafkaSettings(t *testing.T) {
	cfg, err := parseConfig([]string{"-kafka-brokers", "k1:9092"}, envMap(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.flinkKafka.Brokers, ","); got != "k1:9092" || len(cfg.flinkKafka.Properties) != 0 {
		t.Errorf("Flink's Kafka = %+v, want the worker's brokers and no properties", cfg.flinkKafka)
	}

	props := filepath.Join(t.TempDir(), "flink-kafka.properties")
	if err := os.WriteFile(props, []byte("client.dns.lookup=use_all_dns_ips\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envMap(map[string]string{kafkaconn.EnvFlinkBrokers: "env:9092", kafkaconn.EnvFlinkPropertiesFile: props})
	cfg, err = parseConfig([]string{"-kafka-brokers", "k1:9092", "-flink-kafka-brokers", "flag-1:9092,flag-2:9092"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.flinkKafka.Brokers, ","); got != "flag-1:9092,flag-2:9092" || cfg.flinkKafka.Properties["client.dns.lookup"] != "use_all_dns_ips" {
		t.Errorf("Flink's Kafka = %+v, want the flag's brokers and the file's property", cfg.flinkKafka)
	}

	if err := os.WriteFile(props, []byte("group.id=mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = parseConfig([]string{"-flink-kafka-properties-file", props}, envMap(nil), &bytes.Buffer{})
	var usage usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "group.id are set by the jobs themselves") {
		t.Errorf("a properties file setting group.id: %v, want a usage error naming the key", err)
	}
}

func TestFlinkServerNameWarning(t *testing.T) {
	env := map[string]string{kafkaconn.EnvTLS: "1", kafkaconn.EnvTLSServerName: "kafka.internal"}
	cfg, err := parseConfig([]string{"-kafka-brokers", "10.0.0.1:9093"}, envMap(env), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.flinkServerNameWarning(); !strings.Contains(w, "kafka.internal") || !strings.Contains(w, "10.0.0.1:9093") {
		t.Errorf("warning %q: want the server name and Flink's brokers", w)
	}
	props := filepath.Join(t.TempDir(), "flink.properties")
	if err := os.WriteFile(props, []byte("ssl.endpoint.identification.algorithm=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env[kafkaconn.EnvFlinkPropertiesFile] = props
	if cfg, err = parseConfig(nil, envMap(env), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if w := cfg.flinkServerNameWarning(); w != "" {
		t.Errorf("warning %q although the properties file settles the check", w)
	}
}

// TestFailureWebhookComesFromTheEnvironmentAndStaysSecret: the worker reads
// the webhook from its environment, hands it to the notices, and neither
// its start line nor a refusal quotes it; the UI base for links is not
// assumed.
func TestFailureWebhookComesFromTheEnvironmentAndStaysSecret(t *testing.T) {
	const hook = "https://hooks.example.com/services/T0/B0/s3cr3t"
	cfg, err := parseConfig(nil, envMap(map[string]string{notify.EnvWebhookURL: hook}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	acts := cfg.activitiesConfig(client.Options{}, tokenKeyRing{}, nil, nil)
	if acts.Notify.WebhookURL != hook || acts.Notify.TemporalUIURL != "" {
		t.Errorf("notify config %+v; want the webhook and no UI base", acts.Notify)
	}
	for _, field := range cfg.startFields(client.Options{}, tokenKeyRing{}) {
		if strings.Contains(field.String, "s3cr3t") {
			t.Errorf("start field %s quotes the webhook", field.Key)
		}
	}

	_, err = parseConfig(nil, envMap(map[string]string{notify.EnvWebhookURL: "hooks.example.com/s3cr3t"}), &bytes.Buffer{})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("got %v; want a refusal that does not quote the URL", err)
	}

	cfg, err = parseConfig([]string{"-temporal-ui-url", "https://temporal.example.com"}, envMap(nil), &bytes.Buffer{})
	if err != nil || cfg.activitiesConfig(client.Options{}, tokenKeyRing{}, nil, nil).Notify.TemporalUIURL != "https://temporal.example.com" {
		t.Errorf("-temporal-ui-url not taken: %v", err)
	}
}
