package flinksql

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/redact"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.sql from the generated SQL")

func contractEnrichJob() EnrichJob {
	return EnrichJob{
		Name:                  "flowproof.nightly-2026-11-27.enrich",
		Brokers:               []string{"127.0.0.1:19092", "127.0.0.1:19093", "127.0.0.1:19094"},
		SourceTopic:           "flowproof.nightly-2026-11-27.raw",
		SinkTopic:             "flowproof.nightly-2026-11-27.enriched",
		GroupID:               "flowproof.nightly-2026-11-27.enrich",
		TransactionalIDPrefix: "flowproof.nightly-2026-11-27.enrich",
		Parallelism:           3,
		CheckpointInterval:    2 * time.Second,
	}
}

func contractSplitJob() SplitJob {
	return SplitJob{
		Name:                  "flowproof.nightly-2026-11-27.split",
		Brokers:               []string{"kafka-1.internal:9092", "[::1]:9093"},
		SourceTopic:           "flowproof.nightly-2026-11-27.responses",
		SinkTopic:             "flowproof.nightly-2026-11-27.final",
		GroupID:               "flowproof.nightly-2026-11-27.split",
		TransactionalIDPrefix: "flowproof.nightly-2026-11-27.split",
		CheckpointInterval:    10 * time.Second,
		TransactionTimeout:    30 * time.Minute,
	}
}

// goldenPassword is the SASL password of the golden SQL: a made-up one,
// with the characters SQL and JAAS quoting must escape.
const goldenPassword = `g0lden'pa"ss\word`

// securedSplitJob is the split job on a SASL_SSL cluster with SCRAM, as
// the worker's settings make it (kafkaconn.Settings.JavaProperties), plus
// one passed-through property.
func securedSplitJob(t *testing.T) SplitJob {
	t.Helper()
	security := kafkaconn.Settings{
		TLS: true, CAFile: "/etc/kafka/ca.pem",
		SASLMechanism: kafkaconn.MechanismSCRAMSHA512, SASLUser: "flowproof", SASLPassword: goldenPassword,
	}
	props, err := security.JavaProperties(kafkaconn.JavaClient{CAFile: "/opt/flink/kafka-ca.pem", ClassPrefix: ShadedKafkaPackage})
	if err != nil {
		t.Fatal(err)
	}
	props["client.dns.lookup"] = "use_all_dns_ips"
	j := contractSplitJob()
	j.KafkaProperties = props
	return j
}

func TestGoldenSQL(t *testing.T) {
	cases := []struct {
		golden string
		job    SQLJob
	}{
		{"enrich.golden.sql", contractEnrichJob()},
		{"split.golden.sql", contractSplitJob()},
		{"split-sasl-ssl.golden.sql", securedSplitJob(t)},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			stmts, err := c.job.Statements()
			if err != nil {
				t.Fatalf("Statements: %v", err)
			}
			got := JoinScript(stmts)
			path := filepath.Join("testdata", c.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./flinksql -run TestGoldenSQL -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("generated SQL differs from %s (rerun with -update if the change is intended)\n--- got ---\n%s", path, got)
			}
		})
	}
}

func TestQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"plain":               "'plain'",
		"a'b":                 "'a''b'",
		"''":                  "''''''",
		`back\slash`:          `'back\slash'`,
		"x', 'connector'='fs": "'x'', ''connector''=''fs'",
	} {
		if got := quoteString(in); got != want {
			t.Errorf("quoteString(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"t":          "`t`",
		"a`b":        "`a``b`",
		"x` (y INT)": "`x`` (y INT)`",
	} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

// Hostile names must be refused by validation; the quoting underneath is
// checked by TestQuoting. Together they keep workflow input out of the SQL
// structure.
func TestHostileSettingsAreRefused(t *testing.T) {
	hostile := []struct {
		field  string
		mutate func(*EnrichJob)
	}{
		{"SinkTopic", func(j *EnrichJob) { j.SinkTopic = "a'b" }},
		{"SourceTopic", func(j *EnrichJob) { j.SourceTopic = "raw', 'properties.security.protocol' = 'PLAINTEXT" }},
		{"Name", func(j *EnrichJob) { j.Name = "x`; DROP TABLE y; --" }},
		{"GroupID", func(j *EnrichJob) { j.GroupID = "g\n'" }},
		{"TransactionalIDPrefix", func(j *EnrichJob) { j.TransactionalIDPrefix = "p'" }},
		{"Brokers[1]", func(j *EnrichJob) { j.Brokers[1] = "h:1','scan.startup.mode'='latest-offset" }},
		{"Brokers[0]", func(j *EnrichJob) { j.Brokers[0] = "a,b:9092" }},
	}
	for _, h := range hostile {
		j := contractEnrichJob()
		j.Brokers = append([]string(nil), j.Brokers...)
		h.mutate(&j)
		stmts, err := j.Statements()
		if err == nil {
			t.Errorf("%s: hostile value accepted; SQL:\n%s", h.field, JoinScript(stmts))
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != h.field || fe.Struct != "EnrichJob" {
			t.Errorf("%s: error %v does not name EnrichJob.%s", h.field, err, h.field)
		}
	}
}

func TestValidationMessages(t *testing.T) {
	j := contractEnrichJob()
	j.SinkTopic = "a'b"
	err := j.Validate()
	want := `flinksql: EnrichJob.SinkTopic "a'b": has '\'' at byte 1; only letters, digits, '.', '_' and '-' are allowed`
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v\nwant %s", err, want)
	}

	s := SplitJob{}
	err = s.Validate()
	if err == nil {
		t.Fatal("zero SplitJob validated")
	}
	for _, field := range []string{"Name", "SourceTopic", "SinkTopic", "GroupID", "TransactionalIDPrefix", "Brokers", "CheckpointInterval"} {
		if !strings.Contains(err.Error(), "SplitJob."+field+" ") {
			t.Errorf("zero SplitJob: error does not mention SplitJob.%s:\n%v", field, err)
		}
	}

	checks := []struct {
		mutate func(*SplitJob)
		want   string
	}{
		{func(j *SplitJob) { j.SinkTopic = j.SourceTopic }, "SplitJob.SinkTopic \"flowproof.nightly-2026-11-27.responses\": is the same as SourceTopic"},
		{func(j *SplitJob) { j.SinkTopic = strings.Repeat("t", 250) }, "is 250 characters long, at most 249 allowed"},
		{func(j *SplitJob) { j.SinkTopic = ".." }, `SplitJob.SinkTopic "..": must not be`},
		{func(j *SplitJob) { j.Brokers = []string{"localhost"} }, `SplitJob.Brokers[0] "localhost": want host:port`},
		{func(j *SplitJob) { j.Brokers = []string{"localhost:0"} }, `port "0" is not a number from 1 to 65535`},
		{func(j *SplitJob) { j.Brokers = []string{"bad_host:9092"} }, `host "bad_host" is not a valid DNS name`},
		{func(j *SplitJob) { j.Parallelism = -1 }, `SplitJob.Parallelism "-1": must be 0`},
		{func(j *SplitJob) { j.CheckpointInterval = 0 }, `SplitJob.CheckpointInterval "0s": must be at least 100ms`},
		{func(j *SplitJob) { j.TransactionTimeout = 2 * time.Hour }, `SplitJob.TransactionTimeout "2h0m0s": must be 0`},
		{func(j *SplitJob) { j.CheckpointInterval = 20 * time.Minute; j.TransactionTimeout = 0 },
			`SplitJob.TransactionTimeout "15m0s": must be longer than CheckpointInterval 20m0s`},
	}
	for _, c := range checks {
		j := contractSplitJob()
		c.mutate(&j)
		err := j.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, c.want)
		}
	}
}

