package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/flowproof/flowproof/internal/localstack"
)

// Prometheus' JMX exporter runs as a Java agent inside the Kafka nodes and
// the Flink TaskManagers, each on its own loopback port, exporting only the
// MBeans its committed configuration includes (so a scrape costs little
// CPU). Flink's own Prometheus reporter is not used: it listens on every
// interface, with no option to bind one (see flinkConfig).
const (
	jmxExporterPom         = "deploy/jmx-exporter/pom.xml"
	jmxExporterKafkaConfig = "deploy/jmx-exporter/kafka.yml"
	jmxExporterFlinkConfig = "deploy/jmx-exporter/flink.yml"
)

func kafkaMetricsPort(node int) int { return localstack.KafkaMetricsPortBase + node }
func flinkTaskManagerMetricsPort(n int) int {
	return localstack.FlinkTaskManagerMetricsPortBase + n
}

// jmxExporterAgentJar resolves the agent (cached like every jar of the
// stack) and returns its path.
func (s *stack) jmxExporterAgentJar(ctx context.Context) (string, error) {
	dir, err := s.resolveJars(ctx, "jmx-exporter", jmxExporterPom)
	if err != nil {
		return "", err
	}
	jars, err := filepath.Glob(filepath.Join(dir, "jmx_prometheus_javaagent-*.jar"))
	if err != nil {
		return "", fmt.Errorf("find the JMX exporter agent in %s: %w", dir, err)
	}
	if len(jars) != 1 {
		return "", fmt.Errorf("want one jmx_prometheus_javaagent jar in %s, found %v", dir, jars)
	}
	return jars[0], nil
}

// jmxExporterAgentOption is the JVM option that starts the agent on
// 127.0.0.1:port with the committed configuration configRelPath.
func jmxExporterAgentOption(s *stack, agentJar string, port int, configRelPath string) string {
	return "-javaagent:" + agentJar + "=" + localstack.Host + ":" + strconv.Itoa(port) + ":" +
		filepath.Join(s.repoDir, configRelPath)
}
