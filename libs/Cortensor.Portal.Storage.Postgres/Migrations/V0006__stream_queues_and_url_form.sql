-- V0006: the fleet options added for stream isolation and the URL form (issue 22); the same logical columns as the
-- SQLite V0005. {{schema}} is replaced by the configured schema as a quoted identifier. Additive: existing rows get
-- the option defaults (blocking router queues, 32 waiting streams, 20 s wait, the path URL form).

ALTER TABLE {{schema}}.router_pools
    -- PoolOptions.RouterQueues (FleetStoredNames: 'blocking' or 'non_blocking').
    ADD COLUMN router_queues             text    NOT NULL DEFAULT 'blocking' CHECK (router_queues IN ('blocking', 'non_blocking')),
    -- PoolOptions.StreamQueueLength and StreamQueueWaitSeconds (the ranges FleetOptionsValidator accepts).
    ADD COLUMN stream_queue_length       integer NOT NULL DEFAULT 32 CHECK (stream_queue_length BETWEEN 0 AND 100000),
    ADD COLUMN stream_queue_wait_seconds integer NOT NULL DEFAULT 20 CHECK (stream_queue_wait_seconds BETWEEN 0 AND 600);

-- RouterOptions.UrlForm (FleetStoredNames: 'path' or 'body').
ALTER TABLE {{schema}}.routers
    ADD COLUMN url_form text NOT NULL DEFAULT 'path' CHECK (url_form IN ('path', 'body'));
