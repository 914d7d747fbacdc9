-- V0004: usage_events accepts outcome 4, interrupted (a request the gateway never finished, rebuilt from the usage
-- journal on the next start). SQLite cannot alter a CHECK constraint, so the table is rebuilt: create the new table,
-- copy every row, drop the old one, rename the new one into place, then re-create its two indexes. Same columns in
-- the same order, same STRICT typing and defaults. No other table, index, trigger or view refers to usage_events.
-- The copy rewrites every usage row: on a large database try the upgrade on a copy first.
-- SqliteMigrator runs this inside one transaction and records the version in schema_version itself.

CREATE TABLE usage_events_v0004 (
    request_id        TEXT    NOT NULL PRIMARY KEY,
    occurred_at       INTEGER NOT NULL,
    org_id            TEXT    NULL,
    key_id            TEXT    NULL,
    model             TEXT    NULL,
    pool              TEXT    NULL,
    outcome           INTEGER NOT NULL CHECK (outcome BETWEEN 0 AND 4), -- 0 succeeded, 1 rejected, 2 upstream_failed, 3 cancelled, 4 interrupted
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    tokens_estimated  INTEGER NOT NULL DEFAULT 0 CHECK (tokens_estimated IN (0, 1)),
    stream            INTEGER NOT NULL DEFAULT 0 CHECK (stream IN (0, 1))
) STRICT;

INSERT INTO usage_events_v0004
    (request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream)
SELECT request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream
FROM usage_events;

DROP TABLE usage_events;

ALTER TABLE usage_events_v0004 RENAME TO usage_events;

CREATE INDEX ix_usage_events_org_id_occurred_at ON usage_events (org_id, occurred_at);
CREATE INDEX ix_usage_events_key_id_occurred_at ON usage_events (key_id, occurred_at);
