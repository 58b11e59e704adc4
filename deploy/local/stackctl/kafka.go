package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// kafka is a 3-node KRaft cluster on 127.0.0.1: every node is broker and
// controller at once, with a static quorum (controller.quorum.voters), run
// straight from the jars deploy/kafka/pom.xml pins.
//
// Layout under the stack dir:
//
//	data/kafka/cluster-id             the cluster id, generated once
//	data/kafka/config/kafka-N.properties, log4j2-*.properties (rewritten by every up)
//	data/kafka/kafka-N/               node N's log dir (formatted once, kept across restarts)
//	logs/kafka-N.log                  node N's stdout, where its log4j output goes
type kafka struct{}

const (
	kafkaPom        = "deploy/kafka/pom.xml"
	kafkaNodes      = 3
	kafkaMainClass  = "kafka.Kafka"
	kafkaStorageCLI = "kafka.tools.StorageTool" // what kafka-storage.sh runs in 4.1
)

var (
	kafkaBrokerPorts     = [kafkaNodes]int{localstack.KafkaBrokerPort1, localstack.KafkaBrokerPort2, localstack.KafkaBrokerPort3}
	kafkaControllerPorts = [kafkaNodes]int{localstack.KafkaControllerPort1, localstack.KafkaControllerPort2, localstack.KafkaControllerPort3}
)

func (kafka) name() string { return "kafka" }

func (kafka) install(ctx context.Context, s *stack) error {
	if _, err := s.resolveJars(ctx, "kafka", kafkaPom); err != nil {
		return err
	}
	_, err := s.jmxExporterAgentJar(ctx)
	return err
}

func (kafka) processes(*stack) []string {
	names := make([]string, kafkaNodes)
	for i := range names {
		names[i] = kafkaNodeName(i + 1)
	}
	return names
}

// check also wants every node's own process listening on its broker port:
// the controller keeps a killed node registered until its session times
// out, so the cluster's metadata alone would pass a node that is not back.
func (kafka) check(ctx context.Context, s *stack) health.Result {
	brokers := localstack.FromEnv().KafkaBrokers
	security, err := kafkaClientOptions(s)
	if err != nil {
		return health.Result{Component: "kafka", Addresses: brokers, Detail: err.Error()}
	}
	res := health.Kafka(ctx, brokers, health.BrokerNeed{Min: kafkaNodes}, security...)
	if !res.Healthy {
		return res
	}
	for node := 1; node <= kafkaNodes; node++ {
		name := kafkaNodeName(node)
		pid, ok := s.running(name)
		if !ok {
			res.Healthy = false
			res.Detail = fmt.Sprintf("%s: process of this stack is not running (see %s); %s", name, s.logFile(name), res.Detail)
			return res
		}
		if !listensOn(pid, kafkaBrokerPorts[node-1]) {
			res.Healthy = false
			res.Detail = fmt.Sprintf("%s (pid %d) does not listen on port %d (yet); %s", name, pid, kafkaBrokerPorts[node-1], res.Detail)
			return res
		}
	}
	if err := kafkaCoordinatorsReady(ctx, brokers, security); err != nil {
		res.Healthy = false
		res.Detail = fmt.Sprintf("%v; %s", err, res.Detail)
	}
	return res
}

// kafkaCoordinatorsReady asks for a group and a transaction coordinator.
// On new data, Kafka makes its internal offsets and transaction topics only
// when one is first asked for, and answers COORDINATOR_NOT_AVAILABLE until
// they are led and loaded: a stack that called itself up before that
// failed the first test that read a group's offsets (seen on a fresh
// machine). Asking here makes the topics during up, not during a run.
func kafkaCoordinatorsReady(ctx context.Context, brokers []string, security []kgo.Opt) error {
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RetryTimeout(3 * time.Second)}, security...)...)
	if err != nil {
		return fmt.Errorf("coordinators: %w", err)
	}
	defer client.Close()
	admin := kadm.NewClient(client)
	const key = "flowproof-stack-check"
	if err := admin.FindGroupCoordinators(ctx, key).Error(); err != nil {
		return fmt.Errorf("group coordinator: %w", err)
	}
	if err := admin.FindTxnCoordinators(ctx, key).Error(); err != nil {
		return fmt.Errorf("transaction coordinator: %w", err)
	}
	return nil
}

