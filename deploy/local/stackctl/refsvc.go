package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// refServices is the reference token service and HTTP batch endpoint
// (deploy/refsvc): one binary built from this checkout, run as two processes
// that share a signing key kept in the stack's data dir.
type refServices struct{}

const (
	tokenServiceProcess = "token-service"
	endpointProcess     = "endpoint"
	// envClientSecret passes the token client's secret to the token
	// service (never a flag, which would show in the process list).
	envClientSecret = "FLOWPROOF_TOKEN_CLIENT_SECRET"
)

func (refServices) name() string { return "refsvc" }

func refsvcBinary(s *stack) string { return filepath.Join(s.repoDir, "bin", "refsvc") }

func signingKeyFile(s *stack) string { return filepath.Join(s.dataDir("refsvc"), "signing.key") }

func adminTokenFile(s *stack) string {
	return filepath.Join(s.dataDir("refsvc"), endpointapi.AdminTokenFile)
}

func (refServices) install(ctx context.Context, s *stack) error {
	return goBuild(ctx, s, refsvcBinary(s), "./deploy/refsvc")
}

func (refServices) start(_ context.Context, s *stack) error {
	if err := ensureSigningKey(signingKeyFile(s)); err != nil {
		return err
	}
	adminToken, err := ensureAdminToken(adminTokenFile(s))
	if err != nil {
		return err
	}
	secret := os.Getenv(envClientSecret)
	if secret == "" {
		secret = localstack.TokenClientSecret
	}
	// The journal the endpoint kept before its store moved to Redis only
	// grew; nothing reads it any more.
	if err := removeIfExists(filepath.Join(s.dataDir("refsvc"), "endpoint.journal")); err != nil {
		return fmt.Errorf("remove the old endpoint journal: %w", err)
	}
	for _, p := range refsvcProcesses(s, secret, adminToken) {
		if err := s.start(p); err != nil {
			return err
		}
	}
	return nil
}

// refsvcProcesses are the two services. Each gets its credential in its
// environment, never on the command line, and its own REFSVC_* settings;
// the endpoint reads the Redis password from the file stackctl keeps.
func refsvcProcesses(s *stack, clientSecret, adminToken string) []process {
	bin, key := refsvcBinary(s), signingKeyFile(s)
	return []process{
		{
			name:    tokenServiceProcess,
			argv:    []string{bin, "token-service", "--listen", tokenServiceAddr(), "--signing-key-file", key},
			env:     []string{envClientSecret + "=" + clientSecret},
			inherit: []string{"REFSVC_TOKEN_SERVICE_*"},
		},
		{
			name: endpointProcess,
			argv: []string{bin, "endpoint", "--listen", endpointAddr(), "--signing-key-file", key,
				"--redis-addr", redisAddr(), "--redis-password-file", localstack.RedisPasswordFile(s.dir)},
			env:     []string{endpointapi.EnvAdminToken + "=" + adminToken},
			inherit: []string{"REFSVC_ENDPOINT_*"},
		},
	}
}

func tokenServiceAddr() string {
	return fmt.Sprintf("%s:%d", localstack.Host, localstack.TokenServicePort)
}

func endpointAddr() string { return fmt.Sprintf("%s:%d", localstack.Host, localstack.EndpointPort) }

// ensureSigningKey writes a random key, readable by the owner only, unless
// the file exists: both services must keep using the key they started with.
func ensureSigningKey(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := tokens.NewKeyFile(path); err != nil {
		return err
	}
	logf("generated signing key %s", path)
	return nil
}

// ensureAdminToken returns the endpoint's admin token, generating it the
// first time. Clients of the fault API read the same file
// (endpointapi.LoadAdminToken).
func ensureAdminToken(path string) (string, error) {
	return ensureSecretFile(path, "endpoint admin token")
}

// minSecretBytes is the shortest secret a file of ensureSecretFile may hold;
// it meets endpointapi.MinAdminTokenBytes.
const minSecretBytes = 32

// ensureSecretFile returns the secret in path, first writing a random one,
// readable by the owner only, unless the file exists.
func ensureSecretFile(path, what string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if raw, err := os.ReadFile(path); err == nil {
		if secret := strings.TrimSpace(string(raw)); len(secret) >= minSecretBytes {
			return secret, nil
		}
		return "", fmt.Errorf("%s holds no %s of at least %d bytes; remove it to generate one", path, what, minSecretBytes)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return "", fmt.Errorf("generate %s: %w", what, err)
	}
	secret := hex.EncodeToString(random)
	// O_EXCL: a concurrent up that wrote the file first keeps its secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	logf("generated %s %s", what, path)
	return secret, nil
}

// check is healthy when both services and every dependency the endpoint
// reports (its Redis store) answer.
func (refServices) check(ctx context.Context, _ *stack) health.Result {
	rows := append(health.HTTPService(ctx, tokenServiceProcess, "http://"+tokenServiceAddr()),
		health.HTTPService(ctx, endpointProcess, "http://"+endpointAddr())...)
	res := health.Result{Component: "refsvc", Healthy: true}
	var details []string
	for _, row := range rows {
		res.Healthy = res.Healthy && row.Healthy
		details = append(details, strings.ReplaceAll(row.Component, "-", " ")+": "+row.Detail)
		res.Addresses = append(res.Addresses, row.Addresses...)
		res.LatencyMillis = max(res.LatencyMillis, row.LatencyMillis)
	}
	res.Detail = strings.Join(details, "; ")
	return res
}

func (refServices) processes(*stack) []string {
	return []string{tokenServiceProcess, endpointProcess}
}
