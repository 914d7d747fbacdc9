using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Tests.Postgres;

public sealed class PostgresMigrationTests
{
    private static readonly string[] SchemaTables =
    [
        "users", "organizations", "organization_members", "plans", "plan_subscriptions", "api_keys",
        "model_access_policies", "routers", "router_pools", "router_pool_members", "router_pool_models",
        "requests", "billing_ledger", "audit_log",
        "schema_version",
    ];

    [Fact]
    public async Task Migrate_EmptyDatabase_CreatesSchemaEveryTableAndOneVersionRow()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        var migrator = db.CreateMigrator();
        Assert.Equal(0, await migrator.GetSchemaVersionAsync());

        var result = await migrator.MigrateAsync();

        Assert.Equal(0, result.PreviousVersion);
        Assert.Equal(PostgresMigrator.LatestVersion, result.CurrentVersion);
        Assert.Equal(Enumerable.Range(1, PostgresMigrator.LatestVersion), result.Applied);
        Assert.Equal(PostgresMigrator.LatestVersion, await migrator.GetSchemaVersionAsync());
        var tables = await db.ColumnAsync(
            $"SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{db.Schema}' AND c.relkind IN ('r', 'p') AND NOT c.relispartition");
        Assert.Equal(SchemaTables.Order(StringComparer.Ordinal), tables.Order(StringComparer.Ordinal));
        Assert.Equal(PostgresMigrator.LatestVersion, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("schema_version")}"));
    }

    [Fact]
    public async Task Migrate_PartitionedTables_AreRangePartitionedOnOccurredAtWithIndexes()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();

        foreach (var table in new[] { "requests" })
        {
            var key = await db.ScalarAsync<string>($"SELECT pg_get_partkeydef('{db.Table(table)}'::regclass)");
            Assert.Equal("RANGE (occurred_at)", key);
            var indexes = await db.ColumnAsync($"SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = '{db.Table(table)}'::regclass");
            Assert.Contains(indexes, i => i.Contains("(org_id, occurred_at)", StringComparison.Ordinal));
            Assert.Contains(indexes, i => i.Contains("(key_id, occurred_at)", StringComparison.Ordinal));
            Assert.Contains(indexes, i => i.Contains("UNIQUE", StringComparison.Ordinal) && i.Contains("(request_id, occurred_at)", StringComparison.Ordinal));
            Assert.Equal(1, await db.ScalarAsync<int>(
                $"SELECT count(*) FROM pg_partitioned_table pt JOIN pg_class d ON d.oid = pt.partdefid WHERE pt.partrelid = '{db.Table(table)}'::regclass AND d.relname = '{table}_default'"));
        }
    }

    [Fact]
    public async Task Migrate_RunAgain_IsNoOp()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();

        var again = await db.CreateMigrator().MigrateAsync();

        Assert.Empty(again.Applied);
        Assert.Equal(PostgresMigrator.LatestVersion, again.PreviousVersion);
        Assert.Equal(PostgresMigrator.LatestVersion, again.CurrentVersion);
        Assert.Equal(PostgresMigrator.LatestVersion, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("schema_version")}"));
    }

    [Fact]
    public async Task Migrate_FromPreviousVersion_AppliesOnlyTheNewOne()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        var v1 = EmbeddedMigrations.All[0];
        var v2 = new PostgresMigration(2, "test probe", "CREATE TABLE {{schema}}.v2_probe (id integer PRIMARY KEY); INSERT INTO {{schema}}.v2_probe VALUES (42);");

        var first = await new PostgresMigrator(db.DataSource, db.Options, TimeProvider.System, null, [v1]).MigrateAsync();
        Assert.Equal([1], first.Applied);
        await db.CreateKeyStore().AddAsync(PostgresTestData.NewKey("org_a", "key_1"));

        var withV2 = new PostgresMigrator(db.DataSource, db.Options, TimeProvider.System, null, [v1, v2]);
        var second = await withV2.MigrateAsync();
        var third = await withV2.MigrateAsync();

        Assert.Equal(1, second.PreviousVersion);
        Assert.Equal([2], second.Applied);
        Assert.Empty(third.Applied);
        Assert.Equal(2, await withV2.GetSchemaVersionAsync());
        Assert.Equal(42, await db.ScalarAsync<int>($"SELECT id FROM {db.Table("v2_probe")}"));
        Assert.Single(await db.CreateKeyStore().ListAsync("org_a"));
        Assert.Equal("test probe", await db.ScalarAsync<string>($"SELECT description FROM {db.Table("schema_version")} WHERE version = 2"));
    }

    [Fact]
    public async Task Migrate_FailingVersion_RollsBackThatVersionOnly()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        var broken = new PostgresMigration(2, "broken", "CREATE TABLE {{schema}}.half_done (id integer); SELECT 1/0;");
        var migrator = new PostgresMigrator(db.DataSource, db.Options, TimeProvider.System, null, [EmbeddedMigrations.All[0], broken]);

        await Assert.ThrowsAnyAsync<Exception>(() => migrator.MigrateAsync());

        Assert.Equal(1, await migrator.GetSchemaVersionAsync());
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{db.Schema}' AND c.relname = 'half_done'"));
    }

    [Fact]
    public async Task Migrate_SchemaNewerThanCode_RefusesNamingBothVersions()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var future = PostgresMigrator.LatestVersion + 7;
        await db.ExecuteAsync($"INSERT INTO {db.Table("schema_version")} (version, applied_at, description) VALUES ({future}, now(), 'from the future')");

        var ex = await Assert.ThrowsAsync<PostgresStorageException>(() => db.CreateMigrator().MigrateAsync());
        var check = await Assert.ThrowsAsync<PostgresStorageException>(() => db.CreateMigrator().EnsureCurrentAsync());

        Assert.Equal(PostgresStorageError.SchemaNewerThanCode, ex.Error);
        Assert.Contains(future.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Message, StringComparison.Ordinal);
        Assert.Contains($"up to {PostgresMigrator.LatestVersion}", ex.Message, StringComparison.Ordinal);
        Assert.Contains(db.Schema, ex.Message, StringComparison.Ordinal);
        Assert.Equal(PostgresStorageError.SchemaNewerThanCode, check.Error);
        Assert.Equal(PostgresMigrator.LatestVersion + 1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("schema_version")}"));
    }

    [Fact]
    public async Task EnsureCurrent_SchemaBehindCode_ThrowsSchemaOutdated()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);

        var ex = await Assert.ThrowsAsync<PostgresStorageException>(() => db.CreateMigrator().EnsureCurrentAsync());

        Assert.Equal(PostgresStorageError.SchemaOutdated, ex.Error);
        Assert.Contains("ApplyMigrationsOnStart", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_TwoMigratorsOnSeparateDataSourcesAtOnce_BothSucceedOneRowPerVersion()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        var options = db.Options;

        for (var round = 0; round < 3; round++)
        {
            var schema = round == 0 ? db.Schema : PostgresTestDatabase.NewSchemaName();
            var roundOptions = Options.Create(new Cortensor.Portal.Storage.Postgres.Configuration.PostgresStorageOptions
            {
                ConnectionString = options.Value.ConnectionString,
                Schema = schema,
            });
            await using var a = PostgresDataSourceFactory.Create(roundOptions.Value);
            await using var b = PostgresDataSourceFactory.Create(roundOptions.Value);
            try
            {
                var results = await Task.WhenAll(
                    Task.Run(() => new PostgresMigrator(a, roundOptions, TimeProvider.System).MigrateAsync()),
                    Task.Run(() => new PostgresMigrator(b, roundOptions, TimeProvider.System).MigrateAsync()));

                Assert.All(results, r => Assert.Equal(PostgresMigrator.LatestVersion, r.CurrentVersion));
                Assert.Equal(Enumerable.Range(1, PostgresMigrator.LatestVersion), results.SelectMany(r => r.Applied).Order());
                await using var count = a.CreateCommand($"SELECT count(*), count(DISTINCT version) FROM \"{schema}\".schema_version");
                await using var reader = await count.ExecuteReaderAsync();
                await reader.ReadAsync();
                Assert.Equal(PostgresMigrator.LatestVersion, reader.GetInt64(0));
                Assert.Equal(PostgresMigrator.LatestVersion, reader.GetInt64(1));
            }
            finally
            {
                if (round > 0)
                {
                    await using var drop = a.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    await drop.ExecuteNonQueryAsync();
                }
            }
        }
    }

    [Fact]
    public void LockKeys_DependOnSchemaAndPurpose_AndAreStable()
    {
        var a = new Cortensor.Portal.Storage.Postgres.Internal.StoreSchema("portal");
        var b = new Cortensor.Portal.Storage.Postgres.Internal.StoreSchema("portal");
        var c = new Cortensor.Portal.Storage.Postgres.Internal.StoreSchema("other");

        Assert.Equal(a.MigrationLockKey, b.MigrationLockKey);
        Assert.NotEqual(a.MigrationLockKey, c.MigrationLockKey);
        Assert.NotEqual(a.MigrationLockKey, a.PartitionLockKey);
        Assert.Equal("\"portal\"", a.Quoted);
    }

    [Fact]
    public void EmbeddedMigrations_StartAtOneWithoutGaps_AndUseTheSchemaPlaceholder()
    {
        var all = EmbeddedMigrations.All;

        Assert.NotEmpty(all);
        Assert.Equal(Enumerable.Range(1, all.Count), all.Select(m => m.Version));
        Assert.Equal("initial", all[0].Description);
        Assert.Contains(PostgresMigration.SchemaPlaceholder, all[0].Sql, StringComparison.Ordinal);
        Assert.DoesNotContain("CREATE EXTENSION", all[0].Sql, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(PostgresMigration.SchemaPlaceholder, all[0].Render("\"x\""), StringComparison.Ordinal);
        Assert.Contains("CREATE TABLE \"x\".usage_events", all[0].Render("\"x\""), StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => EmbeddedMigrations.Validate([all[0], new PostgresMigration(3, "gap", "")]));
    }
}
