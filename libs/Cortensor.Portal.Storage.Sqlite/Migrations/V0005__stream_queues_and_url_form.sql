-- V0005: the fleet options added for stream isolation and the URL form (issue 22). Rows written before the upgrade
-- get the option defaults (blocking router queues, 32 waiting streams, 20 s wait, the path URL form).
-- SqliteMigrator runs this inside one transaction and records the version in schema_version itself.

-- PoolOptions.RouterQueues (FleetStoredNames: 'blocking' or 'non_blocking').
ALTER TABLE router_pools ADD COLUMN router_queues TEXT NOT NULL DEFAULT 'blocking' CHECK (router_queues IN ('blocking', 'non_blocking'));
-- PoolOptions.StreamQueueLength and StreamQueueWaitSeconds (the ranges FleetOptionsValidator accepts).
ALTER TABLE router_pools ADD COLUMN stream_queue_length INTEGER NOT NULL DEFAULT 32 CHECK (stream_queue_length BETWEEN 0 AND 100000);
ALTER TABLE router_pools ADD COLUMN stream_queue_wait_seconds INTEGER NOT NULL DEFAULT 20 CHECK (stream_queue_wait_seconds BETWEEN 0 AND 600);

-- RouterOptions.UrlForm (FleetStoredNames: 'path' or 'body').
ALTER TABLE routers ADD COLUMN url_form TEXT NOT NULL DEFAULT 'path' CHECK (url_form IN ('path', 'body'));
