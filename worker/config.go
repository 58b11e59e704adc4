package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities/deliver"
	"github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/activities/notify"
	"github.com/flowproof/flowproof/internal/envconf"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/temporalclient"
)

// Environment variables of the worker beyond those of internal/localstack
// (addresses) and Temporal's own TEMPORAL_* variables.
const (
	envTokenKeyFile        = "FLOWPROOF_TOKEN_KEY_FILE"
	envTokenUnsealKeyFiles = "FLOWPROOF_TOKEN_UNSEAL_KEY_FILES"

	envMaxActivities    = "FLOWPROOF_WORKER_MAX_ACTIVITIES"
	envMaxWorkflowTasks = "FLOWPROOF_WORKER_MAX_WORKFLOW_TASKS"
	envMetricsAddr      = "FLOWPROOF_WORKER_METRICS_ADDR"
	envPprof            = "FLOWPROOF_WORKER_PPROF"
	envLogFormat        = "FLOWPROOF_LOG_FORMAT"
	envLogLevel         = "FLOWPROOF_LOG_LEVEL"
)

// config is everything the worker is told by flags and environment.
type config struct {
	temporal  temporalclient.Overrides
	taskQueue string

	kafkaBrokers []string
	kafka        kafkaconn.Settings
	// kafkaOptions apply kafka to every client the worker makes.
	kafkaOptions []kgo.Opt
	// flinkKafka is kafka as the Flink jobs' Kafka clients use it.
	flinkKafka    flink.Kafka
	flinkURL      string
	sqlGatewayURL string
	endpointURL   string
	// referenceEndpointURL is set when endpointURL is flowproof's reference endpoint.
	referenceEndpointURL string
	tokenURL             string
	// temporalUIURL is the base of the failure notices' links to a run;
	// webhookURL (a secret, from the environment only) receives them.
	temporalUIURL string
	webhookURL    string

	tokenClientID     string
	tokenClientSecret string
	// tokenKeyFile is the configured token sealing key file; empty means
	// the generated one under the stack dir, on the local stack only (see
	// tokenKeys).
	tokenKeyFile string
	// tokenUnsealKeyFiles hold further keys that open sealed tokens but
	// never seal one, for key rotation.
	tokenUnsealKeyFiles []string

	maxActivities    int
	maxWorkflowTasks int
	stopTimeout      time.Duration

	metricsAddr string
	// pprof serves Go's profiles under /debug/pprof/ next to /metrics;
	// only on a loopback metrics address, since they show the worker's
	// memory and goroutines to whoever can connect.
	pprof     bool
	logFormat string
	logLevel  string

	showVersion bool // -version: print the build and exit
}

