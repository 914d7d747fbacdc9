-- V0001: the logical schema of docs/schema.md.
-- {{schema}} is replaced by the configured schema as a quoted identifier (for example "portal").
-- Plain DDL only: no extensions, no superuser features, everything schema-qualified.

CREATE TABLE {{schema}}.users (
    id             text        PRIMARY KEY,
    auth_provider  text        NOT NULL,
    auth_subject   text        NOT NULL,
    email          text        NOT NULL DEFAULT '',
    display_name   text        NOT NULL DEFAULT '',
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at     timestamptz NOT NULL,
    CONSTRAINT users_auth_provider_auth_subject_key UNIQUE (auth_provider, auth_subject)
);

CREATE TABLE {{schema}}.organizations (
    id             text        PRIMARY KEY,
    name           text        NOT NULL,
    owner_user_id  text        NULL,
    status         text        NOT NULL DEFAULT 'active',
    created_at     timestamptz NOT NULL
);

CREATE TABLE {{schema}}.organization_members (
    org_id      text        NOT NULL REFERENCES {{schema}}.organizations (id) ON DELETE CASCADE,
    user_id     text        NOT NULL REFERENCES {{schema}}.users (id) ON DELETE CASCADE,
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

CREATE INDEX organization_members_user_id_idx ON {{schema}}.organization_members (user_id);

CREATE TABLE {{schema}}.plans (
    id                        text        PRIMARY KEY,
    name                      text        NOT NULL,
    description               text        NOT NULL DEFAULT '',
    requests_per_minute       integer     NULL,
    tokens_per_minute         bigint      NULL,
    weekly_request_allowance  bigint      NULL,
    price_minor               bigint      NULL,
    currency                  text        NULL,
    created_at                timestamptz NOT NULL
);

CREATE TABLE {{schema}}.plan_subscriptions (
    id            text        PRIMARY KEY,
    org_id        text        NOT NULL,
    plan_id       text        NOT NULL,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NULL,
    status        text        NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE INDEX plan_subscriptions_org_id_period_start_idx ON {{schema}}.plan_subscriptions (org_id, period_start);

CREATE TABLE {{schema}}.api_keys (
    key_id          text        PRIMARY KEY,
    org_id          text        NOT NULL,
    name            text        NOT NULL DEFAULT '',
    environment     text        NOT NULL CHECK (environment IN ('live', 'test')),
    hash            bytea       NOT NULL CHECK (octet_length(hash) = 32),
    display_prefix  text        NOT NULL,
    scopes          text[]      NOT NULL DEFAULT '{}',
    allowed_models  text[]      NULL,
    provider        text        NOT NULL DEFAULT 'local' CHECK (provider IN ('local', 'unkey')),
    external_id     text        NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NULL,
    revoked_at      timestamptz NULL,
    last_used_at    timestamptz NULL,
    CONSTRAINT api_keys_hash_key UNIQUE (hash)
);

CREATE INDEX api_keys_org_id_created_at_idx ON {{schema}}.api_keys (org_id, created_at);

CREATE TABLE {{schema}}.model_access_policies (
    id            text        PRIMARY KEY,
    subject_type  text        NOT NULL CHECK (subject_type IN ('plan', 'org', 'key')),
    subject_id    text        NOT NULL,
    model_alias   text        NOT NULL,
    effect        text        NOT NULL CHECK (effect IN ('allow', 'deny')),
    created_at    timestamptz NOT NULL,
    CONSTRAINT model_access_policies_subject_model_key UNIQUE (subject_type, subject_id, model_alias)
);

CREATE TABLE {{schema}}.routers (
    id           text        PRIMARY KEY,
    base_url     text        NOT NULL,
    protocol     text        NOT NULL,
    api_version  text        NOT NULL DEFAULT '',
    api_key_ref  text        NULL,
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL
);

CREATE TABLE {{schema}}.router_pools (
    name                  text        PRIMARY KEY,
    state                 text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining', 'disabled')),
    prompt_format         text        NOT NULL,
    task_timeout_seconds  integer     NOT NULL,
    upstream_model        text        NULL,
    created_at            timestamptz NOT NULL
);

CREATE TABLE {{schema}}.router_pool_members (
    pool_name   text    NOT NULL,
    router_id   text    NOT NULL,
    session_id  bigint  NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (pool_name, router_id, session_id)
);

CREATE TABLE {{schema}}.router_pool_models (
    alias              text        PRIMARY KEY,
    pool_name          text        NOT NULL,
    context_tokens     integer     NOT NULL,
    max_output_tokens  integer     NOT NULL,
    enabled            boolean     NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL
);

-- Usage events: monthly range partitions on occurred_at (created ahead by partition maintenance) plus a
-- DEFAULT partition so an insert never fails for lack of a partition. Postgres wants the partition key in
-- every unique constraint, so idempotency is the primary key (request_id, occurred_at): a replayed record
-- carries the same occurred_at and hits it. It also serves look-ups by request_id alone (one probe per
-- partition). Ids compare bytewise (COLLATE "C"): cheaper index maintenance and the same order on every server.
CREATE TABLE {{schema}}.usage_events (
    request_id         text COLLATE "C" NOT NULL,
    occurred_at        timestamptz NOT NULL,
    org_id             text COLLATE "C" NULL,
    key_id             text COLLATE "C" NULL,
    model              text        NULL,
    pool               text        NULL,
    outcome            smallint    NOT NULL CHECK (outcome BETWEEN 0 AND 3),
    prompt_tokens      integer     NOT NULL,
    completion_tokens  integer     NOT NULL,
    tokens_estimated   boolean     NOT NULL,
    stream             boolean     NOT NULL,
    PRIMARY KEY (request_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE {{schema}}.usage_events_default PARTITION OF {{schema}}.usage_events DEFAULT;

CREATE INDEX usage_events_org_id_occurred_at_idx ON {{schema}}.usage_events (org_id, occurred_at);
CREATE INDEX usage_events_key_id_occurred_at_idx ON {{schema}}.usage_events (key_id, occurred_at);

CREATE TABLE {{schema}}.request_logs (
    request_id       text COLLATE "C" NOT NULL,
    occurred_at      timestamptz NOT NULL,
    org_id           text COLLATE "C" NULL,
    key_id           text COLLATE "C" NULL,
    method           text        NOT NULL,
    path             text        NOT NULL,
    model            text        NULL,
    status_code      integer     NOT NULL,
    error_code       text        NULL,
    latency_ms       integer     NOT NULL,
    router_id        text        NULL,
    upstream_status  integer     NULL,
    PRIMARY KEY (request_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE {{schema}}.request_logs_default PARTITION OF {{schema}}.request_logs DEFAULT;

CREATE INDEX request_logs_org_id_occurred_at_idx ON {{schema}}.request_logs (org_id, occurred_at);
CREATE INDEX request_logs_key_id_occurred_at_idx ON {{schema}}.request_logs (key_id, occurred_at);

CREATE TABLE {{schema}}.billing_ledger (
    id            bigserial   PRIMARY KEY,
    org_id        text        NOT NULL,
    occurred_at   timestamptz NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('grant', 'debit', 'credit', 'adjustment')),
    amount_minor  bigint      NOT NULL,
    currency      text        NOT NULL,
    request_id    text        NULL,
    description   text        NOT NULL DEFAULT ''
);

CREATE UNIQUE INDEX billing_ledger_kind_request_id_key ON {{schema}}.billing_ledger (kind, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX billing_ledger_org_id_occurred_at_idx ON {{schema}}.billing_ledger (org_id, occurred_at);

-- org_id and target_id are null for system-wide actions.
CREATE TABLE {{schema}}.audit_log (
    id           text        PRIMARY KEY,
    occurred_at  timestamptz NOT NULL,
    actor_type   text        NOT NULL CHECK (actor_type IN ('user', 'system', 'admin')),
    actor_id     text        NOT NULL,
    action       text        NOT NULL,
    org_id       text        NULL,
    target_id    text        NULL,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_org_id_occurred_at_idx ON {{schema}}.audit_log (org_id, occurred_at);
