-- V0001: the logical schema of docs/schema.md, SQLite dialect.
-- Timestamps are INTEGER Unix microseconds (UTC); money is INTEGER minor units; ids are TEXT;
-- booleans are INTEGER 0/1; lists and documents are JSON text. STRICT tables enforce the column types.
-- SqliteMigrator runs this inside one transaction and records the version in schema_version itself.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    auth_provider TEXT    NOT NULL,
    auth_subject  TEXT    NOT NULL,
    email         TEXT    NULL,
    display_name  TEXT    NULL,
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at    INTEGER NOT NULL,
    UNIQUE (auth_provider, auth_subject)
) STRICT;

CREATE TABLE organizations (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    owner_user_id TEXT    NULL,
    status        TEXT    NOT NULL DEFAULT 'active',
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE organization_members (
    org_id     TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT;

CREATE INDEX ix_organization_members_user_id ON organization_members (user_id);

CREATE TABLE plans (
    id                       TEXT    NOT NULL PRIMARY KEY,
    name                     TEXT    NOT NULL,
    description              TEXT    NOT NULL DEFAULT '',
    requests_per_minute      INTEGER NULL,
    tokens_per_minute        INTEGER NULL,
    weekly_request_allowance INTEGER NULL,
    price_minor              INTEGER NULL,
    currency                 TEXT    NULL,
    created_at               INTEGER NOT NULL
) STRICT;

CREATE TABLE plan_subscriptions (
    id           TEXT    NOT NULL PRIMARY KEY,
    org_id       TEXT    NOT NULL,
    plan_id      TEXT    NOT NULL,
    period_start INTEGER NOT NULL,
    period_end   INTEGER NULL,
    status       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX ix_plan_subscriptions_org_id_period_start ON plan_subscriptions (org_id, period_start);

CREATE TABLE api_keys (
    key_id         TEXT    NOT NULL PRIMARY KEY,
    org_id         TEXT    NOT NULL,
    name           TEXT    NOT NULL DEFAULT '',
    environment    TEXT    NOT NULL CHECK (environment IN ('live', 'test')),
    hash           BLOB    NOT NULL CHECK (length(hash) = 32),
    display_prefix TEXT    NOT NULL,
    scopes         TEXT    NOT NULL DEFAULT '[]',
    allowed_models TEXT    NULL,
    provider       TEXT    NOT NULL DEFAULT 'local' CHECK (provider IN ('local', 'unkey')),
    external_id    TEXT    NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NULL,
    revoked_at     INTEGER NULL,
    last_used_at   INTEGER NULL
) STRICT;

CREATE UNIQUE INDEX ux_api_keys_hash ON api_keys (hash);
CREATE INDEX ix_api_keys_org_id_created_at ON api_keys (org_id, created_at);

CREATE TABLE model_access_policies (
    id           TEXT    NOT NULL PRIMARY KEY,
    subject_type TEXT    NOT NULL CHECK (subject_type IN ('plan', 'org', 'key')),
    subject_id   TEXT    NOT NULL,
    model_alias  TEXT    NOT NULL,
    effect       TEXT    NOT NULL CHECK (effect IN ('allow', 'deny')),
    created_at   INTEGER NOT NULL,
    UNIQUE (subject_type, subject_id, model_alias)
) STRICT;

CREATE TABLE routers (
    id          TEXT    NOT NULL PRIMARY KEY,
    base_url    TEXT    NOT NULL,
    protocol    TEXT    NOT NULL,
    api_version TEXT    NOT NULL,
    api_key_ref TEXT    NULL, -- a secret reference (name in a vault or env var), never the key itself
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE router_pools (
    name                 TEXT    NOT NULL PRIMARY KEY,
    state                TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining', 'disabled')),
    prompt_format        TEXT    NOT NULL,
    task_timeout_seconds INTEGER NOT NULL,
    upstream_model       TEXT    NULL,
    created_at           INTEGER NOT NULL
) STRICT;

CREATE TABLE router_pool_members (
    pool_name  TEXT    NOT NULL,
    router_id  TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    PRIMARY KEY (pool_name, router_id, session_id)
) STRICT;

CREATE TABLE router_pool_models (
    alias             TEXT    NOT NULL PRIMARY KEY,
    pool_name         TEXT    NOT NULL,
    context_tokens    INTEGER NOT NULL,
    max_output_tokens INTEGER NOT NULL,
    enabled           INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at        INTEGER NOT NULL
) STRICT;

CREATE INDEX ix_router_pool_models_pool_name ON router_pool_models (pool_name);

-- Idempotent by request_id: the sink writes with INSERT OR IGNORE.
CREATE TABLE usage_events (
    request_id        TEXT    NOT NULL PRIMARY KEY,
    occurred_at       INTEGER NOT NULL,
    org_id            TEXT    NULL,
    key_id            TEXT    NULL,
    model             TEXT    NULL,
    pool              TEXT    NULL,
    outcome           INTEGER NOT NULL CHECK (outcome BETWEEN 0 AND 3), -- 0 succeeded, 1 rejected, 2 upstream_failed, 3 cancelled
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    tokens_estimated  INTEGER NOT NULL DEFAULT 0 CHECK (tokens_estimated IN (0, 1)),
    stream            INTEGER NOT NULL DEFAULT 0 CHECK (stream IN (0, 1))
) STRICT;

CREATE INDEX ix_usage_events_org_id_occurred_at ON usage_events (org_id, occurred_at);
CREATE INDEX ix_usage_events_key_id_occurred_at ON usage_events (key_id, occurred_at);

CREATE TABLE request_logs (
    request_id      TEXT    NOT NULL PRIMARY KEY,
    occurred_at     INTEGER NOT NULL,
    org_id          TEXT    NULL,
    key_id          TEXT    NULL,
    method          TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    model           TEXT    NULL,
    status_code     INTEGER NOT NULL,
    error_code      TEXT    NULL,
    latency_ms      INTEGER NOT NULL,
    router_id       TEXT    NULL,
    upstream_status INTEGER NULL
) STRICT;

CREATE INDEX ix_request_logs_org_id_occurred_at ON request_logs (org_id, occurred_at);
CREATE INDEX ix_request_logs_key_id_occurred_at ON request_logs (key_id, occurred_at);

-- Append-only.
CREATE TABLE billing_ledger (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    org_id       TEXT    NOT NULL,
    occurred_at  INTEGER NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('grant', 'debit', 'credit', 'adjustment')),
    amount_minor INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    request_id   TEXT    NULL,
    description  TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE UNIQUE INDEX ux_billing_ledger_kind_request_id ON billing_ledger (kind, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX ix_billing_ledger_org_id_occurred_at ON billing_ledger (org_id, occurred_at);

-- Append-only.
CREATE TABLE audit_log (
    id          TEXT    NOT NULL PRIMARY KEY,
    occurred_at INTEGER NOT NULL,
    actor_type  TEXT    NOT NULL CHECK (actor_type IN ('user', 'system', 'admin')),
    actor_id    TEXT    NULL,
    action      TEXT    NOT NULL,
    org_id      TEXT    NULL,
    target_id   TEXT    NULL,
    details     TEXT    NULL CHECK (details IS NULL OR json_valid(details))
) STRICT;

CREATE INDEX ix_audit_log_org_id_occurred_at ON audit_log (org_id, occurred_at);
