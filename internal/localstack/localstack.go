// Package localstack holds the addresses and locations of the local stack
// that deploy/local/stackctl starts. The worker, the starter and the
// integration tests take their defaults from here, so the ports are written
// down once.
//
// Every address can be overridden by an environment variable (see Env* and
// FromEnv), which lets the same binaries and tests run against a stack on
// other ports or hosts.
package localstack

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"

	"github.com/flowproof/flowproof/internal/envconf"
)

// Environment variables that override the defaults.
const (
	EnvStackDir        = "FLOWPROOF_STACK_DIR"
	EnvCacheDir        = "FLOWPROOF_CACHE_DIR"
	EnvKafkaBrokers    = "FLOWPROOF_KAFKA_BROKERS"
	EnvFlinkURL        = "FLOWPROOF_FLINK_URL"
	EnvSQLGatewayURL   = "FLOWPROOF_SQL_GATEWAY_URL"
	EnvTemporalAddress = "TEMPORAL_ADDRESS" // Temporal's own convention
	EnvTemporalNS      = "TEMPORAL_NAMESPACE"
	EnvTemporalUIURL   = "FLOWPROOF_TEMPORAL_UI_URL"
	EnvEndpointURL     = "FLOWPROOF_ENDPOINT_URL"
	EnvTokenURL        = "FLOWPROOF_TOKEN_URL"
	// EnvReferenceEndpointURL names flowproof's reference endpoint when
	// it is the one delivered to, so verification can cross-check its own
	// per-run count; unset against any other endpoint.
	EnvReferenceEndpointURL = "FLOWPROOF_REFERENCE_ENDPOINT_URL"
	// EnvRedisAddress is the Redis of the reference endpoint's store
	// (host:port). Only the endpoint and the stack use it; the worker
	// never talks to Redis.
	EnvRedisAddress = "FLOWPROOF_REDIS_ADDRESS"
)

// Environment variables of the token client's credentials, read by every
// client of the token service. The secret is read from the environment
// only, never from a flag, which others could see in the process list.
const (
	EnvTokenClientID     = "FLOWPROOF_TOKEN_CLIENT_ID"
	EnvTokenClientSecret = "FLOWPROOF_TOKEN_CLIENT_SECRET"
)

// Ports of the local stack. All of them bind to 127.0.0.1.
const (
	Host = "127.0.0.1"

	KafkaBrokerPort1     = 19092
	KafkaBrokerPort2     = 19093
	KafkaBrokerPort3     = 19094
	KafkaControllerPort1 = 19192
	KafkaControllerPort2 = 19193
	KafkaControllerPort3 = 19194

	FlinkRESTPort       = 18081
	FlinkRPCPort        = 16123
	SQLGatewayPort      = 18083
	TemporalPort        = 17233
	TemporalUIPort      = 18233
	TemporalMetricsPort = 17234
	TokenServicePort    = 18090
	EndpointPort        = 18091
	PrometheusPort      = 19090
	RedisPort           = 16379
	WorkerMetricsPort   = 19464

	// Prometheus' JMX exporter agent in Kafka node N listens on
	// KafkaMetricsPortBase+N, in Flink TaskManager N on
	// FlinkTaskManagerMetricsPortBase+N (loopback only, like everything).
	KafkaMetricsPortBase            = 19400
	FlinkTaskManagerMetricsPortBase = 19500

	// The secure profile runs the Temporal server proper on PostgreSQL.
	// Its frontend takes TemporalPort, its UI TemporalUIPort and its
	// metrics TemporalMetricsPort, as the dev server's do; these are
	// PostgreSQL's and the ports of the services behind the frontend,
	// which no client dials.
	PostgresPort                   = 15432
	TemporalHistoryPort            = 17235
	TemporalMatchingPort           = 17236
	TemporalWorkerPort             = 17237
	TemporalFrontendMembershipPort = 17243
	TemporalHistoryMembershipPort  = 17244
	TemporalMatchingMembershipPort = 17245
	TemporalWorkerMembershipPort   = 17246
)

// TemporalNamespace is the namespace the dev server creates and the worker uses.
const TemporalNamespace = "default"

// TaskQueue is the Temporal task queue of the flowproof worker.
const TaskQueue = "flowproof"

// The reference token service's client credentials on the local stack. The
// secret is a development value, known to everyone who reads this file; a
// real deployment passes its own through the environment.
const (
	TokenClientID     = "flowproof"
	TokenClientSecret = "flowproof-local-secret"
)