func (kafka) start(ctx context.Context, s *stack) error {
	cp, brokerLog4j, err := kafkaJVMSetup(ctx, s, "log4j2-broker.properties", kafkaBrokerLog4j)
	if err != nil {
		return err
	}
	clusterID, err := kafkaClusterID(s)
	if err != nil {
		return err
	}
	agentJar, err := s.jmxExporterAgentJar(ctx)
	if err != nil {
		return err
	}
	var passwords map[string]string
	if s.secure() {
		if passwords, err = ensureKafkaPasswords(s); err != nil {
			return err
		}
		if err := writeFlinkKafkaProperties(s); err != nil {
			return err
		}
	}

	var unformatted []int
	for node := 1; node <= kafkaNodes; node++ {
		// Owner only: in the secure profile it holds the brokers' password.
		if err := writeFileAtomic(kafkaServerProperties(s, node), []byte(kafkaServerConfig(s, node, passwords)), 0o600); err != nil {
			return fmt.Errorf("write kafka-%d config: %w", node, err)
		}
		formattedAs, err := kafkaFormattedClusterID(kafkaLogDir(s, node))
		if err != nil {
			return err
		}
		switch {
		case formattedAs == "":
			unformatted = append(unformatted, node)
		case formattedAs != clusterID:
			return fmt.Errorf("kafka-%d: log dir %s belongs to cluster %s, not %s (from %s); remove %s to start afresh",
				node, kafkaLogDir(s, node), formattedAs, clusterID, kafkaClusterIDFile(s), s.dataDir("kafka"))
		}
	}
	if err := kafkaFormat(ctx, s, cp, clusterID, unformatted, passwords); err != nil {
		return err
	}

	for node := 1; node <= kafkaNodes; node++ {
		if err := s.start(kafkaNodeProcess(s, node, cp, brokerLog4j, agentJar)); err != nil {
			return err
		}
	}
	return nil
}

// kafkaSecureQuorumSettings give the KRaft quorum more time on the secure
// profile, whose PostgreSQL, Temporal server and TLS take the CPU the
// controllers' 1 to 2 s timers assume is there. In a 1,000,000-message run
// on it the controllers logged "controller event queue overloaded. Timed
// out heartbeat from broker", their broker heartbeats timed out after 2 s,
// the quorum elected a new leader twice in two minutes, and Flink's
// exactly-once sinks got REQUEST_TIMED_OUT and OUT_OF_ORDER_SEQUENCE_NUMBER
// until the run crawled at 200 msg/s. The default profile keeps Kafka's
// timers, which the fault drills' recovery times are measured against.
var kafkaSecureQuorumSettings = []string{
	"controller.quorum.fetch.timeout.ms=10000",
	"controller.quorum.election.timeout.ms=5000",
	"controller.quorum.request.timeout.ms=10000",
	"broker.session.timeout.ms=18000",
}

// kafkaNodeProcess is node's java command line, with the JMX exporter agent
// (agentJar) on its loopback port.
func kafkaNodeProcess(s *stack, node int, cp, log4j, agentJar string) process {
	argv := append([]string{"java"}, kafkaBrokerJVMOptions...)
	argv = append(argv,
		jmxExporterAgentOption(s, agentJar, kafkaMetricsPort(node), jmxExporterKafkaConfig),
		"-Dlog4j2.configurationFile="+log4j,
		"-cp", cp, kafkaMainClass, kafkaServerProperties(s, node))
	return process{name: kafkaNodeName(node), argv: argv}
}

// kafkaBrokerJVMOptions size each node for a 2-core machine running three of
// them next to Flink and Temporal: the brokers compile with C1 alone
// (quickJITOptions) and collect with the parallel collector
// (throughputGCOptions), not the G1 settings of Kafka's own start scripts.
var kafkaBrokerJVMOptions = slices.Concat([]string{
	"-Xms512m", "-Xmx512m",
	"-Djava.awt.headless=true",
}, quickJITOptions, throughputGCOptions)

func kafkaNodeName(node int) string      { return "kafka-" + strconv.Itoa(node) }
func kafkaConfigDir(s *stack) string     { return filepath.Join(s.dataDir("kafka"), "config") }
func kafkaClusterIDFile(s *stack) string { return filepath.Join(s.dataDir("kafka"), "cluster-id") }
func kafkaLogDir(s *stack, node int) string {
	return filepath.Join(s.dataDir("kafka"), kafkaNodeName(node))
}
func kafkaServerProperties(s *stack, node int) string {
	return filepath.Join(kafkaConfigDir(s), kafkaNodeName(node)+".properties")
}

