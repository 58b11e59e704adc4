package flinksql

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults and limits of the jobs' Kafka settings.
const (
	// DefaultTransactionTimeout is the exactly-once sink's
	// transaction.timeout.ms. Kafka refuses a producer whose timeout is
	// above the broker's transaction.max.timeout.ms (15 minutes by default),
	// and a transaction must outlive the checkpoint that commits it plus
	// any restart before that commit is retried.
	DefaultTransactionTimeout = 15 * time.Minute
	// MaxTransactionTimeout is the highest timeout accepted: the local
	// stack's brokers allow one hour.
	MaxTransactionTimeout = time.Hour
	// MinCheckpointInterval is the shortest checkpoint interval accepted;
	// the exactly-once sink commits one Kafka transaction per checkpoint.
	MinCheckpointInterval = 100 * time.Millisecond
	// MaxNameLength bounds a job's name and its transactional id prefix,
	// leaving room for the "-<subtask>-<checkpoint>" Flink adds to the
	// prefix.
	MaxNameLength = 200
	// maxParallelism bounds Parallelism to something a cluster can run.
	maxParallelism = 1024
)

// EnrichJob reads the raw topic and writes the enriched topic (see
// docs/message-contract.md): every record keeps its key, value fields and
// logical.queue header, and gains correlation_id, both as a JSON field and
// as the correlation.id header.
//
// correlation_id = LOWER(MD5(run_id || ':' || CAST(seq AS STRING))), derived
// from the record so a record Flink replays after a failure gets the same
// id. It is computed once per record, which EXPLAIN through the gateway
// confirms (TestEnrichExplainComputesCorrelationIDOnce). Written the
// obvious way, as a subquery column used for both the field and the
// header, it is not: Flink 2.2's planner merges the two projections into
// one Calc whose select list holds LOWER(MD5(...)) twice, once for the
// field and once inside ENCODE(...) for the header map, and Flink 2.2's
// Calc code generator does not reuse common subexpressions (that came
// after 2.2, with FLINK-39268), so MD5 would run twice. The job therefore
// produces the id with CROSS JOIN UNNEST(ARRAY[LOWER(MD5(...))]): the
// optimised plan has a single Correlate computing the hash and a Calc that
// only refers to its output column (f0) for the field and the header.
type EnrichJob JobSettings

// SplitJob reads the responses topic, one record per HTTP batch, and writes
// the final topic with one record per message of the batch (CROSS JOIN
// UNNEST), keyed by logical queue, with the headers correlation.id,
// sending.id, logical.queue and batch.number.
type SplitJob JobSettings

// JobSettings are the settings every job has. Nothing in them depends on
// the run: the caller derives names (topics, group, prefix) from the run id,
// and every name is validated and quoted.
type JobSettings struct {
	// Name is the Flink job name (pipeline.name) and names the session's
	// temporary tables; Kafka's topic alphabet, e.g. "flowproof.r1.enrich".
	Name string
	// Brokers are the Kafka bootstrap servers, host:port each.
	Brokers []string
	// SourceTopic is the topic the job reads, SinkTopic the one it writes.
	SourceTopic, SinkTopic string
	// GroupID is the consumer group whose committed offsets (committed on
	// each checkpoint) show the job's lag on its source topic.
	GroupID string
	// TransactionalIDPrefix must be unique per job and stay the same when
	// the job is restored, so Flink can abort its own lingering
	// transactions.
	TransactionalIDPrefix string
	// Parallelism of the job; 0 uses the cluster's parallelism.default.
	Parallelism int
	// CheckpointInterval is how often the job checkpoints, which is how
	// often its output is committed and becomes visible to read_committed
	// readers. Required.
	CheckpointInterval time.Duration
	// TransactionTimeout of the sink's Kafka producer; 0 means
	// DefaultTransactionTimeout.
	TransactionTimeout time.Duration
	// KafkaProperties are Kafka client properties, named as Kafka names
	// them (without Flink's "properties." prefix), for every table of the
	// job: the cluster's security (security.protocol, sasl.*, ssl.*) and
	// whatever else it needs. Keys the job sets itself are refused (see
	// CheckKafkaProperties); the values of secret ones never appear in an
	// error of SubmitJob (see Secrets).
	KafkaProperties map[string]string
}