// Addresses are the endpoints of one running stack.
type Addresses struct {
	KafkaBrokers      []string `json:"kafka_brokers"`
	FlinkURL          string   `json:"flink_url"`
	SQLGatewayURL     string   `json:"sql_gateway_url"`
	TemporalAddress   string   `json:"temporal_address"`
	TemporalNamespace string   `json:"temporal_namespace"`
	TemporalUIURL     string   `json:"temporal_ui_url"`
	EndpointURL       string   `json:"endpoint_url"`
	TokenURL          string   `json:"token_url"`
}

// FromEnv returns the local stack's addresses, each replaced by its
// environment variable (Env*) when that is set.
func FromEnv() Addresses {
	env := os.Getenv
	brokers := []string{hostPort(KafkaBrokerPort1), hostPort(KafkaBrokerPort2), hostPort(KafkaBrokerPort3)}
	return Addresses{
		KafkaBrokers:      envconf.SplitList(envconf.String(env, EnvKafkaBrokers, strings.Join(brokers, ","))),
		FlinkURL:          envconf.String(env, EnvFlinkURL, httpURL(FlinkRESTPort)),
		SQLGatewayURL:     envconf.String(env, EnvSQLGatewayURL, httpURL(SQLGatewayPort)),
		TemporalAddress:   envconf.String(env, EnvTemporalAddress, hostPort(TemporalPort)),
		TemporalNamespace: envconf.String(env, EnvTemporalNS, TemporalNamespace),
		TemporalUIURL:     envconf.String(env, EnvTemporalUIURL, httpURL(TemporalUIPort)),
		EndpointURL:       envconf.String(env, EnvEndpointURL, httpURL(EndpointPort)),
		TokenURL:          envconf.String(env, EnvTokenURL, httpURL(TokenServicePort)),
	}
}

// RedisServerBinary is where Debian's redis-server package installs Redis:
// the stack runs it, and an integration test runs one of its own with a
// small maxmemory.
const RedisServerBinary = "/usr/bin/redis-server"

// RedisAddress is the Redis of the reference endpoint's store: 127.0.0.1
// on RedisPort unless EnvRedisAddress says otherwise.
func RedisAddress() string { return envconf.String(os.Getenv, EnvRedisAddress, hostPort(RedisPort)) }

// RedisPasswordFile is where the stack keeps the Redis password (mode
// 0600): stackctl writes it once; the endpoint and the stack's checks read
// it.
func RedisPasswordFile(stackDir string) string {
	return filepath.Join(stackDir, "data", "redis", "redis.password")
}

