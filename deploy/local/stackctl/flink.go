package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// flink is a Flink session cluster on 127.0.0.1: one JobManager (REST API
// and web UI), opts.taskManagers TaskManagers and the SQL Gateway, run
// straight from the jars deploy/flink/pom.xml pins. There is no Flink
// distribution and so none of its bin/ scripts: stackctl does what they
// would (memory flags, Java 17 module flags, log settings).
//
// Layout under the stack dir:
//
//	data/flink/conf/config.yaml, log4j-console.properties  rewritten by every up
//	data/flink/plugins                                     empty: the stack uses no plugins
//	data/flink/checkpoints, data/flink/savepoints          kept across restarts
//	data/flink/tmp/<process>                               scratch, emptied when the process starts
//	logs/flink-jobmanager.log, flink-taskmanager-N.log, flink-sql-gateway.log
type flink struct{}

const (
	flinkPom         = "deploy/flink/pom.xml"
	flinkLog4jSource = "deploy/flink/log4j-console.properties"
	flinkLog4jName   = "log4j-console.properties"

	flinkJobManager  = "flink-jobmanager"
	flinkSQLGateway  = "flink-sql-gateway"
	flinkTaskManager = "flink-taskmanager-" // + 1..N

	flinkJobManagerClass  = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
	flinkTaskManagerClass = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
	flinkSQLGatewayClass  = "org.apache.flink.table.gateway.SqlGateway"
	flinkMemoryCLI        = "org.apache.flink.runtime.util.bash.BashJavaUtils"

	flinkSlotsPerTaskManager = 4
)

// flinkJava17Options are the module flags that Flink's default configuration
// puts in env.java.opts.all for Java 17: Kryo, the planner's code generation
// and the network stack reflect into these JDK packages.
var flinkJava17Options = []string{
	"--add-exports=java.base/sun.net.util=ALL-UNNAMED",
	"--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
	"--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
	"--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
	"--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
	"--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
	"--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
	"--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
	"--add-opens=java.base/java.lang=ALL-UNNAMED",
	"--add-opens=java.base/java.net=ALL-UNNAMED",
	"--add-opens=java.base/java.io=ALL-UNNAMED",
	"--add-opens=java.base/java.nio=ALL-UNNAMED",
	"--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
	"--add-opens=java.base/java.text=ALL-UNNAMED",
	"--add-opens=java.base/java.time=ALL-UNNAMED",
	"--add-opens=java.base/java.util=ALL-UNNAMED",
	"--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
	"--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
	"--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
}

// flinkSQLGatewayMemory sizes the gateway by hand: it is a client (it plans
// SQL and submits jobs), so Flink's process memory model does not apply to
// it. The planner's generated classes need the metaspace.
var flinkSQLGatewayMemory = []string{"-Xms128m", "-Xmx512m", "-XX:MaxMetaspaceSize=384m"}

func (flink) name() string { return "flink" }

func (flink) install(ctx context.Context, s *stack) error {
	_, err := s.resolveJars(ctx, "flink", flinkPom)
	return err
}

func (flink) processes(s *stack) []string {
	names := []string{flinkJobManager}
	for i := 1; i <= s.opts.taskManagers; i++ {
		names = append(names, flinkTaskManagerName(i))
	}
	// TaskManagers beyond the count, left by an earlier up with a larger
	// one, still belong to the component (down must stop them).
	for i := s.opts.taskManagers + 1; ; i++ {
		if _, ok := s.running(flinkTaskManagerName(i)); !ok {
			break
		}
		names = append(names, flinkTaskManagerName(i))
	}
	return append(names, flinkSQLGateway)
}

// check is healthy when the JobManager has every TaskManager registered with
// free slots and the SQL Gateway answers; either alone cannot run a pipeline.
func (flink) check(ctx context.Context, s *stack) health.Result {
	addrs := localstack.FromEnv()
	var jm, gw health.Result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); jm = health.FlinkJobManager(ctx, addrs.FlinkURL, s.opts.taskManagers) }()
	go func() { defer wg.Done(); gw = health.SQLGateway(ctx, addrs.SQLGatewayURL) }()
	wg.Wait()
	if jm.Healthy {
		if stale := staleTaskManager(ctx, s, addrs.FlinkURL); stale != "" {
			jm.Healthy, jm.Detail = false, stale+"; "+jm.Detail
		}
	}
	return health.Result{
		Component:     "flink",
		Healthy:       jm.Healthy && gw.Healthy,
		Detail:        jm.Component + ": " + jm.Detail + "; " + gw.Component + ": " + gw.Detail,
		Addresses:     append(jm.Addresses, gw.Addresses...),
		LatencyMillis: max(jm.LatencyMillis, gw.LatencyMillis),
	}
}