// usageError is a configuration mistake of the caller; main exits with 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// parseConfig reads flags over environment defaults. getenv is os.Getenv
// outside tests. Secrets are read from the environment only, never from flags,
// which other users of the machine can see in the process list.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	local := localstack.FromEnv()
	var cfg config
	var brokers string
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.temporal.Address, "temporal-address", "", "Temporal frontend host:port (default: $TEMPORAL_ADDRESS, the temporal.toml profile, or "+local.TemporalAddress+")")
	fs.StringVar(&cfg.temporal.Namespace, "temporal-namespace", "", "Temporal namespace (default: $TEMPORAL_NAMESPACE, the temporal.toml profile, or "+localstack.TemporalNamespace+")")
	fs.StringVar(&cfg.taskQueue, "task-queue", localstack.TaskQueue, "task queue the worker polls")
	fs.StringVar(&brokers, "kafka-brokers", strings.Join(local.KafkaBrokers, ","), "comma-separated Kafka seed brokers ($"+localstack.EnvKafkaBrokers+")")
	flinkEnv := registerFlinkKafkaFlags(fs, getenv)
	fs.StringVar(&cfg.flinkURL, "flink-url", local.FlinkURL, "Flink REST URL ($"+localstack.EnvFlinkURL+")")
	fs.StringVar(&cfg.sqlGatewayURL, "sql-gateway-url", local.SQLGatewayURL, "Flink SQL Gateway URL ($"+localstack.EnvSQLGatewayURL+")")
	fs.StringVar(&cfg.endpointURL, "endpoint-url", local.EndpointURL, "HTTP batch endpoint URL ($"+localstack.EnvEndpointURL+")")
	fs.StringVar(&cfg.referenceEndpointURL, "reference-endpoint-url", getenv(localstack.EnvReferenceEndpointURL), "flowproof's reference endpoint, when it is the endpoint: verification then cross-checks its own count of each run ($"+localstack.EnvReferenceEndpointURL+"; empty for any other endpoint)")
	fs.StringVar(&cfg.tokenURL, "token-url", local.TokenURL, "token service URL ($"+localstack.EnvTokenURL+")")
	fs.StringVar(&cfg.tokenClientID, "token-client-id", envconf.String(getenv, localstack.EnvTokenClientID, localstack.TokenClientID), "OAuth2 client id at the token service ($"+localstack.EnvTokenClientID+"); the secret is read from $"+localstack.EnvTokenClientSecret+" only")
	fs.StringVar(&cfg.tokenKeyFile, "token-key-file", getenv(envTokenKeyFile), "file with the 32-byte token sealing key, raw, hex or base64, the same on every worker ($"+envTokenKeyFile+"; required unless Temporal and the token service are the local stack's, where it is generated once into "+defaultTokenKeyFile()+")")
	var unsealKeyFiles string
	fs.StringVar(&unsealKeyFiles, "token-unseal-key-files", getenv(envTokenUnsealKeyFiles), "comma-separated files of further keys that open sealed tokens but never seal one: the old key after a rotation, or the next key before it ($"+envTokenUnsealKeyFiles+")")
	fs.StringVar(&cfg.temporalUIURL, "temporal-ui-url", getenv(localstack.EnvTemporalUIURL), "Temporal Web UI base URL for the links in failure notices ($"+localstack.EnvTemporalUIURL+"; empty: notices have no link)")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", envconf.String(getenv, envMetricsAddr, fmt.Sprintf("%s:%d", localstack.Host, localstack.WorkerMetricsPort)), "listen address of the Prometheus /metrics endpoint, empty to disable ($"+envMetricsAddr+")")
	fs.StringVar(&cfg.logFormat, "log-format", envconf.String(getenv, envLogFormat, "json"), "log format: json or console ($"+envLogFormat+")")
	fs.StringVar(&cfg.logLevel, "log-level", envconf.String(getenv, envLogLevel, "info"), "log level: debug, info, warn or error ($"+envLogLevel+")")
	fs.DurationVar(&cfg.stopTimeout, "stop-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long running activities get to finish before the worker exits")
	maxActivities, err := envInt(getenv, envMaxActivities, 16)
	if err != nil {
		return config{}, err
	}
	maxWorkflowTasks, err := envInt(getenv, envMaxWorkflowTasks, 16)
	if err != nil {
		return config{}, err
	}
	fs.IntVar(&cfg.maxActivities, "max-concurrent-activities", maxActivities, "activities this worker runs at once ($"+envMaxActivities+")")
	fs.IntVar(&cfg.maxWorkflowTasks, "max-concurrent-workflow-tasks", maxWorkflowTasks, "workflow tasks this worker runs at once ($"+envMaxWorkflowTasks+")")
	pprof, err := envBool(getenv, envPprof)
	if err != nil {
		return config{}, err
	}
	fs.BoolVar(&cfg.pprof, "pprof", pprof, "also serve Go's profiles at /debug/pprof/ on the metrics address, which must then be a loopback one ($"+envPprof+")")
	fs.BoolVar(&cfg.showVersion, "version", false, "print the version and exit")
	fs.Usage = func() {
		_, _ = fmt.Fprintln(fs.Output(), "Usage of worker:")
		fs.PrintDefaults()
		_, _ = fmt.Fprint(fs.Output(), environmentHelp())
	}
	if err := fs.Parse(args); err != nil || cfg.showVersion {
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return cfg, err // -h or -version: nothing else matters
		}
		return config{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return config{}, usagef("unexpected argument %q: the worker takes flags only", fs.Arg(0))
	}

	return cfg.complete(getenv, flinkEnv, brokers, unsealKeyFiles)
}

