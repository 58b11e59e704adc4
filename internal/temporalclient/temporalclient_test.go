package temporalclient

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap"
)

// isolate points the profile lookup at a file that does not exist and
// clears the TEMPORAL_* variables, so the developer's own temporal.toml or
// environment cannot change the outcome.
func isolate(t *testing.T) {
	t.Helper()
	t.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(t.TempDir(), "absent.toml"))
	for _, key := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_PROFILE"} {
		t.Setenv(key, "") // restores the variable after the test
		if err := os.Unsetenv(key); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOptionsFallBackToLocalStack(t *testing.T) {
	isolate(t)
	opts, err := Options(Overrides{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "127.0.0.1:17233" || opts.Namespace != "default" {
		t.Errorf("got %s / %s, want the local stack's 127.0.0.1:17233 / default", opts.HostPort, opts.Namespace)
	}
	if Describe(opts) != "plaintext" {
		t.Errorf("describe = %q", Describe(opts))
	}
}

func TestOptionsPrecedence(t *testing.T) {
	isolate(t)
	profile := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(profile, []byte("[profile.default]\naddress = \"profile.example.test:7233\"\nnamespace = \"from-profile\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", profile)

	opts, err := Options(Overrides{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "profile.example.test:7233" || opts.Namespace != "from-profile" {
		t.Errorf("profile not applied: %s / %s", opts.HostPort, opts.Namespace)
	}

	t.Setenv("TEMPORAL_ADDRESS", "env.example.test:7233")
	t.Setenv("TEMPORAL_API_KEY", "not-a-real-key")
	opts, err = Options(Overrides{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "env.example.test:7233" || opts.Namespace != "from-profile" {
		t.Errorf("environment did not override the profile: %s / %s", opts.HostPort, opts.Namespace)
	}
	// An API key implies TLS, as in every Temporal SDK.
	if Describe(opts) != "TLS, API key" {
		t.Errorf("describe = %q, want TLS, API key", Describe(opts))
	}

	logger := Logger(zap.NewNop())
	opts, err = Options(Overrides{Address: "flag.example.test:7233", Namespace: "from-flag"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "flag.example.test:7233" || opts.Namespace != "from-flag" {
		t.Errorf("flags did not override: %s / %s", opts.HostPort, opts.Namespace)
	}
	if opts.Logger != logger {
		t.Error("logger not set")
	}
}

func TestEnvironmentVariablesAreThoseEnvconfigReads(t *testing.T) {
	names := EnvironmentVariables()
	for _, want := range []string{"TEMPORAL_CONFIG_FILE", "TEMPORAL_PROFILE", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_GRPC_META_<KEY>"} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvironmentVariables() = %v, lacks %s", names, want)
		}
	}
}
