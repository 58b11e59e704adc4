package flink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/kafkaconn"
)

const testPassword = "pw-Fl1nk-only"

var saslSSL = kafkaconn.Settings{
	TLS: true, CAFile: "/worker/ca.pem",
	SASLMechanism: kafkaconn.MechanismSCRAMSHA256, SASLUser: "flowproof", SASLPassword: testPassword,
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKafkaFromEnvDefaultsToTheWorkersSettings(t *testing.T) {
	props := writeFile(t, "flink-kafka.properties", "# for Flink only\nclient.dns.lookup = use_all_dns_ips\nssl.endpoint.identification.algorithm=\nfetch.max.bytes: 1048576\n")
	env := map[string]string{kafkaconn.EnvFlinkPropertiesFile: props}
	kafka, err := KafkaFromEnv(func(k string) string { return env[k] }, saslSSL, []string{"10.0.0.1:9093"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"security.protocol":                     "SASL_SSL",
		"sasl.mechanism":                        "SCRAM-SHA-256",
		"sasl.jaas.config":                      `org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule required username="flowproof" password="` + testPassword + `";`,
		"ssl.truststore.type":                   "PEM",
		"ssl.truststore.location":               "/worker/ca.pem",
		"client.dns.lookup":                     "use_all_dns_ips",
		"ssl.endpoint.identification.algorithm": "",
		"fetch.max.bytes":                       "1048576",
	}
	if fmt.Sprint(kafka.Properties) != fmt.Sprint(want) || fmt.Sprint(kafka.Brokers) != "[10.0.0.1:9093]" {
		t.Errorf("KafkaFromEnv = %+v\nwant properties %v and the worker's brokers", kafka, want)
	}

	env[kafkaconn.EnvFlinkBrokers] = "kafka-0.kafka:9093, kafka-1.kafka:9093"
	env[kafkaconn.EnvFlinkTLSCAFile] = "/opt/flink/ca.pem"
	kafka, err = KafkaFromEnv(func(k string) string { return env[k] }, saslSSL, []string{"10.0.0.1:9093"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(kafka.Brokers) != "[kafka-0.kafka:9093 kafka-1.kafka:9093]" || kafka.Properties["ssl.truststore.location"] != "/opt/flink/ca.pem" {
		t.Errorf("Flink's own brokers and CA path not used: %+v", kafka)
	}
}

func TestKafkaForRefusesWhatTheJobsOrTheSecuritySettingsOwn(t *testing.T) {
	for file, want := range map[string]string{
		"group.id=mine\nbootstrap.servers=x:1\n": "bootstrap.servers, group.id are set by the jobs themselves",
		"security.protocol=SSL\n":                "sets security.protocol, which the worker's Kafka security settings",
		"isolation.level=read_uncommitted\n":     "isolation.level are set by the jobs themselves",
	} {
		path := writeFile(t, "bad.properties", file)
		_, err := KafkaFor(saslSSL, []string{"k:9092"}, kafkaconn.JavaClient{}, path)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: error %v, want it to name the file and say %q", file, err, want)
		}
	}
	if _, err := KafkaFor(saslSSL, []string{"k:9092"}, kafkaconn.JavaClient{}, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing properties file was accepted")
	}
}

// fakeFlink answers as Flink's JobManager (no jobs) and SQL Gateway do,
// refusing the first CREATE TABLE with an exception that quotes the
// statement back, password and all, as a careless connector might.
type fakeFlink struct {
	mu       sync.Mutex
	received []string
}

func (f *fakeFlink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/jobs/overview":
		fmt.Fprint(w, `{"jobs":[]}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v4/sessions":
		fmt.Fprint(w, `{"sessionHandle":"s1"}`)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/statements"):
		var req struct{ Statement string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.received = append(f.received, req.Statement)
		n := len(f.received)
		f.mu.Unlock()
		fmt.Fprintf(w, `{"operationHandle":"op%d"}`, n)
	case strings.Contains(r.URL.Path, "/result/"):
		f.mu.Lock()
		last := f.received[len(f.received)-1]
		f.mu.Unlock()
		if strings.Contains(last, "CREATE TEMPORARY TABLE") {
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {"Internal server error.",
				"org.apache.flink.table.api.ValidationException: Unable to create a source for reading table: " + last +
					"\nCaused by: org.apache.flink.kafka.shaded.org.apache.kafka.common.errors.SaslAuthenticationException: wrong password " + testPassword}})
			return
		}
		fmt.Fprint(w, `{"resultType":"EOS","resultKind":"SUCCESS","results":{"columns":[],"data":[]}}`)
	default: // closing operations and the session
		fmt.Fprint(w, `{"status":"CLOSED"}`)
	}
}

// A submission that fails keeps the SASL password out of the activity's
// error and of every line the activity logged, while Flink got it.
func TestFailedSubmissionKeepsThePasswordOutOfErrorsAndLogs(t *testing.T) {
	fake := &fakeFlink{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	opts := flinksql.Options{RetryMax: -1, RequestTimeout: 5 * time.Second}
	gateway, err := flinksql.NewGateway(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := flinksql.NewJobManager(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	kafka, err := KafkaFor(saslSSL, []string{"k:9092"}, kafkaconn.JavaClient{CAFile: "/opt/flink/ca.pem"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	env := suite.NewTestActivityEnvironment()
	acts := New(kafka, gateway, jobs)
	env.RegisterActivity(acts)

	_, err = env.ExecuteActivity(acts.SubmitFlinkJobs, SubmitInput{Names: activitytest.Names("secret-test"), CheckpointIntervalMillis: 1000})
	if err == nil {
		t.Fatal("submission succeeded against a gateway that refused the table")
	}
	if !strings.Contains(strings.Join(fake.received, "\n"), `password="`+testPassword+`"`) {
		t.Fatal("Flink never got the password: the test shows nothing")
	}
	for what, text := range map[string]string{"error": err.Error(), "logs": logs.String()} {
		if strings.Contains(text, testPassword) || strings.Contains(text, "LoginModule required") {
			t.Errorf("%s hold the password:\n%s", what, text)
		}
	}
	if !strings.Contains(logs.String(), "SaslAuthenticationException") {
		t.Errorf("the activity's failure was not logged, so the logs show nothing:\n%s", logs.String())
	}
	if !strings.Contains(err.Error(), "SaslAuthenticationException") {
		t.Errorf("error lost Flink's cause: %v", err)
	}
}

// A failed job's root cause goes into workflow history: should the Kafka
// client's exception quote the password, even where the root cause is cut
// short, it stays out.
func TestCheckFlinkJobsKeepsThePasswordOutOfTheRootCause(t *testing.T) {
	enrich, split := strings.Repeat("a", 32), strings.Repeat("b", 32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.Split(strings.TrimPrefix(r.URL.Path, "/jobs/"), "/")[0]
		switch {
		case strings.HasSuffix(r.URL.Path, "/metrics"):
			fmt.Fprint(w, `[{"id":"numRestarts","value":"0"}]`)
		case strings.HasSuffix(r.URL.Path, "/checkpoints"):
			fmt.Fprint(w, `{"counts":{},"latest":{}}`)
		case strings.HasSuffix(r.URL.Path, "/exceptions"):
			trace := "org.apache.flink.runtime.JobException: Recovery is suppressed\nCaused by: org.apache.flink.kafka.shaded.org.apache.kafka.common.KafkaException: " +
				strings.Repeat("context ", 31) + "login with password " + testPassword + " failed\n\tat x.Y.z(Y.java:1)"
			_ = json.NewEncoder(w).Encode(map[string]any{"exceptionHistory": map[string]any{"entries": []map[string]any{{"exceptionName": "x", "stacktrace": trace}}}})
		default:
			fmt.Fprintf(w, `{"jid":%q,"name":"j","state":"FAILED","vertices":[]}`, id)
		}
	}))
	defer srv.Close()
	jobs, err := flinksql.NewJobManager(srv.URL, flinksql.Options{RetryMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	kafka, err := KafkaFor(saslSSL, []string{"k:9092"}, kafkaconn.JavaClient{}, "")
	if err != nil {
		t.Fatal(err)
	}
	acts := New(kafka, nil, jobs)
	res, err := activitytest.Execute[CheckResult](t, activitytest.Env(acts), acts.CheckFlinkJobs,
		CheckInput{Jobs: activities.FlinkJobs{EnrichJobName: "e", EnrichJobID: enrich, SplitJobName: "s", SplitJobID: split}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Failure, "KafkaException") || strings.Contains(res.Failure, testPassword[:6]) {
		t.Errorf("failure %q: want Flink's root cause without the password", res.Failure)
	}
}