// complete checks the parsed flags and reads what only the environment
// holds (secrets, Kafka security).
func (cfg config) complete(getenv, flinkEnv func(string) string, brokers, unsealKeyFiles string) (config, error) {
	cfg.kafkaBrokers = envconf.SplitList(brokers)
	cfg.tokenUnsealKeyFiles = envconf.SplitList(unsealKeyFiles)
	if len(cfg.tokenUnsealKeyFiles) > 0 && cfg.tokenKeyFile == "" {
		return config{}, usagef("-token-unseal-key-files needs -token-key-file ($%s): the current key is needed to seal with", envTokenKeyFile)
	}
	if len(cfg.kafkaBrokers) == 0 {
		return config{}, usagef("-kafka-brokers: at least one broker is needed")
	}
	for name, raw := range map[string]string{"-flink-url": cfg.flinkURL, "-sql-gateway-url": cfg.sqlGatewayURL, "-endpoint-url": cfg.endpointURL, "-token-url": cfg.tokenURL} {
		if err := checkHTTPURL(raw); err != nil {
			return config{}, usagef("%s: %w", name, err)
		}
	}
	if err := cfg.checkSettings(); err != nil {
		return config{}, err
	}

	if cfg.temporalUIURL != "" {
		if err := checkHTTPURL(cfg.temporalUIURL); err != nil {
			return config{}, usagef("-temporal-ui-url: %w", err)
		}
	}
	webhookURL, err := notify.WebhookURLFromEnv(getenv)
	if err != nil {
		return config{}, usageError{err}
	}
	cfg.webhookURL = webhookURL

	secret, err := tokenClientSecret(getenv, cfg.tokenURL)
	if err != nil {
		return config{}, err
	}
	cfg.tokenClientSecret = secret
	if cfg.kafka, err = kafkaconn.FromEnv(getenv); err != nil {
		return config{}, usageError{err}
	}
	if cfg.kafkaOptions, err = cfg.kafka.ClientOptions(); err != nil {
		return config{}, usageError{err}
	}
	if cfg.flinkKafka, err = flink.KafkaFromEnv(flinkEnv, cfg.kafka, cfg.kafkaBrokers); err != nil {
		return config{}, usageError{err}
	}
	return cfg, nil
}

// environmentHelp ends -help with the variables that have no flag: the
// secrets, Kafka's TLS and SASL settings, and Temporal's own variables.
func environmentHelp() string {
	var b strings.Builder
	b.WriteString("\nEnvironment only (secrets stay out of the process list):\n")
	variables := append([]kafkaconn.Variable{
		{Name: localstack.EnvTokenClientSecret, Meaning: "OAuth2 client secret at the token service"},
		{Name: notify.EnvWebhookURL, Meaning: "webhook (Slack-compatible) that gets a notice of every failed run; a secret"},
		{Name: notify.EnvWebhookURLFile, Meaning: "file holding that webhook URL, instead of " + notify.EnvWebhookURL},
	}, kafkaconn.Variables()...)
	for _, v := range variables {
		fmt.Fprintf(&b, "  %s\n    \t%s\n", v.Name, v.Meaning)
	}
	b.WriteString("Temporal's own variables, read as the temporal CLI reads them (a temporal.toml profile too):\n")
	for _, name := range temporalclient.EnvironmentVariables() {
		fmt.Fprintf(&b, "  %s\n", name)
	}
	return b.String()
}

// registerFlinkKafkaFlags adds the flags of Flink's own view of Kafka and
// returns the getenv that flink.KafkaFromEnv reads them with: a flag given
// wins over its FLOWPROOF_FLINK_KAFKA_* variable, and both unset take the
// worker's own settings.
func registerFlinkKafkaFlags(fs *flag.FlagSet, getenv func(string) string) func(string) string {
	flags := map[string]*string{}
	for _, f := range []struct{ name, env, usage string }{
		{"flink-kafka-brokers", kafkaconn.EnvFlinkBrokers, "comma-separated Kafka seed brokers as Flink reaches them (default: -kafka-brokers)"},
		{"flink-kafka-tls-ca-file", kafkaconn.EnvFlinkTLSCAFile, "the Kafka CA file's path on Flink's hosts (default: $" + kafkaconn.EnvTLSCAFile + ")"},
		{"flink-kafka-tls-keystore-file", kafkaconn.EnvFlinkTLSKeystoreFile, "with a client certificate: one PEM file on Flink's hosts with the PKCS#8 key and the certificate chain (default: $" + kafkaconn.EnvTLSCertFile + " when it holds the key too)"},
		{"flink-kafka-properties-file", kafkaconn.EnvFlinkPropertiesFile, "Java properties file of more Kafka client settings for every Kafka table of the Flink jobs"},
	} {
		flags[f.env] = fs.String(f.name, "", f.usage+" ($"+f.env+")")
	}
	return func(key string) string {
		if v, ok := flags[key]; ok && strings.TrimSpace(*v) != "" {
			return *v
		}
		return getenv(key)
	}
}

