// Package temporalclient builds the Temporal client options that the worker
// and the starter share. Connection settings follow Temporal's own
// conventions (the TEMPORAL_* environment variables and the temporal.toml
// profile file, read by go.temporal.io/sdk/contrib/envconfig), so a
// deployment configures flowproof exactly as it configures the temporal CLI;
// whatever is still unset falls back to the local stack.
package temporalclient

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/flowproof/flowproof/internal/localstack"
)

// Overrides are connection settings given on the command line. Empty fields
// leave what the environment or the profile file say.
type Overrides struct {
	Address   string
	Namespace string
}

// Options loads the client options in order of precedence: command-line
// overrides, TEMPORAL_* environment variables, the TOML profile
// (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE), and last the local stack's
// address and namespace.
func Options(overrides Overrides, logger log.Logger) (client.Options, error) {
	opts, err := envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("load temporal client configuration from TEMPORAL_* variables and profile: %w", err)
	}
	local := localstack.FromEnv()
	switch {
	case overrides.Address != "":
		opts.HostPort = overrides.Address
	case opts.HostPort == "":
		opts.HostPort = local.TemporalAddress
	}
	switch {
	case overrides.Namespace != "":
		opts.Namespace = overrides.Namespace
	case opts.Namespace == "":
		opts.Namespace = local.TemporalNamespace
	}
	opts.Logger = logger
	return opts, nil
}

// Dial connects with opts. The SDK checks the server on dial, so an
// unreachable or misconfigured server fails here rather than on first use.
func Dial(ctx context.Context, opts client.Options) (client.Client, error) {
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("dial temporal at %s (namespace %s, %s): %w", opts.HostPort, opts.Namespace, Describe(opts), err)
	}
	return c, nil
}

// Describe says how a client authenticates, for logs and errors, without
// revealing any credential.
func Describe(opts client.Options) string {
	tls := "plaintext"
	if opts.ConnectionOptions.TLS != nil {
		tls = "TLS"
	}
	if opts.Credentials != nil {
		return tls + ", API key"
	}
	return tls
}

// Logger routes the SDK's log lines into zap, under the name "temporal", so
// the worker writes one log stream in one format.
func Logger(z *zap.Logger) log.Logger {
	return log.NewStructuredLogger(slog.New(zapslog.NewHandler(z.Core(), zapslog.WithName("temporal"))))
}

// EnvironmentVariables are the TEMPORAL_* variables that Options reads, as
// the linked envconfig asks for them (so a newer SDK's list shows without
// an edit here), for the worker's and the starter's -help and for checking
// deployment manifests. TEMPORAL_GRPC_META_<KEY> stands for the gRPC
// headers envconfig collects by prefix.
func EnvironmentVariables() []string {
	asked := &recordingLookup{}
	// The file's path comes first, then the profile in it and the values
	// over it; the data given stands for the file so that no file is read.
	_, _ = envconfig.LoadClientConfig(envconfig.LoadClientConfigOptions{EnvLookup: asked})
	_, _ = envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{ConfigFileData: []byte("\n"), EnvLookup: asked})
	return asked.names
}

// recordingLookup is an empty environment that notes what is asked of it.
type recordingLookup struct{ names []string }

func (r *recordingLookup) LookupEnv(key string) (string, bool) {
	if !slices.Contains(r.names, key) {
		r.names = append(r.names, key)
	}
	return "", false
}

func (r *recordingLookup) Environ() []string {
	const prefixed = "TEMPORAL_GRPC_META_<KEY>"
	if !slices.Contains(r.names, prefixed) {
		r.names = append(r.names, prefixed)
	}
	return nil
}