// Validate reports every invalid setting, each naming its field.
func (j EnrichJob) Validate() error { return JobSettings(j).validate("EnrichJob") }

// Validate reports every invalid setting, each naming its field.
func (j SplitJob) Validate() error { return JobSettings(j).validate("SplitJob") }

func (k JobSettings) validate(structName string) error {
	var errs []error
	check := func(field, value string, maxLen int) {
		if problem := checkKafkaName(value, maxLen); problem != "" {
			errs = append(errs, fieldErr(structName, field, value, "%s", problem))
		}
	}
	check("Name", k.Name, MaxNameLength)
	check("SourceTopic", k.SourceTopic, MaxTopicLength)
	check("SinkTopic", k.SinkTopic, MaxTopicLength)
	check("GroupID", k.GroupID, MaxTopicLength)
	check("TransactionalIDPrefix", k.TransactionalIDPrefix, MaxNameLength)
	if k.SourceTopic != "" && k.SourceTopic == k.SinkTopic {
		errs = append(errs, fieldErr(structName, "SinkTopic", k.SinkTopic, "is the same as SourceTopic; the job would read its own output"))
	}
	if len(k.Brokers) == 0 {
		errs = append(errs, fieldErr(structName, "Brokers", "", "at least one host:port is required"))
	}
	for i, b := range k.Brokers {
		if problem := checkBroker(b); problem != "" {
			errs = append(errs, fieldErr(structName, fmt.Sprintf("Brokers[%d]", i), b, "%s", problem))
		}
	}
	if k.Parallelism < 0 || k.Parallelism > maxParallelism {
		errs = append(errs, fieldErr(structName, "Parallelism", strconv.Itoa(k.Parallelism), "must be 0 (cluster default) to %d", maxParallelism))
	}
	if k.CheckpointInterval < MinCheckpointInterval {
		errs = append(errs, fieldErr(structName, "CheckpointInterval", k.CheckpointInterval.String(),
			"must be at least %s: the exactly-once sink only commits on checkpoints", MinCheckpointInterval))
	}
	if err := CheckKafkaProperties(k.KafkaProperties); err != nil {
		errs = append(errs, fieldErr(structName, "KafkaProperties", "", "%s", strings.TrimPrefix(err.Error(), "flinksql: ")))
	}
	timeout := k.effectiveTransactionTimeout()
	switch {
	case k.TransactionTimeout < 0 || timeout > MaxTransactionTimeout:
		errs = append(errs, fieldErr(structName, "TransactionTimeout", k.TransactionTimeout.String(),
			"must be 0 (default %s) or at most %s, the brokers' transaction.max.timeout.ms", DefaultTransactionTimeout, MaxTransactionTimeout))
	case timeout <= k.CheckpointInterval:
		errs = append(errs, fieldErr(structName, "TransactionTimeout", timeout.String(),
			"must be longer than CheckpointInterval %s, or transactions expire before they are committed", k.CheckpointInterval))
	}
	return errors.Join(errs...)
}

func (k JobSettings) effectiveTransactionTimeout() time.Duration {
	if k.TransactionTimeout == 0 {
		return DefaultTransactionTimeout
	}
	return k.TransactionTimeout
}

// jobSettings are the SET statements each job starts with. Every job sets
// every key it relies on, because SET outlives the statement in a session.
func (k JobSettings) jobSettings() []string {
	stmts := []string{
		setStatement("execution.runtime-mode", "streaming"),
		setStatement("pipeline.name", k.Name),
		setStatement("execution.checkpointing.interval", strconv.FormatInt(k.CheckpointInterval.Milliseconds(), 10)+" ms"),
		setStatement("execution.checkpointing.mode", "EXACTLY_ONCE"),
	}
	if k.Parallelism > 0 {
		stmts = append(stmts, setStatement("parallelism.default", strconv.Itoa(k.Parallelism)))
	} else {
		stmts = append(stmts, "RESET "+quoteString("parallelism.default"))
	}
	return stmts
}