// flinkServerNameWarning says, when the worker checks the brokers'
// certificates against a name of its own, that Flink's Kafka client cannot:
// it checks them against the addresses it dials, and the jobs fail unless
// those are names the certificates carry or the check is turned off.
func (cfg config) flinkServerNameWarning() string {
	if cfg.kafka.ServerName == "" {
		return ""
	}
	if _, set := cfg.flinkKafka.Properties["ssl.endpoint.identification.algorithm"]; set {
		return ""
	}
	return fmt.Sprintf("%s is %q, which Flink's Kafka client cannot be given: it checks the brokers' certificates against %s; "+
		"give Flink addresses the certificates name (%s) or set ssl.endpoint.identification.algorithm in %s",
		kafkaconn.EnvTLSServerName, cfg.kafka.ServerName, strings.Join(cfg.flinkKafka.Brokers, ","), kafkaconn.EnvFlinkBrokers, kafkaconn.EnvFlinkPropertiesFile)
}

// checkSettings checks the settings that need no I/O to be judged.
func (cfg config) checkSettings() error {
	if cfg.taskQueue == "" {
		return usagef("-task-queue: must not be empty")
	}
	if cfg.tokenClientID == "" {
		return usagef("-token-client-id: must not be empty")
	}
	if cfg.maxActivities < 1 {
		return usagef("-max-concurrent-activities: must be at least 1, got %d", cfg.maxActivities)
	}
	if cfg.maxWorkflowTasks < 2 {
		// The SDK needs two slots: one for the sticky and one for the
		// normal workflow task queue.
		return usagef("-max-concurrent-workflow-tasks: must be at least 2, got %d", cfg.maxWorkflowTasks)
	}
	if cfg.stopTimeout < 0 {
		return usagef("-stop-timeout: must not be negative, got %s", cfg.stopTimeout)
	}
	if cfg.pprof && !isLoopbackAddr(cfg.metricsAddr) {
		return usagef("-pprof: the metrics address must be a loopback one (127.0.0.1:port or [::1]:port), got %q", cfg.metricsAddr)
	}
	if cfg.logFormat != "json" && cfg.logFormat != "console" {
		return usagef("-log-format: want json or console, got %q", cfg.logFormat)
	}
	return nil
}

// tokenClientSecret reads the token client's secret. Without one, the
// worker only proceeds against the local stack's token service, whose
// secret is public knowledge anyway; so a real deployment cannot run on it
// by accident.
func tokenClientSecret(getenv func(string) string, tokenURL string) (string, error) {
	if secret := getenv(localstack.EnvTokenClientSecret); secret != "" {
		return secret, nil
	}
	if sameURL(tokenURL, localstack.TokenServiceURL()) {
		return localstack.TokenClientSecret, nil
	}
	return "", usagef("%s must be set: the token service %s is not the local stack's", localstack.EnvTokenClientSecret, tokenURL)
}

// tokenKeys are the worker's token keys: the current one, which seals,
// and the unseal keys. Without a configured key file, a key is generated
// (once, into the stack dir) only when the worker talks to the local
// stack's own Temporal and token service: every worker of that stack runs
// on this machine and reads the same file. Anywhere else, a second worker
// host would seal with a key of its own, so the worker refuses to start.
func tokenKeys(cfg config, temporalAddress string) (keys tokenKeyRing, err error) {
	keys.file = cfg.tokenKeyFile
	generate := false
	if keys.file == "" {
		if temporalAddress != localstack.TemporalServiceAddress() || !sameURL(cfg.tokenURL, localstack.TokenServiceURL()) {
			return tokenKeyRing{}, usagef("no token sealing key: set %s (or -token-key-file) to a file with a 32-byte key, the same on every worker"+
				" (for example: head -c 32 /dev/urandom > token.key; chmod 600 token.key); a worker generates its own key only against"+
				" the local stack's Temporal (%s) and token service (%s), not against %s and %s",
				envTokenKeyFile, localstack.TemporalServiceAddress(), localstack.TokenServiceURL(), temporalAddress, cfg.tokenURL)
		}
		keys.file, generate = defaultTokenKeyFile(), true
	}
	keys.current, keys.generated, err = loadTokenKey(keys.file, generate)
	if err != nil {
		return tokenKeyRing{}, err
	}
	for _, path := range cfg.tokenUnsealKeyFiles {
		key, _, err := loadTokenKey(path, false)
		if err != nil {
			return tokenKeyRing{}, fmt.Errorf("%s: %w", envTokenUnsealKeyFiles, err)
		}
		keys.unseal = append(keys.unseal, key)
	}
	return keys, nil
}