// staleTaskManager names a TaskManager of the stack that is not
// registered as the process now running: the JobManager keeps a killed
// TaskManager registered until its heartbeat times out (50 s), and its
// restarted process registers under the same resource id only later.
// The registered TaskManager is this process when the process listens on
// the registered data port. "" means every one is.
func staleTaskManager(ctx context.Context, s *stack, flinkURL string) string {
	jm, err := flinksql.NewJobManager(flinkURL, flinksql.Options{RetryMax: -1})
	if err != nil {
		return err.Error()
	}
	registered, err := jm.TaskManagers(ctx)
	if err != nil {
		return err.Error()
	}
	for i := 1; i <= s.opts.taskManagers; i++ {
		name := flinkTaskManagerName(i)
		pid, ok := s.running(name)
		if !ok {
			return name + " is not running"
		}
		j := slices.IndexFunc(registered, func(tm flinksql.TaskManager) bool { return tm.ID == name })
		if j < 0 {
			return name + " is not registered (yet)"
		}
		if !listensOn(pid, registered[j].DataPort) {
			return fmt.Sprintf("%s (pid %d) is not registered yet: the registered one, data port %d, is an earlier process", name, pid, registered[j].DataPort)
		}
	}
	return ""
}

func (f flink) start(ctx context.Context, s *stack) error {
	jars, err := s.resolveJars(ctx, "flink", flinkPom)
	if err != nil {
		return err
	}
	cp, err := classpath(jars)
	if err != nil {
		return err
	}
	for _, dir := range []string{flinkConfDir(s), flinkPluginsDir(s), flinkCheckpointDir(s), flinkSavepointDir(s)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("flink dir: %w", err)
		}
	}
	configFile := filepath.Join(flinkConfDir(s), "config.yaml")
	if err := os.WriteFile(configFile, []byte(flinkConfig(s)), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", configFile, err)
	}
	log4j, err := os.ReadFile(filepath.Join(s.repoDir, flinkLog4jSource))
	if err != nil {
		return fmt.Errorf("read %s: %w", flinkLog4jSource, err)
	}
	if err := os.WriteFile(filepath.Join(flinkConfDir(s), flinkLog4jName), log4j, 0o644); err != nil {
		return fmt.Errorf("write flink log4j config: %w", err)
	}

	var stopped []string
	for _, name := range f.processes(s) {
		if _, ok := s.running(name); !ok {
			stopped = append(stopped, name)
		}
	}
	if len(stopped) == 0 {
		logf("flink already running (%s)", strings.Join(f.processes(s), ", "))
		return nil
	}
	jmMemory, tmMemory, err := flinkMemoryParams(ctx, cp, flinkConfDir(s))
	if err != nil {
		return err
	}
	agentJar, err := s.jmxExporterAgentJar(ctx)
	if err != nil {
		return err
	}

	for _, name := range stopped {
		p, err := flinkClusterProcess(s, name, cp, agentJar, jmMemory, tmMemory)
		if err != nil {
			return err
		}
		// Scratch files of a previous run (the planner jar the loader
		// unpacks, blobs, spill files) are useless once their process is
		// gone.
		if err := os.RemoveAll(flinkTmpDir(s, name)); err != nil {
			return fmt.Errorf("%s: clear tmp dir: %w", name, err)
		}
		if err := os.MkdirAll(flinkTmpDir(s, name), 0o755); err != nil {
			return fmt.Errorf("%s: tmp dir: %w", name, err)
		}
		if err := s.start(p); err != nil {
			return err
		}
	}
	return nil
}

// flinkClusterProcess is the process named name: the JobManager, a
// TaskManager or the SQL Gateway. TaskManagers run the JMX exporter agent
// (agentJar): the pipeline's Kafka sources and sinks run there.
func flinkClusterProcess(s *stack, name, cp, agentJar string, jmMemory, tmMemory flinkMemory) (process, error) {
	switch {
	case name == flinkJobManager:
		args := append([]string{"--configDir", flinkConfDir(s)}, jmMemory.dynamicProperties...)
		args = append(args, flinkTmpProperties(s, name)...)
		jvmOptions := append(slices.Clone(jmMemory.jvmOptions), quickJITOptions...)
		return flinkProcess(s, name, cp, jvmOptions, flinkJobManagerClass, args), nil
	case strings.HasPrefix(name, flinkTaskManager):
		n, err := strconv.Atoi(strings.TrimPrefix(name, flinkTaskManager))
		if err != nil {
			return process{}, fmt.Errorf("taskmanager process name %q: %w", name, err)
		}
		args := append([]string{"--configDir", flinkConfDir(s)}, tmMemory.dynamicProperties...)
		args = append(args, flinkTmpProperties(s, name)...)
		// A stable id names the TaskManager in the web UI and its logs
		// instead of a random host:port-suffix.
		args = append(args, "-D", "taskmanager.resource-id="+name)
		jvmOptions := append(slices.Concat(tmMemory.jvmOptions, hotC2Options, throughputGCOptions),
			jmxExporterAgentOption(s, agentJar, flinkTaskManagerMetricsPort(n), jmxExporterFlinkConfig))
		return flinkProcess(s, name, cp, jvmOptions, flinkTaskManagerClass, args), nil
	case name == flinkSQLGateway:
		p := flinkProcess(s, name, cp, append(slices.Clone(flinkSQLGatewayMemory), quickJITOptions...), flinkSQLGatewayClass, nil)
		// The gateway has no --configDir flag; it finds config.yaml the
		// way Flink's client scripts tell it to.
		p.env = append(p.env, "FLINK_CONF_DIR="+flinkConfDir(s))
		return p, nil
	default:
		return process{}, fmt.Errorf("unknown flink process %q", name)
	}
}

