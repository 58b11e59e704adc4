package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// redisMaxMemory bounds Redis; with noeviction a full Redis refuses new
// batches (the endpoint answers 503 and the client retries) rather than
// silently forgetting the answers that make retries idempotent.
const redisMaxMemory = "512mb"

// redisServer runs Debian's Redis as the reference endpoint's store (see
// deploy/refsvc/endpoint/store.go): bound to loopback, with a password
// generated once into the stack's data dir, its data (an append-only file)
// under the stack dir so that a restarted Redis keeps its keys.
type redisServer struct{}

const redisProcess = "redis"

func (redisServer) name() string { return "redis" }

func (redisServer) install(ctx context.Context, _ *stack) error {
	return installDebianPackage(ctx, "redis-server", localstack.RedisServerBinary)
}

func redisAddr() string { return fmt.Sprintf("%s:%d", localstack.Host, localstack.RedisPort) }

func (redisServer) start(_ context.Context, s *stack) error {
	dir := s.dataDir("redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	password, err := ensureSecretFile(localstack.RedisPasswordFile(s.dir), "Redis password")
	if err != nil {
		return err
	}
	config, err := redisConfig(dir, password)
	if err != nil {
		return err
	}
	// The file holds the password: owner only, like the password file.
	configFile := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", configFile, err)
	}
	if err := os.Chmod(configFile, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", configFile, err)
	}
	return s.start(process{name: redisProcess, argv: []string{localstack.RedisServerBinary, configFile}, dir: dir})
}

// redisConfig renders redis.conf. Redis reads the log from stdout, which
// stackctl sends to logs/redis.log.
func redisConfig(dataDir, password string) (string, error) {
	if strings.ContainsAny(dataDir, "\"\\\n") || strings.ContainsAny(password, "\"\\\n ") {
		return "", fmt.Errorf("redis config: %q cannot be written as a quoted string", dataDir)
	}
	settings := [][2]string{
		{"bind", localstack.Host},
		{"port", strconv.Itoa(localstack.RedisPort)},
		// Loopback and a password: protected mode has nothing to refuse.
		{"protected-mode", "yes"},
		{"requirepass", `"` + password + `"`},
		{"daemonize", "no"},
		{"supervised", "no"},
		{"logfile", `""`},
		{"dir", `"` + dataDir + `"`},
		// Every write goes to the append-only file, fsynced each second:
		// keys survive a restart of Redis. Redis rewrites the file from its
		// data once it is past 64 MB and twice its size after the last
		// rewrite, so the file stays bounded as the keys expire.
		{"appendonly", "yes"},
		{"appendfsync", "everysec"},
		{"auto-aof-rewrite-percentage", "100"},
		{"auto-aof-rewrite-min-size", "64mb"},
		{"save", `""`},
		{"maxmemory", redisMaxMemory},
		{"maxmemory-policy", "noeviction"},
	}
	var b strings.Builder
	b.WriteString("# Written by flowproof stackctl on every `up`; edits are overwritten.\n")
	for _, kv := range settings {
		b.WriteString(kv[0] + " " + kv[1] + "\n")
	}
	return b.String(), nil
}

// redisClient connects to the stack's Redis with its password.
func redisClient(s *stack) (*redis.Client, error) {
	password, err := localstack.RedisPassword(s.dir)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(&redis.Options{
		Addr: redisAddr(), Password: password,
		MaxRetries: -1, DialTimeout: 2 * time.Second,
	}), nil
}

// check sends PING after AUTH and reports the keys and memory in use.
func (redisServer) check(ctx context.Context, s *stack) health.Result {
	start := time.Now()
	detail, err := redisStatus(ctx, s)
	res := health.Result{Component: "redis", Healthy: err == nil, Detail: detail,
		Addresses: []string{redisAddr()}, LatencyMillis: time.Since(start).Milliseconds()}
	if err != nil {
		res.Detail = err.Error()
	}
	return res
}

func redisStatus(ctx context.Context, s *stack) (string, error) {
	client, err := redisClient(s)
	if err != nil {
		return "", err
	}
	defer func() { _ = client.Close() }()
	if err := client.Ping(ctx).Err(); err != nil {
		return "", fmt.Errorf("PING %s: %w", redisAddr(), err)
	}
	keys, err := client.DBSize(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("DBSIZE %s: %w", redisAddr(), err)
	}
	info, err := client.InfoMap(ctx, "server", "memory").Result()
	if err != nil {
		return "", fmt.Errorf("INFO %s: %w", redisAddr(), err)
	}
	return fmt.Sprintf("redis %s, %d keys, %s used of %s (%s)", info["Server"]["redis_version"], keys,
		info["Memory"]["used_memory_human"], info["Memory"]["maxmemory_human"], info["Memory"]["maxmemory_policy"]), nil
}

func (redisServer) processes(*stack) []string { return []string{redisProcess} }