func TestValidBrokers(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:19092", "localhost:9092", "kafka-1.prod.example:9093", "[::1]:9092", "[fe80::1]:65535"} {
		if p := checkBroker(ok); p != "" {
			t.Errorf("checkBroker(%q) = %q, want valid", ok, p)
		}
	}
}

func TestTableNamesAreDerivedAndSeparatePerJob(t *testing.T) {
	a, b := contractEnrichJob(), contractEnrichJob()
	b.Name = "flowproof.other-run.enrich"
	sa, _ := a.Statements()
	sb, _ := b.Statements()
	if JoinScript(sa) == JoinScript(sb) {
		t.Fatal("two jobs with different names generate the same SQL")
	}
	if !strings.Contains(JoinScript(sb), "`flowproof_other_run_enrich_raw`") {
		t.Errorf("table name not derived from job name:\n%s", JoinScript(sb))
	}
}

// Every Kafka table of a job gets the security properties, and the
// statements shown in errors (redact.Values with the job's Secrets) hold
// the password in no form.
func TestSecuredJobSQLCarriesTheSecurityToEveryTable(t *testing.T) {
	j := securedSplitJob(t)
	stmts, err := j.Statements()
	if err != nil {
		t.Fatal(err)
	}
	script := JoinScript(stmts)
	for _, want := range []string{
		"'properties.security.protocol' = 'SASL_SSL'",
		"'properties.sasl.mechanism' = 'SCRAM-SHA-512'",
		"'properties.sasl.jaas.config' = 'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule required username=\"flowproof\" password=\"g0lden''pa\\\"ss\\\\word\";'",
		"'properties.ssl.truststore.type' = 'PEM'",
		"'properties.ssl.truststore.location' = '/opt/flink/kafka-ca.pem'",
		"'properties.client.dns.lookup' = 'use_all_dns_ips'",
	} {
		if n := strings.Count(script, want); n != 2 {
			t.Errorf("%s appears %d times, want once in each of the two tables", want, n)
		}
	}
	shown := redact.Values(script, j.Secrets()...)
	for _, form := range []string{goldenPassword, "g0lden", `pa\"ss`, "jaas.config' = 'org"} {
		if strings.Contains(shown, form) {
			t.Errorf("redacted SQL still holds %q:\n%s", form, shown)
		}
	}
	if !strings.Contains(shown, "'properties.sasl.jaas.config' = 'REDACTED'") {
		t.Errorf("redacted SQL lost the property itself:\n%s", shown)
	}
}

func TestOwnedKafkaPropertiesAreRefused(t *testing.T) {
	j := contractEnrichJob()
	j.KafkaProperties = map[string]string{"group.id": "other", "Transactional.Id": "x", "bad key": "v", "fetch.max.bytes": "1048576"}
	err := j.Validate()
	if err == nil {
		t.Fatal("owned properties accepted")
	}
	for _, want := range []string{"EnrichJob.KafkaProperties", "Transactional.Id, group.id are set by the jobs themselves", `"bad key"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "other") {
		t.Errorf("error %q quotes a property's value", err)
	}
	j.KafkaProperties = map[string]string{"fetch.max.bytes": "1048576", "ssl.endpoint.identification.algorithm": ""}
	if err := j.Validate(); err != nil {
		t.Errorf("properties the jobs do not own refused: %v", err)
	}
}

func TestSecretKafkaProperties(t *testing.T) {
	for key, secret := range map[string]bool{
		"sasl.jaas.config": true, "ssl.key.password": true, "ssl.keystore.key": true,
		"sasl.oauthbearer.client.credentials.client.secret": true,
		"ssl.truststore.location":                           false, "security.protocol": false, "client.dns.lookup": false,
	} {
		if got := IsSecretKafkaProperty(key); got != secret {
			t.Errorf("IsSecretKafkaProperty(%s) = %v, want %v", key, got, secret)
		}
	}
}
