package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flowproof/flowproof/internal/localstack"
)

// parseSettings reads "key<sep>value" lines, skipping comments, and fails
// the test on a key set twice.
func parseSettings(t *testing.T, text, sep string, unquote bool) map[string]string {
	t.Helper()
	settings := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, sep)
		if !ok {
			t.Fatalf("line %q has no %q", line, sep)
		}
		if unquote {
			var err error
			if value, err = strconv.Unquote(value); err != nil {
				t.Fatalf("line %q: value not quoted: %v", line, err)
			}
		}
		if _, dup := settings[key]; dup {
			t.Errorf("%s is set twice", key)
		}
		settings[key] = value
	}
	return settings
}

var hostPort = regexp.MustCompile(`([A-Za-z0-9.\-\[\]:]*):(\d{2,5})\b`)

// assertLoopbackOnly fails for any host:port in value whose host is not
// the stack's 127.0.0.1.
func assertLoopbackOnly(t *testing.T, what, value string) {
	t.Helper()
	for _, m := range hostPort.FindAllStringSubmatch(value, -1) {
		host := m[1][strings.LastIndexAny(m[1], "/@")+1:]
		if host != localstack.Host {
			t.Errorf("%s = %q binds %q, want %s", what, value, host, localstack.Host)
		}
	}
}

func TestKafkaNodeConfigs(t *testing.T) {
	s := testStack(t)
	var ports, logDirs []string
	for node := 1; node <= kafkaNodes; node++ {
		cfg := parseSettings(t, kafkaServerConfig(s, node, nil), "=", false)
		broker := fmt.Sprintf("127.0.0.1:%d", kafkaBrokerPorts[node-1])
		controller := fmt.Sprintf("127.0.0.1:%d", kafkaControllerPorts[node-1])
		want := map[string]string{
			"node.id":                                  strconv.Itoa(node),
			"process.roles":                            "broker,controller",
			"listeners":                                "PLAINTEXT://" + broker + ",CONTROLLER://" + controller,
			"advertised.listeners":                     "PLAINTEXT://" + broker,
			"controller.quorum.voters":                 "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194",
			"default.replication.factor":               "3",
			"min.insync.replicas":                      "2",
			"offsets.topic.replication.factor":         "3",
			"transaction.state.log.replication.factor": "3",
			"transaction.state.log.min.isr":            "2",
			"auto.create.topics.enable":                "false",
			"log.dirs":                                 filepath.Join(s.dir, "data", "kafka", "kafka-"+strconv.Itoa(node)),
		}
		for key, value := range want {
			if cfg[key] != value {
				t.Errorf("kafka-%d %s = %q, want %q", node, key, cfg[key], value)
			}
		}
		for key, value := range cfg {
			assertLoopbackOnly(t, fmt.Sprintf("kafka-%d %s", node, key), value)
		}
		// Every replicated internal topic must survive losing one node.
		for key, value := range cfg {
			if strings.HasSuffix(key, "replication.factor") && value != strconv.Itoa(kafkaNodes) {
				t.Errorf("kafka-%d %s = %s, want %d", node, key, value, kafkaNodes)
			}
			if (strings.HasSuffix(key, "min.isr") || key == "min.insync.replicas") && value != strconv.Itoa(kafkaNodes-1) {
				t.Errorf("kafka-%d %s = %s, want %d", node, key, value, kafkaNodes-1)
			}
		}
		ports = append(ports, broker, controller)
		logDirs = append(logDirs, cfg["log.dirs"])
	}
	slices.Sort(ports)
	slices.Sort(logDirs)
	if len(slices.Compact(ports)) != 2*kafkaNodes || len(slices.Compact(logDirs)) != kafkaNodes {
		t.Errorf("nodes share ports or log dirs: %v, %v", ports, logDirs)
	}
}

