-- V0003: model_access_policies accepts subject_type 'global' (an operator's kill switch for a model alias; its
-- subject_id is always '*'). SQLite cannot alter a CHECK constraint, so the table is rebuilt: create the new table,
-- copy every row, drop the old one, rename the new one into place. Same columns in the same order, same STRICT
-- typing; the UNIQUE (subject_type, subject_id, model_alias) constraint (and so its automatic index) is part of the
-- table definition and comes back with it. No other table, index, trigger or view refers to model_access_policies.
-- SqliteMigrator runs this inside one transaction and records the version in schema_version itself.

CREATE TABLE model_access_policies_v0003 (
    id           TEXT    NOT NULL PRIMARY KEY,
    subject_type TEXT    NOT NULL CHECK (subject_type IN ('plan', 'org', 'key', 'global')),
    subject_id   TEXT    NOT NULL,
    model_alias  TEXT    NOT NULL,
    effect       TEXT    NOT NULL CHECK (effect IN ('allow', 'deny')),
    created_at   INTEGER NOT NULL,
    UNIQUE (subject_type, subject_id, model_alias),
    CHECK (subject_type <> 'global' OR subject_id = '*')
) STRICT;

INSERT INTO model_access_policies_v0003 (id, subject_type, subject_id, model_alias, effect, created_at)
SELECT id, subject_type, subject_id, model_alias, effect, created_at FROM model_access_policies;

DROP TABLE model_access_policies;

ALTER TABLE model_access_policies_v0003 RENAME TO model_access_policies;