func (k JobSettings) sourceOptions() []option {
	return append([]option{
		{"connector", "kafka"},
		{"topic", k.SourceTopic},
		{"properties.bootstrap.servers", strings.Join(k.Brokers, ",")},
		{"properties.group.id", k.GroupID},
		{"properties.isolation.level", "read_committed"},
		{"scan.startup.mode", "earliest-offset"},
	}, k.kafkaPropertyOptions()...)
}

// The sinks' batching; see sinkOptions.
const (
	sinkLinger     = 100 * time.Millisecond
	sinkBatchBytes = 256 << 10
)

func (k JobSettings) sinkOptions() []option {
	return append([]option{
		{"connector", "kafka"},
		{"topic", k.SinkTopic},
		{"properties.bootstrap.servers", strings.Join(k.Brokers, ",")},
		{"sink.delivery-guarantee", "exactly-once"},
		{"sink.transactional-id-prefix", k.TransactionalIDPrefix},
		{"properties.transaction.timeout.ms", strconv.FormatInt(k.effectiveTransactionTimeout().Milliseconds(), 10)},
		// An exactly-once sink's records become visible only when the
		// checkpoint commits its transaction, seconds later, so waiting
		// up to sinkLinger to fill larger batches costs no visible
		// latency and saves the brokers a produce request, a log append
		// and the wake-up of every fetch waiting on the partition per
		// batch not sent (the client's defaults: 5 ms, 16 KiB).
		{"properties.linger.ms", strconv.FormatInt(sinkLinger.Milliseconds(), 10)},
		{"properties.batch.size", strconv.Itoa(sinkBatchBytes)},
	}, k.kafkaPropertyOptions()...)
}

// keyedJSON are the format options of a table whose key column is the raw
// record key and whose other physical columns are the JSON value.
func keyedJSON(keyColumn string) []option {
	return []option{
		{"key.format", "raw"},
		{"key.fields", keyColumn},
		{"value.format", "json"},
		{"value.fields-include", "EXCEPT_KEY"},
	}
}

func dropTable(name string) string {
	return "DROP TEMPORARY TABLE IF EXISTS " + quoteIdent(name)
}

// Statements returns the job's SQL, to run in order in one session: the
// job's settings, its two temporary tables (dropped first, so the same job
// can be submitted again in the session) and the INSERT that submits the
// Flink job.
func (j EnrichJob) Statements() ([]string, error) {
	if err := j.Validate(); err != nil {
		return nil, err
	}
	k := JobSettings(j)
	source, sink := tableName(k.Name, "raw"), tableName(k.Name, "enriched")
	const key = "record_key"
	createSource := "CREATE TEMPORARY TABLE " + quoteIdent(source) + " (\n" +
		"  `record_key` STRING,\n" +
		"  `run_id` STRING,\n" +
		"  `seq` BIGINT,\n" +
		"  `logical_queue` STRING,\n" +
		"  `produced_at` STRING,\n" +
		"  `payload` STRING,\n" +
		"  `headers` MAP<STRING, BYTES> METADATA VIRTUAL\n" +
		") " + withClause(append(k.sourceOptions(), keyedJSON(key)...))
	createSink := "CREATE TEMPORARY TABLE " + quoteIdent(sink) + " (\n" +
		"  `record_key` STRING,\n" +
		"  `run_id` STRING,\n" +
		"  `seq` BIGINT,\n" +
		"  `logical_queue` STRING,\n" +
		"  `produced_at` STRING,\n" +
		"  `payload` STRING,\n" +
		"  `correlation_id` STRING,\n" +
		"  `headers` MAP<STRING, BYTES> METADATA\n" +
		") " + withClause(append(k.sinkOptions(), keyedJSON(key)...))
	// The one-element UNNEST is a per-record "let": the planner inlines a
	// plain subquery column into every use, and Flink 2.2's code generator
	// does not share common subexpressions, so a column used for the field
	// and the header would be hashed twice. Produced by a correlate, the
	// hash is a column of its own, computed once.
	insert := "INSERT INTO " + quoteIdent(sink) + "\n" +
		"SELECT\n" +
		"  r.`record_key`, r.`run_id`, r.`seq`, r.`logical_queue`, r.`produced_at`, r.`payload`,\n" +
		"  c.`correlation_id`,\n" +
		"  MAP[\n" +
		"    'correlation.id', ENCODE(c.`correlation_id`, 'UTF-8'),\n" +
		"    'logical.queue', r.`headers`['logical.queue']\n" +
		"  ]\n" +
		"FROM " + quoteIdent(source) + " AS r\n" +
		"CROSS JOIN UNNEST(ARRAY[LOWER(MD5(r.`run_id` || ':' || CAST(r.`seq` AS STRING)))]) AS c (`correlation_id`)"
	stmts := append(k.jobSettings(), dropTable(source), dropTable(sink), createSource, createSink, insert)
	return stmts, nil
}