// flinkProcess is the java command line of one Flink process.
func flinkProcess(s *stack, name, cp string, memory []string, mainClass string, args []string) process {
	argv := append([]string{"java"}, memory...)
	argv = append(argv, flinkJava17Options...)
	argv = append(argv,
		"-Djava.io.tmpdir="+flinkTmpDir(s, name),
		"-Dlog4j.configurationFile="+filepath.Join(flinkConfDir(s), flinkLog4jName),
		// log.file is where the web UI reads a JobManager's or TaskManager's
		// log from; the console appender writes to that same file.
		"-Dlog.file="+s.logFile(name),
		"-cp", cp, mainClass)
	// Without a plugins dir every process warns that ./plugins is missing;
	// an empty one says there are none on purpose.
	return process{name: name, argv: append(argv, args...), env: []string{"FLINK_PLUGINS_DIR=" + flinkPluginsDir(s)}}
}

// flinkTmpProperties points a cluster process's scratch files (blobs,
// spills, uploaded jars, the web UI's files) into its own tmp dir, which
// start empties.
func flinkTmpProperties(s *stack, process string) []string {
	dir := flinkTmpDir(s, process)
	return []string{"-D", "io.tmp.dirs=" + dir, "-D", "web.tmpdir=" + dir}
}

func flinkTaskManagerName(n int) string  { return flinkTaskManager + strconv.Itoa(n) }
func flinkConfDir(s *stack) string       { return filepath.Join(s.dataDir("flink"), "conf") }
func flinkPluginsDir(s *stack) string    { return filepath.Join(s.dataDir("flink"), "plugins") }
func flinkCheckpointDir(s *stack) string { return filepath.Join(s.dataDir("flink"), "checkpoints") }
func flinkSavepointDir(s *stack) string  { return filepath.Join(s.dataDir("flink"), "savepoints") }
func flinkTmpDir(s *stack, process string) string {
	return filepath.Join(s.dataDir("flink"), "tmp", process)
}

