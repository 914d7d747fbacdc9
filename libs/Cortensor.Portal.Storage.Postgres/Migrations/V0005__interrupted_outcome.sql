-- V0005: requests (and so the usage_events view) accepts outcome 4, interrupted (a request the gateway never
-- finished, rebuilt from the usage journal on the next start). {{schema}} is replaced by the configured schema as a
-- quoted identifier. V0003 declared the outcome CHECK inline, so Postgres named it requests_outcome_check (on the
-- partitioned table and, inherited, on every partition); it is replaced by a CHECK of the same name that also
-- allows 4. Adding it scans every partition under an exclusive lock (every stored row passes: the range only
-- widens), so on a large table run it at a quiet time. PostgresMigrator runs this in one transaction and records
-- the version.

ALTER TABLE {{schema}}.requests
    DROP CONSTRAINT requests_outcome_check,
    ADD CONSTRAINT requests_outcome_check CHECK (outcome BETWEEN 0 AND 4);
