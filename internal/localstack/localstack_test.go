package localstack

import (
	"slices"
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
