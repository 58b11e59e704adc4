package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/internal/kafkaconn"
)

// In the secure profile every Kafka listener but the controllers' speaks
// SASL_SSL: clients and the brokers among themselves authenticate with
// SCRAM over TLS, the brokers presenting the stack's server certificate.
// The controller listener stays plaintext on loopback, as in the default
// profile.
//
// The SCRAM users are written into the cluster's metadata when the storage
// is formatted (kafka-storage format --add-scram), so no broker ever runs
// without them; their passwords are generated once into data/kafka/sasl/.
const (
	// kafkaClientUser is the user of every client: the worker, the tests,
	// Flink's jobs. It holds no ACLs because the stack runs no authorizer.
	kafkaClientUser = "flowproof"
	// kafkaBrokerUser is what the brokers log in as to each other.
	kafkaBrokerUser = "broker"

	kafkaSecureListener = "SASL_SSL"
	// kafkaInterBrokerMechanism is the brokers' own; clients may also use
	// SCRAM-SHA-256, for which the client user has credentials too.
	kafkaInterBrokerMechanism = kafkaconn.MechanismSCRAMSHA512
)

func kafkaPasswordFile(s *stack, user string) string {
	return filepath.Join(s.dataDir("kafka"), "sasl", user+".password")
}

// ensureKafkaPasswords generates the SCRAM users' passwords on first use.
func ensureKafkaPasswords(s *stack) (map[string]string, error) {
	passwords := map[string]string{}
	for _, user := range []string{kafkaClientUser, kafkaBrokerUser} {
		password, err := ensureSecretFile(kafkaPasswordFile(s, user), "Kafka SCRAM password of "+user)
		if err != nil {
			return nil, err
		}
		passwords[user] = password
	}
	return passwords, nil
}

// kafkaClientSecurity is how a client reaches the secure profile's
// brokers: TLS trusting the stack's CA, SCRAM-SHA-512 as kafkaClientUser.
func kafkaClientSecurity(s *stack) (kafkaconn.Settings, error) {
	raw, err := os.ReadFile(kafkaPasswordFile(s, kafkaClientUser))
	if errors.Is(err, os.ErrNotExist) {
		return kafkaconn.Settings{}, fmt.Errorf("the stack in %s has no Kafka password yet: run `stackctl up --profile %s` first", s.dir, profileSecure)
	}
	if err != nil {
		return kafkaconn.Settings{}, fmt.Errorf("read Kafka password: %w", err)
	}
	return kafkaconn.Settings{
		TLS:           true,
		CAFile:        s.certs().caCert(),
		SASLMechanism: kafkaconn.MechanismSCRAMSHA512,
		SASLUser:      kafkaClientUser,
		SASLPassword:  strings.TrimSpace(string(raw)),
	}, nil
}

// kafkaClientOptions are the franz-go options stackctl's own clients (its
// checks) need for the stack's profile.
func kafkaClientOptions(s *stack) ([]kgo.Opt, error) {
	if !s.secure() {
		return nil, nil
	}
	security, err := kafkaClientSecurity(s)
	if err != nil {
		return nil, err
	}
	return security.ClientOptions()
}

// kafkaListenerSettings are the lines of server.properties that say how
// node's broker and controller listeners speak.
func kafkaListenerSettings(s *stack, broker, controller string, passwords map[string]string) []string {
	if !s.secure() {
		return []string{
			"listeners=PLAINTEXT://" + broker + ",CONTROLLER://" + controller,
			"advertised.listeners=PLAINTEXT://" + broker,
			"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"inter.broker.listener.name=PLAINTEXT",
		}
	}
	certs := s.certs()
	jaas := func(mechanism string) string {
		return "listener.name." + strings.ToLower(kafkaSecureListener) + "." + strings.ToLower(mechanism) + ".sasl.jaas.config="
	}
	return []string{
		"listeners=" + kafkaSecureListener + "://" + broker + ",CONTROLLER://" + controller,
		"advertised.listeners=" + kafkaSecureListener + "://" + broker,
		"listener.security.protocol.map=" + kafkaSecureListener + ":SASL_SSL,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name=" + kafkaSecureListener,
		"sasl.enabled.mechanisms=" + kafkaconn.MechanismSCRAMSHA512 + "," + kafkaconn.MechanismSCRAMSHA256,
		"sasl.mechanism.inter.broker.protocol=" + kafkaInterBrokerMechanism,
		// Every enabled mechanism needs a login on the listener; only the
		// brokers' own carries their credentials, for their connections to
		// each other.
		jaas(kafkaInterBrokerMechanism) + scramJAASConfig(kafkaBrokerUser, passwords[kafkaBrokerUser]),
		jaas(kafkaconn.MechanismSCRAMSHA256) + scramLoginModule + " required;",
		// Kafka reads PEM key stores since 2.7; an unencrypted PKCS#8 key
		// needs no ssl.key.password.
		"ssl.keystore.type=PEM",
		"ssl.keystore.location=" + certs.serverKeyStore(),
		"ssl.truststore.type=PEM",
		"ssl.truststore.location=" + certs.caCert(),
		// Clients authenticate with SCRAM, not certificates.
		"ssl.client.auth=none",
	}
}