func TestKafkaLog4jWritesToTheProcessOutput(t *testing.T) {
	broker := parseSettings(t, kafkaBrokerLog4j, " = ", false)
	if broker["appender.stdout.target"] != "SYSTEM_OUT" || broker["rootLogger.appenderRef.stdout.ref"] != "STDOUT" {
		t.Errorf("broker log4j does not send the root logger to stdout: %v", broker)
	}
	// The tools' stdout carries their results, so their logging goes to stderr.
	tools := parseSettings(t, kafkaToolsLog4j, " = ", false)
	if tools["appender.stderr.target"] != "SYSTEM_ERR" || tools["rootLogger.level"] != "WARN" {
		t.Errorf("tools log4j: %v", tools)
	}
}

func TestFlinkConfig(t *testing.T) {
	s := testStack(t)
	cfg := parseSettings(t, flinkConfig(s), ": ", true)
	want := map[string]string{
		"rest.port":                              strconv.Itoa(localstack.FlinkRESTPort),
		"jobmanager.rpc.port":                    strconv.Itoa(localstack.FlinkRPCPort),
		"sql-gateway.endpoint.rest.port":         strconv.Itoa(localstack.SQLGatewayPort),
		"taskmanager.numberOfTaskSlots":          strconv.Itoa(flinkSlotsPerTaskManager),
		"execution.checkpointing.mode":           "EXACTLY_ONCE",
		"execution.checkpointing.dir":            "file://" + filepath.Join(s.dir, "data", "flink", "checkpoints"),
		"execution.checkpointing.savepoint-dir":  "file://" + filepath.Join(s.dir, "data", "flink", "savepoints"),
		"restart-strategy.type":                  "fixed-delay",
		"jobmanager.execution.failover-strategy": "region",
	}
	for key, value := range want {
		if cfg[key] != value {
			t.Errorf("%s = %q, want %q", key, cfg[key], value)
		}
	}
	var binds int
	for key, value := range cfg {
		if strings.HasSuffix(key, "address") || strings.HasSuffix(key, "host") {
			binds++
			if value != localstack.Host {
				t.Errorf("%s = %q, want %s", key, value, localstack.Host)
			}
		}
	}
	if binds < 8 {
		t.Errorf("only %d address and host settings; every listener must be bound to %s", binds, localstack.Host)
	}
	// Flink's Prometheus reporter binds every interface, so it stays off,
	// with Prometheus too.
	s.opts.withPrometheus = true
	withProm := parseSettings(t, flinkConfig(s), ": ", true)
	for key := range withProm {
		if strings.HasPrefix(key, "metrics.reporter") {
			t.Errorf("%s is set: Flink's reporters cannot bind to %s", key, localstack.Host)
		}
	}
	if !maps.Equal(withProm, cfg) {
		t.Error("Prometheus changes Flink's configuration")
	}
}

func TestFlinkRESTAPIRunsNoUploadedJars(t *testing.T) {
	cfg := parseSettings(t, flinkConfig(testStack(t)), ": ", true)
	if cfg["web.submit.enable"] != "false" {
		t.Errorf("web.submit.enable = %q, want false: the REST API would run any jar uploaded to it", cfg["web.submit.enable"])
	}
	// flowproof cancels its jobs through the REST API.
	if cfg["web.cancel.enable"] != "true" {
		t.Errorf("web.cancel.enable = %q, want true", cfg["web.cancel.enable"])
	}
}

