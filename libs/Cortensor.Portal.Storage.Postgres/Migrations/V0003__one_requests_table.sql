-- V0003: usage events and request logs move into ONE monthly-partitioned table, requests (one row per request),
-- and usage_events / request_logs become views over it with exactly their old columns (docs/schema.md).
-- Why: ingest cost is index maintenance. Two tables meant 2 heap inserts and 6 B-tree insertions per request;
-- one table means 1 heap insert and 3, and the shared columns are stored once.
-- {{schema}} is replaced by the configured schema as a quoted identifier. Every existing row is carried over.
-- The old tables are dropped without CASCADE: an object of the user's that depends on them (a view) makes the
-- migration fail and change nothing rather than vanish silently. Grants on them are not carried over to the views.

-- The old tables are usually partitioned alike: join them month by month.
SET LOCAL enable_partitionwise_join = on;

-- A row has a usage part (outcome … stream; outcome NULL = none) and/or a log part (method … upstream_status;
-- method NULL = none). request_id, occurred_at, org_id, key_id and model are the usage event's and, normally,
-- the log's too. A log that disagrees with its usage event on any of them (the gateway never writes one, the
-- contract allows it) keeps its own values in the "detached" columns log_occurred_at … log_model.
CREATE TABLE {{schema}}.requests (
    request_id         text COLLATE "C" NOT NULL,
    occurred_at        timestamptz NOT NULL,
    org_id             text COLLATE "C" NULL,
    key_id             text COLLATE "C" NULL,
    model              text        NULL,
    pool               text        NULL,
    outcome            smallint    NULL CHECK (outcome BETWEEN 0 AND 3),
    prompt_tokens      integer     NULL,
    completion_tokens  integer     NULL,
    tokens_estimated   boolean     NULL,
    stream             boolean     NULL,
    method             text        NULL,
    path               text        NULL,
    status_code        integer     NULL,
    error_code         text        NULL,
    latency_ms         integer     NULL,
    router_id          text        NULL,
    upstream_status    integer     NULL,
    log_occurred_at    timestamptz NULL,
    log_org_id         text COLLATE "C" NULL,
    log_key_id         text COLLATE "C" NULL,
    log_model          text        NULL,
    CONSTRAINT requests_has_a_part CHECK (outcome IS NOT NULL OR method IS NOT NULL),
    CONSTRAINT requests_usage_part CHECK (outcome IS NULL
        OR (prompt_tokens IS NOT NULL AND completion_tokens IS NOT NULL AND tokens_estimated IS NOT NULL AND stream IS NOT NULL)),
    CONSTRAINT requests_log_part CHECK (method IS NULL
        OR (path IS NOT NULL AND status_code IS NOT NULL AND latency_ms IS NOT NULL)),
    CONSTRAINT requests_detached_log CHECK (log_occurred_at IS NULL
        OR (method IS NOT NULL AND outcome IS NOT NULL)),
    CONSTRAINT requests_detached_log_columns CHECK (log_occurred_at IS NOT NULL
        OR (log_org_id IS NULL AND log_key_id IS NULL AND log_model IS NULL))
) PARTITION BY RANGE (occurred_at);

CREATE TABLE {{schema}}.requests_default PARTITION OF {{schema}}.requests DEFAULT;

-- The same months as before, so the carried-over rows land in monthly partitions, not in the default one.
DO $$
DECLARE
    month timestamptz;
BEGIN
    FOR month IN
        SELECT DISTINCT make_timestamptz(substring(c.relname FROM '_p([0-9]{4})[0-9]{2}$')::integer,
                                         substring(c.relname FROM '_p[0-9]{4}([0-9]{2})$')::integer, 1, 0, 0, 0, 'UTC')
        FROM pg_catalog.pg_inherits i
        JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent IN ('{{schema}}.usage_events'::regclass, '{{schema}}.request_logs'::regclass)
          AND c.relname ~ '^(usage_events|request_logs)_p[0-9]{4}(0[1-9]|1[0-2])$'
    LOOP
        EXECUTE format('CREATE TABLE %s.%I PARTITION OF %s.requests FOR VALUES FROM (%L) TO (%L)',
            '{{schema}}', 'requests_p' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM'), '{{schema}}',
            month, month + interval '1 month');
    END LOOP;
