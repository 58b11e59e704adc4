package flink

import (
	"fmt"

	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/envconf"
	"github.com/flowproof/flowproof/internal/kafkaconn"
)

// Kafka is how the jobs' Kafka clients, inside Flink, reach the cluster:
// perhaps at other addresses and with other file paths than the worker's.
// The worker builds it from its own configuration (KafkaFor), never from
// workflow input, so the credentials in Properties reach Flink without
// passing through any workflow history.
type Kafka struct {
	Brokers []string
	// Properties are Kafka client properties for every table of the jobs
	// (see flinksql.JobSettings.KafkaProperties): security and whatever the
	// worker's properties file adds.
	Properties map[string]string
}

// KafkaFor is how the jobs connect with the worker's security settings:
// brokers as Flink reaches them, the files of client as Flink's hosts see
// them, and the entries of propertiesFile (a Java properties file on the
// worker's host; "" for none) for settings flowproof does not model.
func KafkaFor(security kafkaconn.Settings, brokers []string, client kafkaconn.JavaClient, propertiesFile string) (Kafka, error) {
	client.ClassPrefix = flinksql.ShadedKafkaPackage
	props, err := security.JavaProperties(client)
	if err != nil {
		return Kafka{}, fmt.Errorf("kafka security of the Flink jobs: %w", err)
	}
	if propertiesFile != "" {
		extra, err := kafkaconn.ReadPropertiesFile(propertiesFile)
		if err != nil {
			return Kafka{}, err
		}
		if err := flinksql.CheckKafkaProperties(extra); err != nil {
			return Kafka{}, fmt.Errorf("%s: %w", propertiesFile, err)
		}
		if props, err = kafkaconn.MergeProperties(props, extra, propertiesFile); err != nil {
			return Kafka{}, err
		}
	}
	return Kafka{Brokers: brokers, Properties: props}, nil
}

// KafkaFromEnv is KafkaFor with Flink's settings read from the
// FLOWPROOF_FLINK_KAFKA_* variables, each defaulting to the worker's own
// (workerBrokers, the CA file, a client certificate file that holds its
// key), as the worker's flags default them.
func KafkaFromEnv(getenv func(string) string, security kafkaconn.Settings, workerBrokers []string) (Kafka, error) {
	brokers := envconf.SplitList(getenv(kafkaconn.EnvFlinkBrokers))
	if len(brokers) == 0 {
		brokers = workerBrokers
	}
	client := kafkaconn.JavaClient{
		CAFile:       envconf.String(getenv, kafkaconn.EnvFlinkTLSCAFile, security.CAFile),
		KeystoreFile: envconf.String(getenv, kafkaconn.EnvFlinkTLSKeystoreFile, security.DefaultKeystoreFile()),
	}
	return KafkaFor(security, brokers, client, getenv(kafkaconn.EnvFlinkPropertiesFile))
}