// TestEveryProcessBindsLoopback reads the listen addresses off every
// process's command line and Flink's and Kafka's configs.
func TestEveryProcessBindsLoopback(t *testing.T) {
	s := testStack(t)
	s.opts.withPrometheus = true
	workerSpec, err := workerProcessSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	var procs []process
	procs = append(procs, refsvcProcesses(s, "secret", "admin")...)
	procs = append(procs, process{name: "temporal", argv: temporal{}.argv(s)}, workerSpec,
		prometheusProcess(s.dataDir("prometheus"), "prometheus.yml"))
	jm := flinkMemory{}
	for _, name := range []string{flinkJobManager, flinkTaskManagerName(1), flinkSQLGateway} {
		p, err := flinkClusterProcess(s, name, "cp.jar", "agent.jar", jm, jm)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	procs = append(procs, kafkaNodeProcess(s, 2, "cp.jar", "log4j.properties", "agent.jar"))
	listenFlags := map[string]bool{"--listen": true, "--ip": true, "-metrics-addr": true}
	bound, agents := 0, 0
	for _, p := range procs {
		for i, arg := range p.argv {
			if flag, value, ok := strings.Cut(arg, "="); ok && flag == "--web.listen-address" {
				assertLoopbackOnly(t, p.name+" "+flag, value)
				bound++
			}
			if listenFlags[arg] && i+1 < len(p.argv) {
				value := p.argv[i+1]
				if !strings.Contains(value, ":") {
					value += ":0"
				}
				assertLoopbackOnly(t, p.name+" "+arg, value)
				bound++
			}
			// -javaagent:JAR=HOST:PORT:CONFIG, the JMX exporter's listener.
			if agent, ok := strings.CutPrefix(arg, "-javaagent:agent.jar="); ok {
				hostPort := strings.Join(strings.SplitN(agent, ":", 3)[:2], ":")
				assertLoopbackOnly(t, p.name+" JMX exporter agent", hostPort)
				agents++
			}
			if strings.HasPrefix(arg, "metrics.reporter") {
				t.Errorf("%s sets %s: Flink's reporters cannot bind to %s", p.name, arg, localstack.Host)
			}
		}
	}
	// token service, endpoint, temporal, worker, prometheus
	if bound < 5 {
		t.Errorf("found %d listen flags; every process's listener must be bound explicitly", bound)
	}
	if agents != 2 {
		t.Errorf("found %d JMX exporter agents among Kafka node 2, the JobManager, TaskManager 1 and the gateway; want the Kafka node's and the TaskManager's", agents)
	}
	for _, want := range []string{"rest.bind-address", "jobmanager.bind-host", "taskmanager.bind-host", "sql-gateway.endpoint.rest.bind-address"} {
		if got := parseSettings(t, flinkConfig(s), ": ", true)[want]; got != localstack.Host {
			t.Errorf("flink %s = %q, want %s", want, got, localstack.Host)
		}
	}
}

func TestFlinkProcessCommandLine(t *testing.T) {
	s := testStack(t)
	p := flinkProcess(s, "flink-taskmanager-2", "a.jar:b.jar", []string{"-Xmx1g"}, flinkTaskManagerClass, []string{"--configDir", "conf"})
	argv := strings.Join(p.argv, " ")
	for _, want := range []string{
		"java -Xmx1g --add-exports=",
		"-Djava.io.tmpdir=" + filepath.Join(s.dir, "data", "flink", "tmp", "flink-taskmanager-2"),
		"-Dlog.file=" + s.logFile("flink-taskmanager-2"),
		"-cp a.jar:b.jar " + flinkTaskManagerClass + " --configDir conf",
	} {
		if !strings.Contains(argv, want) {
			t.Errorf("argv %q lacks %q", argv, want)
		}
	}
	if !slices.Contains(p.env, "FLINK_PLUGINS_DIR="+flinkPluginsDir(s)) {
		t.Errorf("env %v lacks the plugins dir", p.env)
	}
	tmp := flinkTmpProperties(s, "flink-jobmanager")
	if !slices.Equal(tmp, []string{"-D", "io.tmp.dirs=" + flinkTmpDir(s, "flink-jobmanager"), "-D", "web.tmpdir=" + flinkTmpDir(s, "flink-jobmanager")}) {
		t.Errorf("tmp properties %v", tmp)
	}
}

func TestFlinkMemoryParsesTheToolsResultLines(t *testing.T) {
	out := "INFO  [] - Loading configuration\n" +
		"BASH_JAVA_UTILS_EXEC_RESULT:-Xmx536870912 -Xms536870912 -XX:MaxMetaspaceSize=268435456\n" +
		"INFO  [] - Final TaskExecutor Memory configuration\n" +
		"BASH_JAVA_UTILS_EXEC_RESULT:-D taskmanager.memory.network.min=134217730b -D taskmanager.cpu.cores=4.0\n"
	mem, err := parseFlinkMemory(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mem.jvmOptions, []string{"-Xmx536870912", "-Xms536870912", "-XX:MaxMetaspaceSize=268435456"}) {
		t.Errorf("jvm options %v", mem.jvmOptions)
	}
	if !slices.Equal(mem.dynamicProperties, []string{"-D", "taskmanager.memory.network.min=134217730b", "-D", "taskmanager.cpu.cores=4.0"}) {
		t.Errorf("dynamic properties %v", mem.dynamicProperties)
	}
	if _, err := parseFlinkMemory("INFO only logs\n"); err == nil {
		t.Error("output without result lines parsed")
	}
}

func TestTemporalDevServerCommandLine(t *testing.T) {
	s := testStack(t)
	t.Setenv(localstack.EnvTemporalNS, "tests")
	argv := temporal{}.argv(s)
	joined := strings.Join(argv, " ")
	for _, want := range []string{
		"server start-dev --ip 127.0.0.1 --port 17233 --ui-port 18233 --metrics-port 17234",
		"--db-filename " + filepath.Join(s.dir, "data", "temporal", "temporal.db"),
		"--sqlite-pragma journal_mode=WAL --sqlite-pragma synchronous=NORMAL",
		"--dynamic-config-value system.enableActivityEagerExecution=true",
		"--disable-config-file --disable-config-env",
		"--namespace default --namespace tests",
		"--search-attribute FlowproofStage=",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("argv %q lacks %q", joined, want)
		}
	}
	if argv[0] != filepath.Join(s.cacheDir, "temporal-"+temporalCLIVersion, "temporal") {
		t.Errorf("binary %s is not the pinned CLI in the cache", argv[0])
	}
}