// kafkaServerConfig is node's server.properties. Replication settings make
// the local cluster behave like a production one (RF 3, min ISR 2), so that
// acks=all and Flink's exactly-once sink are exercised for real.
// passwords are the SCRAM users' of the secure profile.
func kafkaServerConfig(s *stack, node int, passwords map[string]string) string {
	var voters []string
	for i, port := range kafkaControllerPorts {
		voters = append(voters, fmt.Sprintf("%d@%s:%d", i+1, localstack.Host, port))
	}
	broker := fmt.Sprintf("%s:%d", localstack.Host, kafkaBrokerPorts[node-1])
	controller := fmt.Sprintf("%s:%d", localstack.Host, kafkaControllerPorts[node-1])
	settings := []string{
		"# Written by stackctl on every up; edit deploy/local/stackctl/kafka.go instead.",
		"process.roles=broker,controller",
		"node.id=" + strconv.Itoa(node),
		"controller.quorum.voters=" + strings.Join(voters, ","),
	}
	settings = append(settings, kafkaListenerSettings(s, broker, controller, passwords)...)
	if s.secure() {
		settings = append(settings, kafkaSecureQuorumSettings...)
	}
	settings = append(settings,
		"controller.listener.names=CONTROLLER",
		"log.dirs="+kafkaLogDir(s, node),

		"num.partitions=3",
		"default.replication.factor=3",
		"min.insync.replicas=2",
		"offsets.topic.replication.factor=3",
		"transaction.state.log.replication.factor=3",
		// The two internal topics get 6 partitions instead of 50 each (the
		// defaults, sized for large clusters). On fresh stacks, side by
		// side, that took a 1,000,000-message run from 2m43s-2m54s to
		// 2m1s-2m9s and the brokers from 143-147 to 97-100 CPU s
		// (docs/performance.md, "Fresh stacks side by side"). It applies
		// when Kafka's data is new: the topics are made on first use.
		"offsets.topic.num.partitions=6",
		"transaction.state.log.num.partitions=6",
		"transaction.state.log.min.isr=2",
		"share.coordinator.state.topic.replication.factor=3",
		"share.coordinator.state.topic.min.isr=2",
		// Flink's exactly-once Kafka sink keeps transactions open across
		// checkpoints and asks for up to an hour.
		"transaction.max.timeout.ms=3600000",
		// Topics are created deliberately (RF and partitions are part of a
		// pipeline's contract), never by a typo in a producer.
		"auto.create.topics.enable=false",
		// Tests start consumer groups constantly; the default 3 s wait for
		// more members only slows them down.
		"group.initial.rebalance.delay.ms=0",

		// Three nodes share two cores with Flink and Temporal.
		"num.network.threads=2",
		"num.io.threads=2",
		"background.threads=2",
		"num.recovery.threads.per.data.dir=1",
		"log.cleaner.threads=1",
		"num.replica.fetchers=1",

		// A controlled shutdown waits (up to 5 minutes, fixed) for the active
		// controller to move leadership away. stackctl down stops the nodes
		// one after another, so the last one never has a quorum to ask and
		// would be killed instead of closing its logs cleanly.
		"controlled.shutdown.enable=false",

		// A local stack keeps a day of data, not a week.
		"log.retention.hours=24",
	)
	return strings.Join(settings, "\n") + "\n"
}

// kafkaBrokerLog4j sends everything to stdout, which stackctl appends to the
// node's log file, at the levels of Kafka's shipped configuration minus its
// separate per-topic files, and with the per-partition chatter of topic
// creation and deletion down to warnings.
const kafkaBrokerLog4j = `# Written by stackctl; the node's stdout is its log file.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.target = SYSTEM_OUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = WARN
# Every run creates and deletes five topics of up to 100 partitions each;
# at INFO these log a few lines per partition and replica, about 200 MB a
# node in an hour of tests. Warnings and errors still show.
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.replication.name = org.apache.kafka.controller.ReplicationControlManager
logger.replication.level = WARN
logger.logmanager.name = kafka.log.LogManager
logger.logmanager.level = WARN
logger.partition.name = kafka.cluster.Partition
logger.partition.level = WARN
logger.fetcher.name = kafka.server.ReplicaFetcherThread
logger.fetcher.level = WARN
logger.storage.name = org.apache.kafka.storage.internals.log
logger.storage.level = WARN
`

// kafkaToolsLog4j keeps the tools' stdout for their results: only warnings,
// and on stderr.
const kafkaToolsLog4j = `# Written by stackctl for kafka-class.
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
`