// RedisPassword reads the password RedisPasswordFile keeps.
func RedisPassword(stackDir string) (string, error) {
	raw, err := os.ReadFile(RedisPasswordFile(stackDir))
	if err != nil {
		return "", fmt.Errorf("redis password: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// PostgresUser is the role the Temporal server logs in to PostgreSQL
// with; it owns Temporal's databases.
const PostgresUser = "temporal"

// PostgresPasswordFile is where the stack keeps PostgresUser's password
// (mode 0600): stackctl writes it once and gives it to the Temporal
// server and its schema tool; the stack's checks read it.
func PostgresPasswordFile(stackDir string) string {
	return filepath.Join(stackDir, "data", "postgres", "temporal.password")
}

// PostgresPassword reads the password PostgresPasswordFile keeps.
func PostgresPassword(stackDir string) (string, error) {
	raw, err := os.ReadFile(PostgresPasswordFile(stackDir))
	if err != nil {
		return "", fmt.Errorf("postgres password: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// TokenServiceURL is the local stack's token service, whatever the
// environment says; only it accepts TokenClientSecret.
func TokenServiceURL() string { return httpURL(TokenServicePort) }

// TemporalServiceAddress is the local stack's Temporal frontend, whatever
// the environment says.
func TemporalServiceAddress() string { return hostPort(TemporalPort) }

func hostPort(port int) string { return net.JoinHostPort(Host, strconv.Itoa(port)) }
func httpURL(port int) string  { return "http://" + hostPort(port) }

// StackDir is where the stack keeps its data, logs and pid files.
func StackDir() string {
	if dir := os.Getenv(EnvStackDir); dir != "" {
		return dir
	}
	return filepath.Join(homeDir(), ".local", "share", "flowproof", "stack")
}

// PIDFile is one of the stack's pid files, as stackctl writes them:
// "<pid> <start ticks>\n", the start time being field 22 of
// /proc/<pid>/stat (so a pid reused by a later process is told apart), or
// "<pid>\n" as written before start times were recorded (StartTicks 0).
type PIDFile struct {
	PID        int
	StartTicks uint64
}

// ParsePIDFile reads the content raw of the pid file at path.
func ParsePIDFile(path string, raw []byte) (PIDFile, error) {
	fields := strings.Fields(string(raw))
	if len(fields) == 0 || len(fields) > 2 {
		return PIDFile{}, fmt.Errorf("pid file %s: want \"<pid> <start ticks>\", got %q", path, raw)
	}
	var f PIDFile
	var err error
	if f.PID, err = strconv.Atoi(fields[0]); err != nil || f.PID <= 0 {
		return PIDFile{}, fmt.Errorf("pid file %s: bad pid %q", path, fields[0])
	}
	if len(fields) == 2 {
		if f.StartTicks, err = strconv.ParseUint(fields[1], 10, 64); err != nil {
			return PIDFile{}, fmt.Errorf("pid file %s: bad start time %q", path, fields[1])
		}
	}
	return f, nil
}

// StackPIDs are the process ids in the stack's pid files that match
// pattern (filepath.Match's, without ".pid": "kafka-*", "temporal"), for
// the tools that measure the stack's processes from /proc.
func StackPIDs(pattern string) ([]int, error) {
	run := filepath.Join(StackDir(), "run")
	files, err := filepath.Glob(filepath.Join(run, pattern+".pid"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no pid file %s.pid in %s: is the stack up (and %s its dir)?", pattern, run, EnvStackDir)
	}
	pids := make([]int, 0, len(files))
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := ParsePIDFile(path, raw)
		if err != nil {
			return nil, err
		}
		pids = append(pids, f.PID)
	}
	return pids, nil
}

// StackProcs are the processes of the stack's pid files that match pattern
// (StackPIDs), to read their CPU and memory from /proc.
func StackProcs(pattern string) ([]procfs.Proc, error) {
	pids, err := StackPIDs(pattern)
	if err != nil {
		return nil, err
	}
	procs := make([]procfs.Proc, 0, len(pids))
	for _, pid := range pids {
		proc, err := procfs.NewProc(pid)
		if err != nil {
			return nil, fmt.Errorf("%s pid %d: %w", pattern, pid, err)
		}
		procs = append(procs, proc)
	}
	return procs, nil
}

// CPUSeconds is the CPU time, user and system, that procs have used.
func CPUSeconds(procs []procfs.Proc) (float64, error) {
	var total float64
	for _, p := range procs {
		stat, err := p.Stat()
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", p.PID, err)
		}
		total += stat.CPUTime()
	}
	return total, nil
}

// CacheDir is where resolved jars and built binaries are kept, keyed by
// version, so fresh clones on the same machine reuse them.
func CacheDir() string {
	if dir := os.Getenv(EnvCacheDir); dir != "" {
		return dir
	}
	if dir := os.Getenv("XDG_CACHE_HOME"); dir != "" {
		return filepath.Join(dir, "flowproof")
	}
	return filepath.Join(homeDir(), ".cache", "flowproof")
}

func homeDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return home
	}
	return os.TempDir()
}

// The stack's worker gets WorkerStopTimeout as its -stop-timeout: how long
// its running activities may take to finish after SIGTERM. Closing its
// clients may take WorkerExitMargin more; a worker still running after both
// outlived its stop timeout (stackctl's down then kills it, the stop-worker
// drill reports it).
const (
	WorkerStopTimeout = 30 * time.Second
	WorkerExitMargin  = 10 * time.Second
)

// ProcessSignal is what `stackctl kill|stop --json` did to one process of
// the stack: one element of the JSON array it prints.
type ProcessSignal struct {
	Process string `json:"process"`
	PID     int    `json:"pid"`
	// Signal is the first signal sent: SIGKILL for kill, SIGTERM for stop.
	Signal string    `json:"signal"`
	SentAt time.Time `json:"sent_at"`
	// ExitedAfterMillis is the time from Signal until the process was gone.
	ExitedAfterMillis int64 `json:"exited_after_ms"`
	// KilledAfterMillis is set when stop's grace ran out: the time from
	// SIGTERM to the SIGKILL that followed.
	KilledAfterMillis int64 `json:"killed_after_ms,omitempty"`
}
