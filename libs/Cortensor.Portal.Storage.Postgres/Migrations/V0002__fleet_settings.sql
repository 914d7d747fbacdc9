-- V0002: the fleet settings that V0001 had no columns for (PoolOptions, ModelOptions) and the member order;
-- the same logical columns as the SQLite V0002 (docs/schema.md).
-- {{schema}} is replaced by the configured schema as a quoted identifier. Additive for existing rows: they keep
-- their values and get the option defaults in the new columns.

ALTER TABLE {{schema}}.router_pools
    -- PoolOptions.PromptType (null = derived from the prompt format).
    ADD COLUMN prompt_type                integer          NULL CHECK (prompt_type IS NULL OR prompt_type >= 0),
    -- PoolOptions.PrecommitTimeoutSeconds (null = not sent).
    ADD COLUMN precommit_timeout_seconds  integer          NULL CHECK (precommit_timeout_seconds IS NULL OR precommit_timeout_seconds BETWEEN 1 AND 900),
    -- PoolOptions.HttpTimeoutSlackSeconds.
    ADD COLUMN http_timeout_slack_seconds integer          NOT NULL DEFAULT 30 CHECK (http_timeout_slack_seconds BETWEEN 0 AND 600),
    -- PoolOptions.Defaults (SamplingDefaults).
    ADD COLUMN default_max_tokens         integer          NOT NULL DEFAULT 512 CHECK (default_max_tokens >= 1),
    ADD COLUMN default_temperature        double precision NULL,
    ADD COLUMN default_top_p              double precision NULL,
    ADD COLUMN default_top_k              integer          NULL;

-- Position of the member in PoolOptions.Members (0-based); members load in this order. Rows from before the
-- upgrade are numbered in (router_id, session_id) order, the order they loaded in.
-- OpenAI-compatible members have no session: session_id becomes nullable, so the key moves to
-- (pool_name, position), and (pool_name, router_id, session_id) stays unique with a null session counting as
-- one value (an expression index: NULLS NOT DISTINCT needs PostgreSQL 15).
ALTER TABLE {{schema}}.router_pool_members ADD COLUMN position integer NOT NULL DEFAULT 0;

UPDATE {{schema}}.router_pool_members m
SET position = n.position
FROM (
    SELECT pool_name, router_id, session_id,
           (row_number() OVER (PARTITION BY pool_name ORDER BY router_id COLLATE "C", session_id) - 1)::integer AS position
    FROM {{schema}}.router_pool_members
) n
WHERE n.pool_name = m.pool_name AND n.router_id = m.router_id AND n.session_id = m.session_id;

ALTER TABLE {{schema}}.router_pool_members
    DROP CONSTRAINT router_pool_members_pkey,
    ALTER COLUMN session_id DROP NOT NULL,
    ADD CONSTRAINT router_pool_members_pkey PRIMARY KEY (pool_name, position),
    ADD CONSTRAINT router_pool_members_position_check CHECK (position >= 0);

CREATE UNIQUE INDEX router_pool_members_pool_name_router_id_session_id_key
    ON {{schema}}.router_pool_members (pool_name, router_id, COALESCE(session_id, -1));

-- DeleteRouterAsync looks members up by router.
CREATE INDEX router_pool_members_router_id_idx ON {{schema}}.router_pool_members (router_id);

-- ModelOptions.OwnedBy and ModelOptions.Created (Unix SECONDS, as shown in /v1/models; the default is 2026-01-01).
ALTER TABLE {{schema}}.router_pool_models
    ADD COLUMN owned_by              text   NOT NULL DEFAULT 'cortensor',
    ADD COLUMN created_unix_seconds  bigint NOT NULL DEFAULT 1767225600;
