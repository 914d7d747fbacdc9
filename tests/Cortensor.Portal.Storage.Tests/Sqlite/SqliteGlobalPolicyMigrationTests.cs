using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>V0003 (global model policies): the rebuild of <c>model_access_policies</c> keeps every row and the index.</summary>
public sealed class SqliteGlobalPolicyMigrationTests
{
    private const string GlobalPoliciesVersion = "global_model_policies";

    [Fact]
    public void V0003_IsTheGlobalPolicyMigration()
    {
        Assert.True(SqliteMigration.LatestVersion >= 3);
        Assert.Equal(GlobalPoliciesVersion, SqliteMigration.All[2].Description);
    }

    [Fact]
    public async Task Upgrade_V0002WithPolicyRows_KeepsEveryRowAndAcceptsGlobal()
    {
        await using var db = new SqliteTestDatabase();
        await new SqliteMigrator(db.Database, [.. SqliteMigration.All.Take(2)], null, null).MigrateAsync();
        Assert.Equal(2, await db.CreateMigrator().GetSchemaVersionAsync());
        await ExecuteAsync(db, """
            INSERT INTO model_access_policies (id, subject_type, subject_id, model_alias, effect, created_at) VALUES
                ('map_1', 'org', 'org_a', 'llama-3', 'deny', 1768478400000001),
                ('map_2', 'key', 'key_1', 'mistral', 'allow', 1768478400000002),
                ('map_3', 'plan', 'plan_free', 'gemma', 'deny', 1768478400000003);
            """);
        // 'global' is refused before the upgrade.
        await Assert.ThrowsAsync<SqliteException>(() => ExecuteAsync(db, "INSERT INTO model_access_policies VALUES ('map_x', 'global', '*', 'x', 'deny', 0);"));

        await db.CreateMigrator().MigrateAsync();

        Assert.Equal(SqliteMigration.LatestVersion, await db.CreateMigrator().GetSchemaVersionAsync());
        Assert.Equal(GlobalPoliciesVersion, (string?)await ScalarAsync(db, "SELECT description FROM schema_version WHERE version = 3;"));
        Assert.Equal(
            "map_1|org|org_a|llama-3|deny|1768478400000001;map_2|key|key_1|mistral|allow|1768478400000002;map_3|plan|plan_free|gemma|deny|1768478400000003",
            (string?)await ScalarAsync(db, "SELECT group_concat(id || '|' || subject_type || '|' || subject_id || '|' || model_alias || '|' || effect || '|' || created_at, ';') FROM (SELECT * FROM model_access_policies ORDER BY id);"));
        Assert.Equal(0L, await ScalarAsync(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%v0003%';"));
        Assert.Equal(1L, await ScalarAsync(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'model_access_policies' AND sql LIKE '%STRICT%';"));
        Assert.Equal(1L, await ScalarAsync(db, "SELECT count(*) FROM pragma_index_list('model_access_policies') WHERE \"unique\" = 1 AND origin = 'u';"));
        Assert.Equal(0L, await ScalarAsync(db, "SELECT count(*) FROM pragma_foreign_key_check;"));
        Assert.Equal("ok", (string?)await ScalarAsync(db, "PRAGMA integrity_check;"));

        await using var stores = SqliteExtendedStores.Wrap(db);
        var applicable = await stores.Policies.ListApplicableAsync("plan_free", "org_a", "key_1");
        Assert.Equal(["mistral", "llama-3", "gemma"], applicable.Select(p => p.ModelAlias));
        Assert.False(ModelAccessDecision.IsAllowed(applicable, "llama-3"));

        await stores.Policies.SetAsync(new ModelAccessPolicy
        {
            SubjectType = PolicySubjectType.Global,
            SubjectId = ModelAccessPolicy.GlobalSubjectId,
            ModelAlias = "mistral",
            Effect = PolicyEffect.Deny,
            CreatedAt = DateTimeOffset.UnixEpoch,
        });
        Assert.Equal("global|*", (string?)await ScalarAsync(db, "SELECT subject_type || '|' || subject_id FROM model_access_policies WHERE subject_type = 'global';"));
        Assert.True(ModelAccessDecision.IsDisabledGlobally(await stores.Policies.ListApplicableAsync(null, "org_a", "key_1"), "mistral"));
    }

    [Theory]
    [InlineData("'global', 'org_a'")] // a global policy's id is always '*'
    [InlineData("'team', 'x'")]       // still no other subject types
    public async Task Migrated_TableChecksSubject(string subject)
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        var ex = await Assert.ThrowsAsync<SqliteException>(() => ExecuteAsync(db, $"INSERT INTO model_access_policies VALUES ('map_x', {subject}, 'm', 'deny', 0);"));

        Assert.Contains("CHECK", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrated_ListApplicableWithGlobalBranch_UsesTheUniqueIndex()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();
        await using var connection = await db.Database.OpenConnectionAsync();
        using var command = connection.CreateCommand();
        command.CommandText = """
            EXPLAIN QUERY PLAN
            SELECT subject_type, subject_id, model_alias, effect, created_at FROM model_access_policies
            WHERE (subject_type = 'key' AND subject_id = 'k') OR (subject_type = 'org' AND subject_id = 'o')
               OR (subject_type = 'plan' AND subject_id = 'p') OR (subject_type = 'global' AND subject_id = '*');
            """;
        var plan = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(3));
            }
        }

        Assert.DoesNotContain(plan, line => line.StartsWith("SCAN model_access_policies", StringComparison.Ordinal));
    }

    private static async Task<object?> ScalarAsync(SqliteTestDatabase db, string sql)
    {
        await using var connection = await db.Database.OpenConnectionAsync();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }

    private static async Task ExecuteAsync(SqliteTestDatabase db, string sql)
    {
        await using var connection = await db.Database.OpenConnectionAsync();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
