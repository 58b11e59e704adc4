SET 'execution.runtime-mode' = 'streaming';

SET 'pipeline.name' = 'flowproof.nightly-2026-11-27.enrich';

SET 'execution.checkpointing.interval' = '2000 ms';

SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';

SET 'parallelism.default' = '3';

DROP TEMPORARY TABLE IF EXISTS `flowproof_nightly_2026_11_27_enrich_raw`;

DROP TEMPORARY TABLE IF EXISTS `flowproof_nightly_2026_11_27_enrich_enriched`;

CREATE TEMPORARY TABLE `flowproof_nightly_2026_11_27_enrich_raw` (
  `record_key` STRING,
  `run_id` STRING,
  `seq` BIGINT,
  `logical_queue` STRING,
  `produced_at` STRING,
  `payload` STRING,
  `headers` MAP<STRING, BYTES> METADATA VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = 'flowproof.nightly-2026-11-27.raw',
  'properties.bootstrap.servers' = '127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094',
  'properties.group.id' = 'flowproof.nightly-2026-11-27.enrich',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY'
);

CREATE TEMPORARY TABLE `flowproof_nightly_2026_11_27_enrich_enriched` (
  `record_key` STRING,
  `run_id` STRING,
  `seq` BIGINT,
  `logical_queue` STRING,
  `produced_at` STRING,
  `payload` STRING,
  `correlation_id` STRING,
  `headers` MAP<STRING, BYTES> METADATA
) WITH (
  'connector' = 'kafka',
  'topic' = 'flowproof.nightly-2026-11-27.enriched',
  'properties.bootstrap.servers' = '127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'flowproof.nightly-2026-11-27.enrich',
  'properties.transaction.timeout.ms' = '900000',
  'properties.linger.ms' = '100',
  'properties.batch.size' = '262144',
  'key.format' = 'raw',
  'key.fields' = 'record_key',
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY'
);

INSERT INTO `flowproof_nightly_2026_11_27_enrich_enriched`
SELECT
  r.`record_key`, r.`run_id`, r.`seq`, r.`logical_queue`, r.`produced_at`, r.`payload`,
  c.`correlation_id`,
  MAP[
    'correlation.id', ENCODE(c.`correlation_id`, 'UTF-8'),
    'logical.queue', r.`headers`['logical.queue']
  ]
FROM `flowproof_nightly_2026_11_27_enrich_raw` AS r
CROSS JOIN UNNEST(ARRAY[LOWER(MD5(r.`run_id` || ':' || CAST(r.`seq` AS STRING)))]) AS c (`correlation_id`);