// scramJAASConfig is the login of a SCRAM user as Kafka's JAAS
// configuration. Passwords are hex (ensureSecretFile), so they need no
// quoting.
func scramJAASConfig(user, password string) string {
	return fmt.Sprintf(`%s required username="%s" password="%s";`, scramLoginModule, user, password)
}

const scramLoginModule = "org.apache.kafka.common.security.scram.ScramLoginModule"

// kafkaFormatSCRAMArgs are format's --add-scram arguments: the client user
// with both SCRAM mechanisms, the brokers' user with theirs.
func kafkaFormatSCRAMArgs(passwords map[string]string) []string {
	credential := func(mechanism, user string) string {
		return fmt.Sprintf("%s=[name=%s,password=%s]", mechanism, user, passwords[user])
	}
	return []string{
		"--add-scram", credential(kafkaconn.MechanismSCRAMSHA512, kafkaClientUser),
		"--add-scram", credential(kafkaconn.MechanismSCRAMSHA256, kafkaClientUser),
		"--add-scram", credential(kafkaInterBrokerMechanism, kafkaBrokerUser),
	}
}

// argumentFile writes args into a file for a Kafka tool's argument
// parser (argparse4j reads "@file" as one argument per line, taken as it
// stands), so that secrets among them never show in the process list; the
// caller removes it.
func argumentFile(dir string, args []string) (string, error) {
	for _, a := range args {
		if strings.ContainsAny(a, "\r\n") {
			return "", errors.New("argument file: an argument spans lines")
		}
	}
	// CreateTemp makes the file owner-only.
	f, err := os.CreateTemp(dir, ".args-*")
	if err != nil {
		return "", fmt.Errorf("argument file: %w", err)
	}
	if _, err := f.WriteString(strings.Join(args, "\n") + "\n"); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("argument file: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("argument file: %w", err)
	}
	return f.Name(), nil
}

// redactPasswords replaces the passwords in a tool's output, which may
// echo its arguments.
func redactPasswords(out string, passwords map[string]string) string {
	for _, p := range passwords {
		if p != "" {
			out = strings.ReplaceAll(out, p, "***")
		}
	}
	return out
}

// flinkKafkaPropertiesFile holds the secure profile's settings for the
// Kafka clients of the Flink jobs; `stackctl env` names it in
// FLOWPROOF_FLINK_KAFKA_PROPERTIES_FILE, so the workers pass it on.
func flinkKafkaPropertiesFile(s *stack) string {
	return filepath.Join(s.dataDir("kafka"), "flink-clients.properties")
}

func writeFlinkKafkaProperties(s *stack) error {
	if err := writeFileAtomic(flinkKafkaPropertiesFile(s), []byte(flinkKafkaProperties), 0o644); err != nil {
		return fmt.Errorf("write the Flink jobs' Kafka client properties: %w", err)
	}
	return nil
}

// flinkKafkaProperties give a connection to the SASL_SSL brokers longer
// than the client's 10 s to connect, finish its TLS handshake and log in.
// Here, on two cores, a fresh SASL_SSL client took up to 5.6 s to connect
// while the stack started and 4 s during a run (load 25 to 31); at load 40
// to 50, Flink's source enumerator spent its whole 60 s
// (default.api.timeout.ms) on such attempts ("Timed out waiting for a node
// assignment. Call: listNodes"), failed the job, and the restarted jobs
// opened more connections still.
const flinkKafkaProperties = `# Written by stackctl for the secure profile's Flink jobs.
socket.connection.setup.timeout.ms=30000
socket.connection.setup.timeout.max.ms=60000
`
