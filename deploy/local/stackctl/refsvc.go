package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
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

func (refServices) install(ctx context.Context, s *stack) error {
	return goBuild(ctx, s, refsvcBinary(s), "./deploy/refsvc")
}

func (refServices) start(_ context.Context, s *stack) error {
	if err := ensureSigningKey(signingKeyFile(s)); err != nil {
		return err
	}
	var env []string
	if os.Getenv(envClientSecret) == "" {
		env = append(env, envClientSecret+"="+localstack.TokenClientSecret)
	}
	bin, key := refsvcBinary(s), signingKeyFile(s)
	procs := []process{
		{
			name: tokenServiceProcess,
			argv: []string{bin, "token-service", "--listen", tokenServiceAddr(), "--signing-key-file", key},
			env:  env,
		},
		{
			name: endpointProcess,
			argv: []string{bin, "endpoint", "--listen", endpointAddr(), "--signing-key-file", key,
				"--journal-file", filepath.Join(s.dataDir("refsvc"), "endpoint.journal")},
		},
	}
	for _, p := range procs {
		if err := s.start(p); err != nil {
			return err
		}
	}
	return nil
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

func (refServices) check(ctx context.Context, _ *stack) health.Result {
	token := health.HTTPService(ctx, tokenServiceProcess, "http://"+tokenServiceAddr())
	ep := health.HTTPService(ctx, endpointProcess, "http://"+endpointAddr())
	return health.Result{
		Component:     "refsvc",
		Healthy:       token.Healthy && ep.Healthy,
		Detail:        strings.Join([]string{"token service: " + token.Detail, "endpoint: " + ep.Detail}, "; "),
		Addresses:     append(token.Addresses, ep.Addresses...),
		LatencyMillis: max(token.LatencyMillis, ep.LatencyMillis),
	}
}

func (refServices) processes(*stack) []string {
	return []string{tokenServiceProcess, endpointProcess}
}