END
$$;

-- A usage event and a log row are the same request when request_id and occurred_at match (the old primary
-- keys). Either may be missing: it becomes a row with one part.
INSERT INTO {{schema}}.requests (
    request_id, occurred_at, org_id, key_id, model,
    pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream,
    method, path, status_code, error_code, latency_ms, router_id, upstream_status,
    log_occurred_at, log_org_id, log_key_id, log_model)
SELECT
    COALESCE(u.request_id, l.request_id), COALESCE(u.occurred_at, l.occurred_at),
    CASE WHEN u.request_id IS NULL THEN l.org_id ELSE u.org_id END,
    CASE WHEN u.request_id IS NULL THEN l.key_id ELSE u.key_id END,
    CASE WHEN u.request_id IS NULL THEN l.model ELSE u.model END,
    u.pool, u.outcome, u.prompt_tokens, u.completion_tokens, u.tokens_estimated, u.stream,
    l.method, l.path, l.status_code, l.error_code, l.latency_ms, l.router_id, l.upstream_status,
    CASE WHEN m.detached THEN l.occurred_at END,
    CASE WHEN m.detached THEN l.org_id END,
    CASE WHEN m.detached THEN l.key_id END,
    CASE WHEN m.detached THEN l.model END
FROM {{schema}}.usage_events u
FULL JOIN {{schema}}.request_logs l ON l.request_id = u.request_id AND l.occurred_at = u.occurred_at
CROSS JOIN LATERAL (SELECT u.request_id IS NOT NULL AND l.request_id IS NOT NULL
    AND ROW(u.org_id, u.key_id, u.model) IS DISTINCT FROM ROW(l.org_id, l.key_id, l.model) AS detached) m;

DROP TABLE {{schema}}.usage_events;
DROP TABLE {{schema}}.request_logs;

-- Indexes after the copy (one sort per partition instead of row-by-row insertion). Postgres wants the partition
-- key in every unique constraint, so idempotency is the primary key (request_id, occurred_at); it also serves
-- look-ups by request_id alone (one probe per partition).
ALTER TABLE {{schema}}.requests ADD CONSTRAINT requests_pkey PRIMARY KEY (request_id, occurred_at);
CREATE INDEX requests_org_id_occurred_at_idx ON {{schema}}.requests (org_id, occurred_at);
CREATE INDEX requests_key_id_occurred_at_idx ON {{schema}}.requests (key_id, occurred_at);
-- Rows with a detached log or with one part only are rare (never written by the gateway). This partial index
-- finds them without scanning the table: the request_logs view's second branch, and the writer's merge path
-- when it completes a stored row. Ordinary rows pay only the evaluation of its predicate.
CREATE INDEX requests_irregular_idx ON {{schema}}.requests (request_id)
    WHERE log_occurred_at IS NOT NULL OR outcome IS NULL OR method IS NULL;

-- The old tables, same names, same columns, same order. usage_events is a simple view, so it stays
-- insertable (the check option refuses a row without a usage part).
CREATE VIEW {{schema}}.usage_events AS
SELECT request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream
FROM {{schema}}.requests
WHERE outcome IS NOT NULL
WITH CASCADED CHECK OPTION;

CREATE VIEW {{schema}}.request_logs AS
SELECT request_id, occurred_at, org_id, key_id, method, path, model, status_code, error_code, latency_ms, router_id, upstream_status
FROM {{schema}}.requests
WHERE method IS NOT NULL AND log_occurred_at IS NULL
UNION ALL
SELECT request_id, log_occurred_at, log_org_id, log_key_id, method, path, log_model, status_code, error_code, latency_ms, router_id, upstream_status
FROM {{schema}}.requests
WHERE log_occurred_at IS NOT NULL;

COMMENT ON TABLE {{schema}}.requests IS 'One row per request: its usage event and its request log (V0003). Read through the usage_events and request_logs views.';

ANALYZE {{schema}}.requests;
