SET 'execution.runtime-mode' = 'streaming';

SET 'pipeline.name' = 'flowproof.nightly-2026-11-27.split';

SET 'execution.checkpointing.interval' = '10000 ms';

SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';

RESET 'parallelism.default';

DROP TEMPORARY TABLE IF EXISTS `flowproof_nightly_2026_11_27_split_responses`;

DROP TEMPORARY TABLE IF EXISTS `flowproof_nightly_2026_11_27_split_final`;

CREATE TEMPORARY TABLE `flowproof_nightly_2026_11_27_split_responses` (
  `run_id` STRING,
  `batch_id` STRING,
  `batch_number` BIGINT,
  `messages` ARRAY<ROW<`seq` BIGINT, `logical_queue` STRING, `correlation_id` STRING, `sending_id` STRING, `produced_at` STRING>>
) WITH (
  'connector' = 'kafka',
  'topic' = 'flowproof.nightly-2026-11-27.responses',
  'properties.bootstrap.servers' = 'kafka-1.internal:9092,[::1]:9093',
  'properties.group.id' = 'flowproof.nightly-2026-11-27.split',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'properties.client.dns.lookup' = 'use_all_dns_ips',
  'properties.sasl.jaas.config' = 'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule required username="flowproof" password="g0lden''pa\"ss\\word";',
  'properties.sasl.mechanism' = 'SCRAM-SHA-512',
  'properties.security.protocol' = 'SASL_SSL',
  'properties.ssl.truststore.location' = '/opt/flink/kafka-ca.pem',
  'properties.ssl.truststore.type' = 'PEM',
  'value.format' = 'json'
);

CREATE TEMPORARY TABLE `flowproof_nightly_2026_11_27_split_final` (
  `record_key` STRING,
  `run_id` STRING,
  `seq` BIGINT,
  `logical_queue` STRING,
  `produced_at` STRING,
  `correlation_id` STRING,
  `sending_id` STRING,
  `batch_number` BIGINT,
  `headers` MAP<STRING, BYTES> METADATA
) WITH (
  'connector' = 'kafka',
  'topic' = 'flowproof.nightly-2026-11-27.final',
  'properties.bootstrap.servers' = 'kafka-1.internal:9092,[::1]:9093',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'flowproof.nightly-2026-11-27.split',
  'properties.transaction.timeout.ms' = '1800000',
  'properties.linger.ms' = '100',
  'properties.batch.size' = '262144',
  'properties.client.dns.lookup' = 'use_all_dns_ips',
  'properties.sasl.jaas.config' = 'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule required username="flowproof" password="g0lden''pa\"ss\\word";',
  'properties.sasl.mechanism' = 'SCRAM-SHA-512',
  'properties.security.protocol' = 'SASL_SSL',
  'properties.ssl.truststore.location' = '/opt/flink/kafka-ca.pem',
  'properties.ssl.truststore.type' = 'PEM',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY'
);

INSERT INTO `flowproof_nightly_2026_11_27_split_final`
SELECT
  m.`logical_queue`, r.`run_id`, m.`seq`, m.`logical_queue`, m.`produced_at`,
  m.`correlation_id`, m.`sending_id`, r.`batch_number`,
  MAP[
    'correlation.id', ENCODE(m.`correlation_id`, 'UTF-8'),
    'sending.id', ENCODE(m.`sending_id`, 'UTF-8'),
    'logical.queue', ENCODE(m.`logical_queue`, 'UTF-8'),
    'batch.number', ENCODE(CAST(r.`batch_number` AS STRING), 'UTF-8')
  ]
FROM `flowproof_nightly_2026_11_27_split_responses` AS r
CROSS JOIN UNNEST(r.`messages`) AS m (`seq`, `logical_queue`, `correlation_id`, `sending_id`, `produced_at`);
