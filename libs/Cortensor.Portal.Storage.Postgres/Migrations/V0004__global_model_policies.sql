-- V0004: model_access_policies accepts subject_type 'global' (an operator's kill switch for a model alias; its
-- subject_id is always '*'). {{schema}} is replaced by the configured schema as a quoted identifier.
-- V0001 declared the subject_type CHECK inline, so Postgres named it model_access_policies_subject_type_check;
-- it is replaced by a CHECK of the same, now explicit, name. Existing rows all satisfy both new checks
-- (validated here; the table is small). PostgresMigrator runs this in one transaction and records the version.

ALTER TABLE {{schema}}.model_access_policies
    DROP CONSTRAINT model_access_policies_subject_type_check,
    ADD CONSTRAINT model_access_policies_subject_type_check CHECK (subject_type IN ('plan', 'org', 'key', 'global')),
    ADD CONSTRAINT model_access_policies_global_subject_id_check CHECK (subject_type <> 'global' OR subject_id = '*');
