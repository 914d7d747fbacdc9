-- V0002: the pool and model settings of the fleet options that V0001 had no columns for, and the member order.
-- Added with ALTER TABLE ADD COLUMN; rows written before the upgrade get the option defaults.
-- SqliteMigrator runs this inside one transaction and records the version in schema_version itself.

-- PoolOptions.PromptType (null = derived from the prompt format).
ALTER TABLE router_pools ADD COLUMN prompt_type INTEGER NULL CHECK (prompt_type IS NULL OR prompt_type >= 0);
-- PoolOptions.PrecommitTimeoutSeconds (null = not sent).
ALTER TABLE router_pools ADD COLUMN precommit_timeout_seconds INTEGER NULL CHECK (precommit_timeout_seconds IS NULL OR precommit_timeout_seconds BETWEEN 1 AND 900);
-- PoolOptions.HttpTimeoutSlackSeconds.
ALTER TABLE router_pools ADD COLUMN http_timeout_slack_seconds INTEGER NOT NULL DEFAULT 30 CHECK (http_timeout_slack_seconds BETWEEN 0 AND 600);
-- PoolOptions.Defaults (SamplingDefaults).
ALTER TABLE router_pools ADD COLUMN default_max_tokens INTEGER NOT NULL DEFAULT 512 CHECK (default_max_tokens >= 1);
ALTER TABLE router_pools ADD COLUMN default_temperature REAL NULL;
ALTER TABLE router_pools ADD COLUMN default_top_p REAL NULL;
ALTER TABLE router_pools ADD COLUMN default_top_k INTEGER NULL;

-- Position of the member in PoolOptions.Members (0-based); members load in this order.
ALTER TABLE router_pool_members ADD COLUMN position INTEGER NOT NULL DEFAULT 0;

-- ModelOptions.OwnedBy and ModelOptions.Created (Unix SECONDS, as shown in /v1/models; not a microsecond timestamp).
ALTER TABLE router_pool_models ADD COLUMN owned_by TEXT NOT NULL DEFAULT 'cortensor';
ALTER TABLE router_pool_models ADD COLUMN created_unix_seconds INTEGER NOT NULL DEFAULT 1767225600;

-- DeleteRouterAsync looks members up by router.
CREATE INDEX ix_router_pool_members_router_id ON router_pool_members (router_id);