// Statements returns the job's SQL, to run in order in one session: the
// job's settings, its two temporary tables (dropped first) and the INSERT
// that submits the Flink job.
func (j SplitJob) Statements() ([]string, error) {
	if err := j.Validate(); err != nil {
		return nil, err
	}
	k := JobSettings(j)
	source, sink := tableName(k.Name, "responses"), tableName(k.Name, "final")
	createSource := "CREATE TEMPORARY TABLE " + quoteIdent(source) + " (\n" +
		"  `run_id` STRING,\n" +
		"  `batch_id` STRING,\n" +
		"  `batch_number` BIGINT,\n" +
		"  `messages` ARRAY<ROW<`seq` BIGINT, `logical_queue` STRING, `correlation_id` STRING, `sending_id` STRING, `produced_at` STRING>>\n" +
		") " + withClause(append(k.sourceOptions(), option{"value.format", "json"}))
	createSink := "CREATE TEMPORARY TABLE " + quoteIdent(sink) + " (\n" +
		"  `record_key` STRING,\n" +
		"  `run_id` STRING,\n" +
		"  `seq` BIGINT,\n" +
		"  `logical_queue` STRING,\n" +
		"  `produced_at` STRING,\n" +
		"  `correlation_id` STRING,\n" +
		"  `sending_id` STRING,\n" +
		"  `batch_number` BIGINT,\n" +
		"  `headers` MAP<STRING, BYTES> METADATA\n" +
		") " + withClause(append(k.sinkOptions(), keyedJSON("record_key")...))
	insert := "INSERT INTO " + quoteIdent(sink) + "\n" +
		"SELECT\n" +
		"  m.`logical_queue`, r.`run_id`, m.`seq`, m.`logical_queue`, m.`produced_at`,\n" +
		"  m.`correlation_id`, m.`sending_id`, r.`batch_number`,\n" +
		"  MAP[\n" +
		"    'correlation.id', ENCODE(m.`correlation_id`, 'UTF-8'),\n" +
		"    'sending.id', ENCODE(m.`sending_id`, 'UTF-8'),\n" +
		"    'logical.queue', ENCODE(m.`logical_queue`, 'UTF-8'),\n" +
		"    'batch.number', ENCODE(CAST(r.`batch_number` AS STRING), 'UTF-8')\n" +
		"  ]\n" +
		"FROM " + quoteIdent(source) + " AS r\n" +
		"CROSS JOIN UNNEST(r.`messages`) AS m (`seq`, `logical_queue`, `correlation_id`, `sending_id`, `produced_at`)"
	stmts := append(k.jobSettings(), dropTable(source), dropTable(sink), createSource, createSink, insert)
	return stmts, nil
}

// JoinScript joins statements into one SQL text, each ended by ';', as the SQL
// client would take it.
func JoinScript(stmts []string) string {
	return strings.Join(stmts, ";\n\n") + ";\n"
}