// kafkaClusterID returns the stack's cluster id, creating it on first use.
// A node formatted before the file existed (the file was deleted) donates
// its id, so that the other nodes join the same cluster.
func kafkaClusterID(s *stack) (string, error) {
	file := kafkaClusterIDFile(s)
	if raw, err := os.ReadFile(file); err == nil {
		if id := strings.TrimSpace(string(raw)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read kafka cluster id: %w", err)
	}
	id := ""
	for node := 1; node <= kafkaNodes && id == ""; node++ {
		formattedAs, err := kafkaFormattedClusterID(kafkaLogDir(s, node))
		if err != nil {
			return "", err
		}
		id = formattedAs
	}
	if id == "" {
		var err error
		if id, err = newKafkaClusterID(); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", fmt.Errorf("kafka data dir: %w", err)
	}
	if err := os.WriteFile(file, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write kafka cluster id: %w", err)
	}
	return id, nil
}

// newKafkaClusterID makes an id in the form of Kafka's Uuid.toString:
// 16 random bytes, URL-safe base64 without padding. Like Kafka's own
// generator it avoids a leading '-', which command lines would take for a
// flag.
func newKafkaClusterID() (string, error) {
	for {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate kafka cluster id: %w", err)
		}
		if id := base64.RawURLEncoding.EncodeToString(b[:]); !strings.HasPrefix(id, "-") {
			return id, nil
		}
	}
}

// kafkaFormattedClusterID reads the cluster id from a formatted log dir's
// meta.properties; "" means the dir is not formatted.
func kafkaFormattedClusterID(logDir string) (string, error) {
	f, err := os.Open(filepath.Join(logDir, "meta.properties"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read kafka meta.properties: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "cluster.id="); ok {
			return id, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return "", fmt.Errorf("%s has no cluster.id; remove %s to reformat", f.Name(), logDir)
}

// kafkaFormat writes meta.properties and the bootstrap metadata into the log
// dirs of the given nodes, all in parallel (one JVM each). With passwords
// (the secure profile) it also writes the SCRAM users into the metadata.
func kafkaFormat(ctx context.Context, s *stack, cp, clusterID string, nodes []int, passwords map[string]string) error {
	if len(nodes) == 0 {
		return nil
	}
	logf("formatting kafka storage of nodes %v (cluster %s)", nodes, clusterID)
	var scram []string
	if passwords != nil {
		// The passwords go through an argument file, never the command line.
		argFile, err := argumentFile(kafkaConfigDir(s), kafkaFormatSCRAMArgs(passwords))
		if err != nil {
			return err
		}
		defer func() { _ = os.Remove(argFile) }()
		scram = []string{"@" + argFile}
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"-Xmx256m", "-cp", cp, kafkaStorageCLI, "format",
				"--config", kafkaServerProperties(s, node), "--cluster-id", clusterID, "--ignore-formatted"}, scram...)
			cmd := exec.CommandContext(ctx, "java", args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("format kafka-%d storage: %w\n%s", node, err, lastLines(redactPasswords(string(out), passwords), 20))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// kafkaClass runs a class from the Kafka jars in the foreground, e.g.
// org.apache.kafka.tools.ProducerPerformance against the stack, with the
// terminal's stdin, stdout and stderr.
func kafkaClass(ctx context.Context, s *stack, args []string) error {
	cp, toolsLog4j, err := kafkaJVMSetup(ctx, s, "log4j2-tools.properties", kafkaToolsLog4j)
	if err != nil {
		return err
	}
	argv := []string{"-Xmx512m", "-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + toolsLog4j, "-cp", cp}
	cmd := exec.CommandContext(ctx, "java", append(argv, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kafka-class %s: %w", args[0], err)
	}
	return nil
}

// kafkaJVMSetup gives what every Kafka JVM of the stack needs: the cached
// classpath, and a log4j configuration written under the config dir.
func kafkaJVMSetup(ctx context.Context, s *stack, log4jName, log4jConfig string) (cp, log4jPath string, err error) {
	jars, err := s.resolveJars(ctx, "kafka", kafkaPom)
	if err != nil {
		return "", "", err
	}
	if cp, err = classpath(jars); err != nil {
		return "", "", err
	}
	configDir := kafkaConfigDir(s)
	if err := os.MkdirAll(configDir, 0o755); err != nil {
		return "", "", fmt.Errorf("kafka config dir: %w", err)
	}
	log4jPath = filepath.Join(configDir, log4jName)
	if err := os.WriteFile(log4jPath, []byte(log4jConfig), 0o644); err != nil {
		return "", "", fmt.Errorf("write %s: %w", log4jPath, err)
	}
	return cp, log4jPath, nil
}
