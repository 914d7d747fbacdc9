using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Npgsql;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>V0004 (global model policies): the subject_type CHECK is replaced on a schema that already holds policies.</summary>
public sealed class PostgresGlobalPolicyMigrationTests
{
    [Fact]
    public void V0004_IsTheGlobalPolicyMigration_AndUsesTheSchemaPlaceholder()
    {
        Assert.True(EmbeddedMigrations.All.Count >= 4);
        var v4 = EmbeddedMigrations.All[3];
        Assert.Equal("global model policies", v4.Description);
        Assert.Contains("{{schema}}.model_access_policies", v4.Sql, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upgrade_V0003WithPolicyRows_KeepsEveryRowAndAcceptsGlobal()
    {
        var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await using var stores = PostgresExtendedStores.Over(db); // drops the schema at the end
        var upToV3 = new PostgresMigrator(db.DataSource, db.Options, TimeProvider.System, null, EmbeddedMigrations.All.Take(3));
        Assert.Equal([1, 2, 3], (await upToV3.MigrateAsync()).Applied);
        await db.ExecuteAsync(
            $"""
            INSERT INTO {db.Table("model_access_policies")} (id, subject_type, subject_id, model_alias, effect, created_at) VALUES
                ('map_1', 'org', 'org_a', 'llama-3', 'deny', '2026-01-15 12:00:00+00'),
                ('map_2', 'key', 'key_1', 'mistral', 'allow', '2026-01-15 12:00:01+00'),
                ('map_3', 'plan', 'plan_free', 'gemma', 'deny', '2026-01-15 12:00:02+00')
            """);
        // 'global' is refused before the upgrade.
        await Assert.ThrowsAsync<PostgresException>(() => db.ExecuteAsync(
            $"INSERT INTO {db.Table("model_access_policies")} VALUES ('map_x', 'global', '*', 'x', 'deny', now())"));

        var result = await db.CreateMigrator().MigrateAsync();

        Assert.Equal(3, result.PreviousVersion);
        Assert.Contains(4, result.Applied);
        Assert.Equal(PostgresMigrator.LatestVersion, result.CurrentVersion);
        Assert.Equal("global model policies", await db.ScalarAsync<string>($"SELECT description FROM {db.Table("schema_version")} WHERE version = 4"));
        Assert.Equal(
            "map_1|org|org_a|llama-3|deny;map_2|key|key_1|mistral|allow;map_3|plan|plan_free|gemma|deny",
            await db.ScalarAsync<string>(
                $"SELECT string_agg(id || '|' || subject_type || '|' || subject_id || '|' || model_alias || '|' || effect, ';' ORDER BY id) FROM {db.Table("model_access_policies")}"));
        Assert.Equal(
            ["model_access_policies_global_subject_id_check", "model_access_policies_subject_type_check"],
            await db.ColumnAsync($"SELECT conname::text FROM pg_constraint WHERE conrelid = '{db.Table("model_access_policies")}'::regclass AND contype = 'c' AND conname::text LIKE '%subject%' ORDER BY 1"));

        var applicable = await stores.Policies.ListApplicableAsync("plan_free", "org_a", "key_1");
        Assert.Equal(["mistral", "llama-3", "gemma"], applicable.Select(p => p.ModelAlias));

        await stores.Policies.SetAsync(new ModelAccessPolicy
        {
            SubjectType = PolicySubjectType.Global,
            SubjectId = ModelAccessPolicy.GlobalSubjectId,
            ModelAlias = "mistral",
            Effect = PolicyEffect.Deny,
            CreatedAt = DateTimeOffset.UnixEpoch,
        });
        Assert.Equal("global|*", await db.ScalarAsync<string>($"SELECT subject_type || '|' || subject_id FROM {db.Table("model_access_policies")} WHERE subject_type = 'global'"));
        Assert.True(ModelAccessDecision.IsDisabledGlobally(await stores.Policies.ListApplicableAsync(null, "org_a", "key_1"), "mistral"));
    }

    [Theory]
    [InlineData("'global', 'org_a'")] // a global policy's id is always '*'
    [InlineData("'team', 'x'")]       // still no other subject types
    public async Task Migrated_TableChecksSubject(string subject)
    {
        await using var db = await PostgresTestDatabase.CreateAsync();

        var ex = await Assert.ThrowsAsync<PostgresException>(() => db.ExecuteAsync(
            $"INSERT INTO {db.Table("model_access_policies")} VALUES ('map_x', {subject}, 'm', 'deny', now())"));

        Assert.Equal(PostgresErrorCodes.CheckViolation, ex.SqlState);
    }
}
