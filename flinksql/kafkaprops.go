package flinksql

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ShadedKafkaPackage is the package prefix under which Flink's SQL Kafka
// connector (flink-sql-connector-kafka) carries its own copy of
// kafka-clients: a class a Kafka property names, such as the JAAS login
// module, must be named with it.
const ShadedKafkaPackage = "org.apache.flink.kafka.shaded."

// ownedKafkaProperties are the Kafka client properties the jobs set
// themselves or Flink's connector sets for them; a second value would
// break the jobs' exactly-once reading and writing or their names.
var ownedKafkaProperties = []string{
	"bootstrap.servers", "group.id", "isolation.level",
	"transactional.id", "transaction.timeout.ms", "enable.idempotence", "acks",
	"enable.auto.commit", "auto.offset.reset",
	"key.serializer", "value.serializer", "key.deserializer", "value.deserializer",
	"linger.ms", "batch.size",
}

// CheckKafkaProperties refuses properties the jobs cannot take: names
// outside Kafka's alphabet for them and the properties the jobs own. The
// error names keys, never values, which may be secrets.
func CheckKafkaProperties(props map[string]string) error {
	var owned, malformed []string
	for key := range props {
		switch {
		case !kafkaPropertyName.MatchString(key):
			malformed = append(malformed, fmt.Sprintf("%q", key))
		case slices.Contains(ownedKafkaProperties, strings.ToLower(key)):
			owned = append(owned, key)
		}
	}
	slices.Sort(owned)
	slices.Sort(malformed)
	var errs []error
	if len(malformed) > 0 {
		errs = append(errs, fmt.Errorf("flinksql: Kafka property names %s: only letters, digits, '.', '_' and '-' are allowed", strings.Join(malformed, ", ")))
	}
	if len(owned) > 0 {
		errs = append(errs, fmt.Errorf("flinksql: Kafka properties %s are set by the jobs themselves (the jobs own %s)",
			strings.Join(owned, ", "), strings.Join(ownedKafkaProperties, ", ")))
	}
	return errors.Join(errs...)
}

var kafkaPropertyName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// IsSecretKafkaProperty reports whether a Kafka property's value is a
// credential: the JAAS configuration (which holds the SASL password),
// passwords, secrets, tokens and an inline private key. It errs towards
// secret, as Flink's own list of sensitive option names does.
func IsSecretKafkaProperty(key string) bool {
	key = strings.ToLower(key)
	for _, word := range []string{"jaas", "password", "secret", "token", "credential"} {
		if strings.Contains(key, word) {
			return true
		}
	}
	return strings.HasSuffix(key, ".key")
}

// jaasQuotedOption finds an option="value" of a JAAS configuration whose
// name says it is secret, and its value with JAAS's backslash escapes.
var jaasQuotedOption = regexp.MustCompile(`(?i)([a-z_.]*(?:password|secret|token)[a-z_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"`)

// Secrets are the values in the job's SQL that must not appear in an
// error or a log: each secret property's value, as given and as quoted in
// SQL, and a JAAS configuration's password on its own, so that a message
// quoting only the password is caught too.
func (k JobSettings) Secrets() []string {
	var secrets []string
	add := func(v string) {
		if v != "" {
			secrets = append(secrets, v, strings.ReplaceAll(v, "'", "''"))
		}
	}
	for key, value := range k.KafkaProperties {
		if !IsSecretKafkaProperty(key) {
			continue
		}
		add(value)
		for _, m := range jaasQuotedOption.FindAllStringSubmatch(value, -1) {
			add(m[2])
			add(unescapeJAAS(m[2]))
		}
	}
	slices.Sort(secrets)
	return slices.Compact(secrets)
}

// Secrets are the values in the job's SQL that must not appear in an
// error or a log (see JobSettings.Secrets).
func (j EnrichJob) Secrets() []string { return JobSettings(j).Secrets() }

// Secrets are the values in the job's SQL that must not appear in an
// error or a log (see JobSettings.Secrets).
func (j SplitJob) Secrets() []string { return JobSettings(j).Secrets() }

func unescapeJAAS(s string) string {
	var b strings.Builder
	escaped := false
	for _, r := range s {
		if r == '\\' && !escaped {
			escaped = true
			continue
		}
		escaped = false
		b.WriteRune(r)
	}
	return b.String()
}

// kafkaPropertyOptions are KafkaProperties as connector options, sorted by
// key so the SQL is the same for the same settings.
func (k JobSettings) kafkaPropertyOptions() []option {
	keys := make([]string, 0, len(k.KafkaProperties))
	for key := range k.KafkaProperties {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	opts := make([]option, len(keys))
	for i, key := range keys {
		opts[i] = option{"properties." + key, k.KafkaProperties[key]}
	}
	return opts
}