// TestPrometheusConfigComesFromTheCommittedOne: the stack's Prometheus runs
// the committed configuration and rules with the stack's targets.
func TestPrometheusConfigComesFromTheCommittedOne(t *testing.T) {
	sourceDir, err := filepath.Abs(filepath.Join("..", "..", "prometheus"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(sourceDir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := prometheusConfig(committed, sourceDir, prometheusScrapeJobs(2))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Global struct {
			ScrapeInterval string `yaml:"scrape_interval"`
		} `yaml:"global"`
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(rendered, &got); err != nil {
		t.Fatalf("rendered config: %v\n%s", err, rendered)
	}
	if got.Global.ScrapeInterval != "15s" {
		t.Errorf("scrape_interval %q, want the committed 15s", got.Global.ScrapeInterval)
	}
	if want := []string{filepath.Join(sourceDir, "alerts.yml")}; !slices.Equal(got.RuleFiles, want) {
		t.Errorf("rule_files %v, want %v", got.RuleFiles, want)
	}
	jobs := map[string]string{}
	var order []string
	for _, sc := range got.ScrapeConfigs {
		var targets []string
		for _, c := range sc.StaticConfigs {
			targets = append(targets, c.Targets...)
		}
		jobs[sc.JobName] = strings.Join(targets, ",")
		order = append(order, sc.JobName)
	}
	want := map[string]string{
		"worker": "127.0.0.1:19464", "temporal": "127.0.0.1:17234",
		"token-service": "127.0.0.1:18090", "endpoint": "127.0.0.1:18091",
		"kafka": "127.0.0.1:19401,127.0.0.1:19402,127.0.0.1:19403",
		"flink": "127.0.0.1:19501,127.0.0.1:19502",
	}
	if !maps.Equal(jobs, want) {
		t.Errorf("jobs %v, want %v", jobs, want)
	}
	if len(order) < 2 || order[0] != "worker" || order[1] != "temporal" {
		t.Errorf("job order %v: the committed jobs first", order)
	}

	configFile := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(configFile, rendered, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtoolPath(t), "check", "config", configFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check config on the stack's prometheus.yml: %v\n%s\n%s", err, out, rendered)
	}
}

func TestPrometheusConfigRefusesAJobWithoutAStackAddress(t *testing.T) {
	committed := []byte("scrape_configs:\n  - job_name: schema-registry\n    static_configs:\n      - targets: [\"registry:9404\"]\n")
	if _, err := prometheusConfig(committed, "/x", prometheusScrapeJobs(1)); err == nil || !strings.Contains(err.Error(), `"schema-registry"`) {
		t.Errorf("got %v, want an error naming job schema-registry", err)
	}
}

// promtoolPath finds Debian's promtool, which `stackctl install --only
// prometheus` installs. Without it the test is skipped, saying so, unless
// FLOWPROOF_REQUIRE_PROMTOOL=1 (make test sets it once it installed it).
func promtoolPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("FLOWPROOF_REQUIRE_PROMTOOL") == "1" {
		t.Fatalf("promtool: %v (FLOWPROOF_REQUIRE_PROMTOOL=1)", err)
	}
	t.Skipf("SKIPPED, NOT CHECKED: promtool is not installed (bin/stackctl install --only prometheus): %v", err)
	return ""
}

func TestFlinkClusterProcesses(t *testing.T) {
	s := testStack(t)
	s.opts.withPrometheus = true
	jm := flinkMemory{jvmOptions: []string{"-Xmx1"}, dynamicProperties: []string{"-D", "jm=1"}}
	tm := flinkMemory{jvmOptions: []string{"-Xmx2"}, dynamicProperties: []string{"-D", "tm=2"}}
	for name, want := range map[string][]string{
		flinkJobManager:           {"-Xmx1", flinkJobManagerClass, "jm=1"},
		flinkTaskManagerName(3):   {"-Xmx2", flinkTaskManagerClass, "tm=2", "taskmanager.resource-id=flink-taskmanager-3"},
		flinkSQLGateway:           {"-Xmx512m", flinkSQLGatewayClass},
		flinkTaskManager + "bad":  nil,
		"flink-something-unknown": nil,
	} {
		p, err := flinkClusterProcess(s, name, "cp.jar", "agent.jar", jm, tm)
		if want == nil {
			if err == nil {
				t.Errorf("%s: no error", name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, arg := range want {
			if !slices.Contains(p.argv, arg) {
				t.Errorf("%s: argv %v lacks %q", name, p.argv, arg)
			}
		}
	}
}

func TestRedisConfigBindsLoopbackWithAPasswordAndKeepsItsData(t *testing.T) {
	s := testStack(t)
	dir := s.dataDir("redis")
	cfg, err := redisConfig(dir, "the-password-0123456789abcdef0123456789")
	if err != nil {
		t.Fatal(err)
	}
	settings := parseSettings(t, cfg, " ", false)
	for name, want := range map[string]string{
		"bind":             localstack.Host,
		"port":             strconv.Itoa(localstack.RedisPort),
		"requirepass":      `"the-password-0123456789abcdef0123456789"`,
		"dir":              `"` + dir + `"`,
		"appendonly":       "yes",
		"maxmemory":        redisMaxMemory,
		"maxmemory-policy": "noeviction",
		"daemonize":        "no",
	} {
		if settings[name] != want {
			t.Errorf("redis.conf %s = %q, want %q", name, settings[name], want)
		}
	}
	if _, err := redisConfig(`/tmp/a"b`, "p"); err == nil {
		t.Error("a dir with a quote was written unquoted")
	}
}

func TestRedisPasswordIsGeneratedOnceAndPrivate(t *testing.T) {
	s := testStack(t)
	path := localstack.RedisPasswordFile(s.dir)
	first, err := ensureSecretFile(path, "Redis password")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || len(first) < minSecretBytes {
		t.Errorf("password file mode %v, password %d bytes", info.Mode().Perm(), len(first))
	}
	if again, err := ensureSecretFile(path, "Redis password"); err != nil || again != first {
		t.Errorf("second ensureSecretFile = %v, changed the password: %v", err, again != first)
	}
	for _, p := range refsvcProcesses(s, "secret", "admin") {
		if strings.Contains(strings.Join(append(p.argv, p.env...), " "), first) {
			t.Errorf("%s carries the Redis password on its command line or in its environment", p.name)
		}
	}
}
