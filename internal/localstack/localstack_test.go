package localstack

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFromEnvAppliesOverrides(t *testing.T) {
	for _, key := range []string{EnvKafkaBrokers, EnvFlinkURL, EnvSQLGatewayURL, EnvTemporalAddress, EnvTemporalNS, EnvTemporalUIURL, EnvEndpointURL, EnvTokenURL} {
		t.Setenv(key, "")
	}
	local := FromEnv()
	if !slices.Equal(local.KafkaBrokers, []string{"127.0.0.1:19092", "127.0.0.1:19093", "127.0.0.1:19094"}) || local.TokenURL != TokenServiceURL() {
		t.Errorf("local stack = %+v", local)
	}
	t.Setenv(EnvKafkaBrokers, " k1:9092, k2:9092 ")
	t.Setenv(EnvTemporalUIURL, "https://ui.example.test")
	got := FromEnv()
	if !slices.Equal(got.KafkaBrokers, []string{"k1:9092", "k2:9092"}) || got.TemporalUIURL != "https://ui.example.test" || got.FlinkURL != local.FlinkURL {
		t.Errorf("with overrides = %+v", got)
	}
}

func TestStackPIDsReadThePidFilesThatMatch(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvStackDir, dir)
	if _, err := StackPIDs("kafka-*"); err == nil || !strings.Contains(err.Error(), "is the stack up") {
		t.Fatalf("no run dir: %v, want an error that says to start the stack", err)
	}
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"kafka-1.pid": "101\n", "kafka-2.pid": "102 4242\n", "temporal.pid": "7"} {
		if err := os.WriteFile(filepath.Join(run, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if pids, err := StackPIDs("kafka-*"); err != nil || !slices.Equal(pids, []int{101, 102}) {
		t.Fatalf("kafka-*: %v, %v", pids, err)
	}
	if pids, err := StackPIDs("temporal"); err != nil || !slices.Equal(pids, []int{7}) {
		t.Fatalf("temporal: %v, %v", pids, err)
	}
	if err := os.WriteFile(filepath.Join(run, "redis.pid"), []byte("not a pid"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := StackPIDs("redis"); err == nil {
		t.Fatal("a pid file without a number was read")
	}
}
