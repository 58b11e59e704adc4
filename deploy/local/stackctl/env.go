package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
)

// EnvStackProfile tells clients (the integration tests, scripts) which
// profile the stack they talk to runs; `stackctl env` sets it.
const EnvStackProfile = "FLOWPROOF_STACK_PROFILE"

// envVar is one environment variable of a client of the stack.
type envVar struct{ name, value string }

// clientEnv is what a client of the stack needs in its environment beyond
// the addresses, which are the same in every profile: in the secure profile
// Kafka's TLS and SASL settings, with the SCRAM password, and Temporal's
// TLS settings.
func clientEnv(s *stack) ([]envVar, error) {
	vars := []envVar{{EnvStackProfile, s.opts.profile}, {localstack.EnvStackDir, s.dir}}
	if !s.secure() {
		return vars, nil
	}
	kafkaSecurity, err := kafkaClientSecurity(s)
	if err != nil {
		return nil, err
	}
	vars = append(vars,
		envVar{kafkaconn.EnvTLS, "1"},
		envVar{kafkaconn.EnvTLSCAFile, kafkaSecurity.CAFile},
		envVar{kafkaconn.EnvSASLMechanism, kafkaSecurity.SASLMechanism},
		envVar{kafkaconn.EnvSASLUser, kafkaSecurity.SASLUser},
		envVar{kafkaconn.EnvSASLPassword, kafkaSecurity.SASLPassword},
		envVar{kafkaconn.EnvFlinkPropertiesFile, flinkKafkaPropertiesFile(s)},
	)
	return append(vars, temporalTLSEnv(s)...), nil
}

// temporalTLSEnv is the Temporal client's TLS, as the variables of
// go.temporal.io/sdk/contrib/envconfig name it: the secure profile's
// frontend serves TLS and wants the stack's client certificate.
func temporalTLSEnv(s *stack) []envVar {
	tls := temporalClientProfile(s).TLS
	return []envVar{
		{"TEMPORAL_TLS", "true"},
		{"TEMPORAL_TLS_SERVER_CA_CERT_PATH", tls.ServerCACertPath},
		{"TEMPORAL_TLS_CLIENT_CERT_PATH", tls.ClientCertPath},
		{"TEMPORAL_TLS_CLIENT_KEY_PATH", tls.ClientKeyPath},
		{"TEMPORAL_TLS_SERVER_NAME", tls.ServerName},
	}
}

// secureOnlyEnv names the variables clientEnv sets in the secure profile
// only: the default profile's env unsets them, so that a shell that
// sourced the secure profile's env can move back.
var secureOnlyEnv = []string{
	kafkaconn.EnvTLS, kafkaconn.EnvTLSCAFile, kafkaconn.EnvTLSCertFile, kafkaconn.EnvTLSKeyFile, kafkaconn.EnvTLSServerName,
	kafkaconn.EnvSASLMechanism, kafkaconn.EnvSASLUser, kafkaconn.EnvSASLPassword, kafkaconn.EnvFlinkPropertiesFile,
	"TEMPORAL_TLS", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_NAME",
}

// withheldClientEnv are the variables a client of the stack started by
// stackctl must not inherit: in the default profile, the secure one's
// settings, which a shell that sourced its env still holds (make
// test-secure restarting the default stack, say).
func withheldClientEnv(s *stack) []string {
	if s.secure() {
		return nil
	}
	return secureOnlyEnv
}

// printEnv writes clientEnv as shell lines, for `eval "$(stackctl env)"`.
// The SCRAM password is the local stack's own, generated into its data
// dir; printing it is the point of the command, and nothing else does.
func printEnv(s *stack, stdout io.Writer) error {
	vars, err := clientEnv(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# flowproof local stack, profile %s (%s)\n", s.opts.profile, s.dir)
	if !s.secure() {
		fmt.Fprintf(stdout, "unset %s\n", strings.Join(secureOnlyEnv, " "))
	}
	for _, v := range vars {
		fmt.Fprintf(stdout, "export %s=%s\n", v.name, shellQuote(v.value))
	}
	return nil
}

// shellQuote quotes v for a POSIX shell.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

func envAssignments(vars []envVar) []string {
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = v.name + "=" + v.value
	}
	return out
}