// tokenKeyRing is what tokenKeys loaded.
type tokenKeyRing struct {
	current   []byte
	unseal    [][]byte
	file      string
	generated bool
	ids       []string // for the log: current first
}

// defaultTokenKeyFile is where a worker without FLOWPROOF_TOKEN_KEY_FILE
// keeps its generated key, next to the rest of the local stack's data.
func defaultTokenKeyFile() string {
	return filepath.Join(localstack.StackDir(), "data", "worker", "token.key")
}

// loadTokenKey reads the sealing key from path. With generate set (no file
// was configured) a missing file is created with a fresh random key, so that
// a restarted worker can still unseal the tokens already in workflow
// histories.
func loadTokenKey(path string, generate bool) (key []byte, created bool, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && generate {
		key = make([]byte, deliver.TokenKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, false, fmt.Errorf("generate token key: %w", err)
		}
		var installed bool
		installed, err = writeKeyFile(path, key)
		if err != nil {
			return nil, false, err
		}
		if installed {
			return key, true, nil
		}
		// Another worker created the file first: use its key.
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read token key file %s: %w", path, err)
	}
	key, err = decodeKey(raw)
	if err != nil {
		return nil, false, fmt.Errorf("token key file %s: %w", path, err)
	}
	return key, false, nil
}

// writeKeyFile creates path exclusively, so two workers starting at once
// cannot each use a different key: installed is false when another process
// created the file first, and the caller reads that one.
func writeKeyFile(path string, key []byte) (installed bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("create token key dir: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token.key-")
	if err != nil {
		return false, fmt.Errorf("create token key file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename; only a failure leaves it
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close() // the error being returned says more
		return false, fmt.Errorf("chmod token key file: %w", err)
	}
	if _, err := tmp.Write(key); err != nil {
		_ = tmp.Close() // the error being returned says more
		return false, fmt.Errorf("write token key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close() // the error being returned says more
		return false, fmt.Errorf("sync token key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("close token key file: %w", err)
	}
	// A hard link fails if path exists, unlike rename, which would replace
	// a key another worker already uses; the file appears complete or not
	// at all.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("install token key file %s: %w", path, err)
	}
	return true, nil
}

// decodeKey accepts the key as 32 raw bytes or as hex or base64 text, the
// forms secret stores usually hand out.
func decodeKey(raw []byte) ([]byte, error) {
	if len(raw) == deliver.TokenKeyBytes {
		return raw, nil
	}
	text := strings.TrimSpace(string(raw))
	if key, err := hex.DecodeString(text); err == nil && len(key) == deliver.TokenKeyBytes {
		return key, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(text); err == nil && len(key) == deliver.TokenKeyBytes {
			return key, nil
		}
	}
	return nil, fmt.Errorf("want %d bytes, raw or as hex or base64 text; got %d bytes that decode to no such key", deliver.TokenKeyBytes, len(raw))
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http:// or https:// URL with a host, got %q", raw)
	}
	return nil
}

func sameURL(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

func envInt(getenv func(string) string, key string, fallback int) (int, error) {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, usagef("%s: want an integer, got %q", key, v)
	}
	return n, nil
}

// isLoopbackAddr reports whether host:port names a loopback IP; a name
// such as localhost does not count, since it resolves at listen time.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func envBool(getenv func(string) string, key string) (bool, error) {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usagef("%s: want 1/0 or true/false, got %q", key, v)
	}
	return b, nil
}