// flinkConfig is the config.yaml shared by every Flink process (Flink 2
// reads no other file). Everything binds to 127.0.0.1; the REST, RPC and
// gateway ports are the stack's fixed ones, every other port is picked free.
//
// There is no Prometheus reporter: it listens on every interface and has no
// option to bind one (Flink 2.2's, and its JMX reporter is not published
// for 2.x). Prometheus gets the TaskManagers' Kafka client metrics (the
// pipeline's sources and sinks) and JVM figures from the JMX exporter agent
// on loopback (jmxexporter.go); the pipeline reads Flink's own metrics from
// its REST API.
func flinkConfig(s *stack) string {
	host := localstack.Host
	settings := [][2]string{
		{"jobmanager.rpc.address", host},
		{"jobmanager.rpc.port", strconv.Itoa(localstack.FlinkRPCPort)},
		{"jobmanager.bind-host", host},
		{"taskmanager.bind-host", host},
		{"taskmanager.host", host},
		{"rest.address", host},
		{"rest.bind-address", host},
		{"rest.port", strconv.Itoa(localstack.FlinkRESTPort)},
		{"sql-gateway.endpoint.rest.address", host},
		{"sql-gateway.endpoint.rest.bind-address", host},
		{"sql-gateway.endpoint.rest.port", strconv.Itoa(localstack.SQLGatewayPort)},
		// The REST API would otherwise run any jar uploaded to it; jobs
		// come only through the SQL Gateway. Cancelling stays on: the
		// pipeline cancels its jobs through the REST API.
		{"web.submit.enable", "false"},
		{"web.cancel.enable", "true"},
		// Starting a TaskManager's RPC system (Pekko remoting) times out
		// after 10 s by default, which a 2-core machine starting three
		// TaskManagers beside a busy Kafka overran (seen: the TaskManager
		// exited and stackctl up failed).
		{"pekko.startup-timeout", "60 s"},

		// Sized for 2 cores and 24 GiB shared with three Kafka brokers
		// (512 MiB heap each), Temporal and the Go worker: about 6 GiB for
		// Flink with three TaskManagers.
		{"jobmanager.memory.process.size", "1024m"},
		{"taskmanager.memory.process.size", "1536m"},
		// The pipeline's jobs keep their state on the heap (hashmap
		// backend); managed memory only serves batch operators and RocksDB,
		// so a smaller share than the default 0.4 leaves each slot more
		// heap. Not 0: some SQL window aggregations need managed memory.
		{"taskmanager.memory.managed.fraction", "0.2"},
		{"taskmanager.numberOfTaskSlots", strconv.Itoa(flinkSlotsPerTaskManager)},
		// Spread a job's subtasks over the TaskManagers rather than filling
		// the first one, so that losing one TaskManager is a real test.
		{"taskmanager.load-balance.mode", "SLOTS"},
		{"parallelism.default", "1"},

		{"state.backend.type", "hashmap"},
		{"execution.checkpointing.dir", "file://" + flinkCheckpointDir(s)},
		{"execution.checkpointing.savepoint-dir", "file://" + flinkSavepointDir(s)},
		// Exactly-once Kafka sinks commit their transactions on checkpoints,
		// so the interval bounds how late a result becomes visible to
		// read_committed consumers. Jobs may set their own.
		{"execution.checkpointing.interval", "5s"},
		{"execution.checkpointing.mode", "EXACTLY_ONCE"},

		// A job that keeps failing should end FAILED for the pipeline to
		// see, not restart forever.
		{"restart-strategy.type", "fixed-delay"},
		{"restart-strategy.fixed-delay.attempts", "5"},
		{"restart-strategy.fixed-delay.delay", "5s"},
		{"jobmanager.execution.failover-strategy", "region"},
	}
	var b strings.Builder
	b.WriteString("# Written by stackctl on every up; edit deploy/local/stackctl/flink.go instead.\n")
	for _, kv := range settings {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], strconv.Quote(kv[1]))
	}
	return b.String()
}

// flinkMemory is what Flink's memory model makes of config.yaml for one kind
// of process: the JVM's heap, direct and metaspace limits, and the derived
// memory sizes the process must be told as dynamic properties so that it
// divides its memory exactly as the JVM was sized.
type flinkMemory struct {
	jvmOptions        []string
	dynamicProperties []string // "-D", "key=value", ...
}

// flinkMemoryParams asks Flink itself (BashJavaUtils, as its start scripts
// do) to turn the configured process sizes into JVM flags, so that the flags
// and Flink's own accounting can never disagree.
func flinkMemoryParams(ctx context.Context, cp, confDir string) (jm, tm flinkMemory, err error) {
	var wg sync.WaitGroup
	var jmErr, tmErr error
	wg.Add(2)
	go func() { defer wg.Done(); jm, jmErr = flinkMemoryFor(ctx, cp, confDir, "GET_JM_RESOURCE_PARAMS") }()
	go func() { defer wg.Done(); tm, tmErr = flinkMemoryFor(ctx, cp, confDir, "GET_TM_RESOURCE_PARAMS") }()
	wg.Wait()
	return jm, tm, errors.Join(jmErr, tmErr)
}

func flinkMemoryFor(ctx context.Context, cp, confDir, command string) (flinkMemory, error) {
	out, err := exec.CommandContext(ctx, "java", "-Xmx128m", "-cp", cp, flinkMemoryCLI, command, "--configDir", confDir).CombinedOutput()
	if err != nil {
		return flinkMemory{}, fmt.Errorf("flink memory settings (%s): %w\n%s", command, err, lastLines(string(out), 20))
	}
	mem, err := parseFlinkMemory(string(out))
	if err != nil {
		return flinkMemory{}, fmt.Errorf("flink memory settings (%s): %w", command, err)
	}
	return mem, nil
}

// parseFlinkMemory reads BashJavaUtils' output. The tool prints log lines
// too; its results are the lines with a prefix: the JVM flags first, then
// the dynamic properties.
func parseFlinkMemory(out string) (flinkMemory, error) {
	const prefix = "BASH_JAVA_UTILS_EXEC_RESULT:"
	var results []string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			results = append(results, rest)
		}
	}
	if len(results) != 2 {
		return flinkMemory{}, fmt.Errorf("want 2 result lines, got %d:\n%s", len(results), lastLines(out, 20))
	}
	return flinkMemory{jvmOptions: strings.Fields(results[0]), dynamicProperties: strings.Fields(results[1])}, nil
}
