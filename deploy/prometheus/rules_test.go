// Package prometheus_test checks the committed Prometheus configuration and
// its alert rules with Prometheus' own promtool: the configuration parses,
// and the rules fire (and stay quiet) on the series of alerts_test.yml.
package prometheus_test

import (
	"os"
	"os/exec"
	"testing"
)

// promtool finds Debian's promtool, which `stackctl install --only
// prometheus` installs. Without it the test is skipped, saying so, unless
// FLOWPROOF_REQUIRE_PROMTOOL=1 (make test sets it once it installed it).
func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("FLOWPROOF_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool: %v (FLOWPROOF_REQUIRE_PROMTOOL=1)", err)
		}
		t.Skipf("SKIPPED, NOT CHECKED: promtool is not installed (bin/stackctl install --only prometheus): %v", err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args, out)
}

func TestAlertRules(t *testing.T) {
	promtool(t, "test", "rules", "alerts_test.yml")
}

func TestConfigAndRulesParse(t *testing.T) {
	// check config also checks the rule files it names.
	promtool(t, "check", "config", "prometheus.yml")
}
