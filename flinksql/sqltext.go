package flinksql

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Everything a caller names (topics, brokers, group ids, transactional id
// prefixes, job names) ends up inside SQL. It is checked against the
// alphabet its system allows AND quoted when written, so neither a bad
// check nor a bad quote alone lets workflow input change the statement or
// add connector options.

// quoteString writes s as a Flink SQL string literal. Flink SQL's standard
// literals have one escape, the doubled quote; a backslash is an ordinary
// character.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteIdent writes s as a Flink SQL identifier, backticks doubled.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// FieldError is an invalid setting: which field of which settings struct,
// the value given and what is wrong with it.
type FieldError struct {
	Struct, Field string
	Value         string
	Problem       string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("flinksql: %s.%s %q: %s", e.Struct, e.Field, e.Value, e.Problem)
}

func fieldErr(structName, field, value, problem string, args ...any) *FieldError {
	return &FieldError{Struct: structName, Field: field, Value: value, Problem: fmt.Sprintf(problem, args...)}
}

// MaxTopicLength is Kafka's limit on a topic name's length; consumer group
// ids of the jobs are held to it too.
const MaxTopicLength = 249

// checkKafkaName checks a topic, group id, transactional id prefix or job
// name against Kafka's topic alphabet [a-zA-Z0-9._-]; the same alphabet for
// all of them keeps the contract's derived names ("flowproof.<run>.enrich")
// valid everywhere they are used.
func checkKafkaName(value string, maxLen int) string {
	switch {
	case value == "":
		return "must not be empty"
	case len(value) > maxLen:
		return fmt.Sprintf("is %d characters long, at most %d allowed", len(value), maxLen)
	case value == "." || value == "..":
		return "must not be \".\" or \"..\""
	}
	for i, c := range value {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("has %q at byte %d; only letters, digits, '.', '_' and '-' are allowed", c, i)
		}
	}
	return ""
}

// checkBroker checks one bootstrap address, host:port with a DNS name or
// an IP literal (IPv6 in brackets).
func checkBroker(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "want host:port: " + strings.TrimPrefix(err.Error(), "address "+addr+": ")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" {
		return "host is empty"
	}
	if net.ParseIP(host) != nil {
		return ""
	}
	if len(host) > 253 {
		return "host name is longer than 253 characters"
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("host %q is not a valid DNS name", host)
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Sprintf("host %q is not a valid DNS name or IP address", host)
			}
		}
	}
	return ""
}

// tableName derives a readable table name from a job name: characters
// outside [A-Za-z0-9_] become '_'. The result is still quoted when used.
func tableName(jobName, suffix string) string {
	var b strings.Builder
	for _, c := range jobName {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteString("_")
	b.WriteString(suffix)
	return b.String()
}

// option is one connector option; a slice keeps the generated SQL in a
// stable order.
type option struct{ key, value string }

func withClause(opts []option) string {
	var b strings.Builder
	b.WriteString("WITH (\n")
	for i, o := range opts {
		b.WriteString("  ")
		b.WriteString(quoteString(o.key))
		b.WriteString(" = ")
		b.WriteString(quoteString(o.value))
		if i < len(opts)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(")")
	return b.String()
}

func setStatement(key, value string) string {
	return "SET " + quoteString(key) + " = " + quoteString(value)
}
