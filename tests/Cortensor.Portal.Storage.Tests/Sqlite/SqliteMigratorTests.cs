using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Keys;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Cortensor.Portal.Storage.Sqlite.Usage;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

public sealed class SqliteMigratorTests
{
    /// <summary>Every table and column of docs/schema.md, by the names the doc gives.</summary>
    public static TheoryData<string, string[]> SchemaTables => new()
    {
        { "users", ["id", "auth_provider", "auth_subject", "email", "display_name", "status", "created_at"] },
        { "organizations", ["id", "name", "owner_user_id", "status", "created_at"] },
        { "organization_members", ["org_id", "user_id", "role", "created_at"] },
        { "plans", ["id", "name", "description", "requests_per_minute", "tokens_per_minute", "weekly_request_allowance", "price_minor", "currency", "created_at"] },
        { "plan_subscriptions", ["id", "org_id", "plan_id", "period_start", "period_end", "status", "created_at"] },
        { "api_keys", ["key_id", "org_id", "name", "environment", "hash", "display_prefix", "scopes", "allowed_models", "provider", "external_id", "created_at", "expires_at", "revoked_at", "last_used_at"] },
        { "model_access_policies", ["id", "subject_type", "subject_id", "model_alias", "effect", "created_at"] },
        { "routers", ["id", "base_url", "protocol", "api_version", "api_key_ref", "enabled", "created_at", "url_form"] },
        { "router_pools", ["name", "state", "prompt_format", "task_timeout_seconds", "upstream_model", "created_at", "prompt_type", "precommit_timeout_seconds", "http_timeout_slack_seconds", "default_max_tokens", "default_temperature", "default_top_p", "default_top_k", "router_queues", "stream_queue_length", "stream_queue_wait_seconds"] },
        { "router_pool_members", ["pool_name", "router_id", "session_id", "enabled", "position"] },
        { "router_pool_models", ["alias", "pool_name", "context_tokens", "max_output_tokens", "enabled", "created_at", "owned_by", "created_unix_seconds"] },
        { "usage_events", ["request_id", "occurred_at", "org_id", "key_id", "model", "pool", "outcome", "prompt_tokens", "completion_tokens", "tokens_estimated", "stream"] },
        { "request_logs", ["request_id", "occurred_at", "org_id", "key_id", "method", "path", "model", "status_code", "error_code", "latency_ms", "router_id", "upstream_status"] },
        { "billing_ledger", ["id", "org_id", "occurred_at", "kind", "amount_minor", "currency", "request_id", "description"] },
        { "audit_log", ["id", "occurred_at", "actor_type", "actor_id", "action", "org_id", "target_id", "details"] },
        { "schema_version", ["version", "applied_at", "description"] },
    };

    [Theory]
    [MemberData(nameof(SchemaTables))]
    public async Task Migrate_Fresh_CreatesEveryTableOfTheSchemaDoc(string table, string[] columns)
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        await using var connection = await db.Database.OpenConnectionAsync();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name FROM pragma_table_info($table) ORDER BY cid;";
        command.Parameters.AddWithValue("$table", table);
        var actual = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                actual.Add(reader.GetString(0));
            }
        }

        Assert.Equal(columns, actual);
    }

    [Theory]
    [InlineData("ix_usage_events_org_id_occurred_at")]
    [InlineData("ix_usage_events_key_id_occurred_at")]
    [InlineData("ix_request_logs_org_id_occurred_at")]
    [InlineData("ix_request_logs_key_id_occurred_at")]
    [InlineData("ix_api_keys_org_id_created_at")]
    [InlineData("ux_api_keys_hash")]
    [InlineData("ix_plan_subscriptions_org_id_period_start")]
    [InlineData("ux_billing_ledger_kind_request_id")]
    public async Task Migrate_Fresh_CreatesIndexes(string index)
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        Assert.Equal(1L, await ScalarAsync(db, $"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '{index}';"));
    }

    [Fact]
    public async Task Totals_PerOrgAndPerKey_UseTheTimeRangeIndexes()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        var orgPlan = await PlanAsync(db, "SELECT count(*) FROM usage_events WHERE org_id = 'a' AND occurred_at >= 1 AND occurred_at < 2;");
        var keyPlan = await PlanAsync(db, "SELECT count(*) FROM usage_events WHERE key_id = 'k' AND org_id = 'a' AND occurred_at >= 1 AND occurred_at < 2;");

        Assert.Contains("ix_usage_events_org_id_occurred_at", orgPlan, StringComparison.Ordinal);
        Assert.Contains("ix_usage_events_key_id_occurred_at", keyPlan, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_Fresh_TurnsOnWal()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        await using var connection = await db.Database.OpenConnectionAsync();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode;";
        Assert.Equal("wal", (string?)await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Connections_HaveBusyTimeoutAndForeignKeys()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        Assert.Equal(5000L, await ScalarAsync(db, "PRAGMA busy_timeout;"));
        Assert.Equal(1L, await ScalarAsync(db, "PRAGMA foreign_keys;"));
    }

    [Fact]
    public async Task Migrate_Fresh_RecordsVersionDescriptionAndTime()
    {
        await using var db = new SqliteTestDatabase();
        var now = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero).AddTicks(1234560);
        var migrator = new SqliteMigrator(db.Database, new FixedTimeProvider(now));

        Assert.Equal(0, await migrator.GetSchemaVersionAsync());
        await migrator.MigrateAsync();

        Assert.Equal(SqliteMigration.LatestVersion, await migrator.GetSchemaVersionAsync());
        Assert.Equal(SqliteMigration.LatestVersion, migrator.LatestVersion);
        Assert.Equal("initial", (string?)await ScalarObjectAsync(db, "SELECT description FROM schema_version WHERE version = 1;"));
        var appliedMicros = (now.UtcTicks - DateTime.UnixEpoch.Ticks) / 10;
        Assert.Equal(appliedMicros, await ScalarAsync(db, "SELECT applied_at FROM schema_version WHERE version = 1;"));
    }

    [Fact]
    public async Task Migrate_Twice_IsNoOp()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();
        var rows = await ScalarAsync(db, "SELECT count(*) FROM schema_version;");

        await db.CreateMigrator().MigrateAsync();

        Assert.Equal(rows, await ScalarAsync(db, "SELECT count(*) FROM schema_version;"));
        Assert.Equal(SqliteMigration.LatestVersion, await db.CreateMigrator().GetSchemaVersionAsync());
    }

    [Fact]
    public async Task Migrate_DatabaseAtHigherVersion_ThrowsNamingBothVersions()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();
        await ExecuteAsync(db, "INSERT INTO schema_version (version, applied_at, description) VALUES (99, 0, 'from the future');");

        var ex = await Assert.ThrowsAsync<SqliteSchemaVersionException>(() => db.CreateMigrator().MigrateAsync());

        Assert.Equal(99, ex.DatabaseVersion);
        Assert.Equal(SqliteMigration.LatestVersion, ex.CodeVersion);
        Assert.Contains("version 99", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"version {SqliteMigration.LatestVersion}", ex.Message, StringComparison.Ordinal);
        Assert.Contains(db.DatabasePath, ex.Message, StringComparison.Ordinal);
        Assert.Equal(99, await db.CreateMigrator().GetSchemaVersionAsync());
        await Assert.ThrowsAsync<SqliteSchemaVersionException>(() => db.CreateMigrator().EnsureCurrentAsync());
    }

    [Fact]
    public async Task EnsureCurrent_NeverMigrated_ThrowsNamingBothVersions()
    {
        await using var db = new SqliteTestDatabase();

        var ex = await Assert.ThrowsAsync<SqliteSchemaVersionException>(() => db.CreateMigrator().EnsureCurrentAsync());

        Assert.Equal(0, ex.DatabaseVersion);
        Assert.Contains("version 0", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"version {SqliteMigration.LatestVersion}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnsureCurrent_Migrated_Succeeds()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        await db.CreateMigrator().EnsureCurrentAsync();
    }

    [Fact]
    public async Task Migrate_SeveralMigratorsOnOneFileAtOnce_AllSucceedOnce()
    {
        await using var db = new SqliteTestDatabase();
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Separate SqliteDatabase instances, each migrator on its own connection, racing for the write lock.
        var migrators = Enumerable.Range(0, 6).Select(i => Task.Run(async () =>
        {
            await start.Task;
            var database = new SqliteDatabase(db.DatabasePath);
            await new SqliteMigrator(database).MigrateAsync();
        })).ToArray();
        start.SetResult();
        await Task.WhenAll(migrators);

        Assert.Equal(SqliteMigration.LatestVersion, await db.CreateMigrator().GetSchemaVersionAsync());
        Assert.Equal((long)SqliteMigration.LatestVersion, await ScalarAsync(db, "SELECT count(*) FROM schema_version;"));
        Assert.Equal("wal", (string?)await ScalarObjectAsync(db, "PRAGMA journal_mode;"));
    }

    [Fact]
    public async Task Data_SurvivesClosingAndReopening()
    {
        await using var db = new SqliteTestDatabase();
        var hash = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var at = new DateTimeOffset(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);
        {
            var database = new SqliteDatabase(db.DatabasePath);
            await new SqliteMigrator(database).MigrateAsync();
            await new SqliteApiKeyStore(database).AddAsync(new ApiKeyRecord
            {
                KeyId = "key_1",
                OrgId = "org_a",
                Environment = ApiKeyEnvironment.Live,
                Hash = hash,
                DisplayPrefix = "pk_live_x",
                CreatedAt = at,
            });
            var usage = new UsageEvent { RequestId = "r1", OccurredAt = at, OrgId = "org_a", KeyId = "key_1", Outcome = UsageOutcome.Succeeded, PromptTokens = 5, CompletionTokens = 6 };
            var log = new RequestLogEntry { RequestId = "r1", OccurredAt = at, Method = "POST", Path = "/v1/completions", StatusCode = 200, LatencyMs = 3 };
            await new SqliteUsageStore(database).WriteBatchAsync([new UsageRecord(usage, log)], CancellationToken.None);
        }

        using (var pooled = new SqliteConnection(db.Database.ConnectionString))
        {
            SqliteConnection.ClearPool(pooled);
        }

        var reopened = new SqliteDatabase(db.DatabasePath);
        await new SqliteMigrator(reopened).MigrateAsync();
        var found = await new SqliteApiKeyStore(reopened).FindByHashAsync(hash);
        Assert.NotNull(found);
        Assert.Equal("key_1", found.KeyId);
        Assert.Equal(new UsageTotals(1, 5, 6), await new SqliteUsageStore(reopened).GetTotalsAsync("org_a", at, at.AddSeconds(1)));
        Assert.NotNull(await new SqliteUsageStore(reopened).FindRequestLogAsync("r1"));
    }

    [Fact]
    public async Task Migrate_PathUnderAFile_ThrowsClearError()
    {
        await using var db = new SqliteTestDatabase();
        Directory.CreateDirectory(db.Folder);
        var blocker = Path.Combine(db.Folder, "not-a-folder");
        await File.WriteAllTextAsync(blocker, "x");
        var path = Path.Combine(blocker, "portal.db");

        var ex = await Assert.ThrowsAsync<SqliteStorageException>(() => new SqliteMigrator(new SqliteDatabase(path)).MigrateAsync());

        Assert.Equal(path, ex.DatabasePath);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains("not a file", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_FileIsNotADatabase_ThrowsClearError()
    {
        await using var db = new SqliteTestDatabase();
        Directory.CreateDirectory(Path.GetDirectoryName(db.DatabasePath)!);
        await File.WriteAllTextAsync(db.DatabasePath, new string('x', 4096));

        var ex = await Assert.ThrowsAsync<SqliteStorageException>(() => db.CreateMigrator().MigrateAsync());

        Assert.Contains(db.DatabasePath, ex.Message, StringComparison.Ordinal);
        Assert.Contains("not a SQLite database", ex.Message, StringComparison.Ordinal);
        Assert.IsType<SqliteException>(ex.InnerException);
    }

    [Fact]
    public async Task Migrate_MissingFolder_IsCreated()
    {
        await using var db = new SqliteTestDatabase();
        Assert.False(Directory.Exists(Path.GetDirectoryName(db.DatabasePath)));

        await db.CreateMigrator().MigrateAsync();

        Assert.True(File.Exists(db.DatabasePath));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(":memory:")]
    [InlineData("Data Source=portal.db;Mode=ReadWriteCreate")]
    public void Database_NotAFilePath_Throws(string path)
    {
        Assert.Throws<ArgumentException>(() => new SqliteDatabase(path));
    }

    [Fact]
    public void Migrations_EmbeddedScripts_AreNumberedFromOne()
    {
        var all = SqliteMigration.All;

        Assert.Equal(1, all[0].Version);
        Assert.Equal("initial", all[0].Description);
        Assert.Equal(Enumerable.Range(1, all.Count), all.Select(m => m.Version));
        Assert.Contains("CREATE TABLE usage_events", all[0].ReadScript(), StringComparison.Ordinal);
    }

    [Fact]
    public void Migrations_Parse_OrdersByVersionAndIgnoresOtherResources()
    {
        const string P = "Cortensor.Portal.Storage.Sqlite.Migrations.";
        var parsed = SqliteMigration.Parse([P + "V0002__add_things.sql", "Other.Resource.txt", P + "V0001__initial.sql"]);

        Assert.Equal([1, 2], parsed.Select(m => m.Version));
        Assert.Equal("add_things", parsed[1].Description);
    }

    [Theory]
    [InlineData("V0001__initial.sql", "V0003__later.sql")]
    [InlineData("V0001__initial.sql", "V0001__again.sql")]
    [InlineData("V0001__initial.sql", "v2-bad-name.sql")]
    public void Migrations_Parse_GapsDuplicatesOrBadNames_Throw(string first, string second)
    {
        const string P = "Cortensor.Portal.Storage.Sqlite.Migrations.";

        Assert.Throws<InvalidOperationException>(() => SqliteMigration.Parse([P + first, P + second]));
    }

    [Fact]
    public async Task Keys_FindByHash_WrongLength_ReturnsNull()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        Assert.Null(await new SqliteApiKeyStore(db.Database).FindByHashAsync(new byte[16]));
    }

    [Fact]
    public async Task Keys_StoredAsDocumentedColumns()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();
        var created = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        await new SqliteApiKeyStore(db.Database).AddAsync(new ApiKeyRecord
        {
            KeyId = "key_1",
            OrgId = "org_a",
            Environment = ApiKeyEnvironment.Test,
            Hash = new byte[32],
            DisplayPrefix = "pk_test_x",
            Scopes = ["chat"],
            AllowedModels = ["m1", "m2"],
            CreatedAt = created,
        });

        Assert.Equal("test", (string?)await ScalarObjectAsync(db, "SELECT environment FROM api_keys;"));
        Assert.Equal("local", (string?)await ScalarObjectAsync(db, "SELECT provider FROM api_keys;"));
        Assert.Equal("[\"chat\"]", (string?)await ScalarObjectAsync(db, "SELECT scopes FROM api_keys;"));
        Assert.Equal("[\"m1\",\"m2\"]", (string?)await ScalarObjectAsync(db, "SELECT allowed_models FROM api_keys;"));
        Assert.Equal((created.UtcTicks - DateTime.UnixEpoch.Ticks) / 10, await ScalarAsync(db, "SELECT created_at FROM api_keys;"));
    }

    private static async Task<long> ScalarAsync(SqliteTestDatabase db, string sql) => (long)(await ScalarObjectAsync(db, sql))!;

    private static async Task<object?> ScalarObjectAsync(SqliteTestDatabase db, string sql)
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

    private static async Task<string> PlanAsync(SqliteTestDatabase db, string sql)
    {
        await using var connection = await db.Database.OpenConnectionAsync();
        using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + sql;
        var plan = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            plan.Add(reader.GetString(3));
        }

        return string.Join('\n', plan);
    }

    private sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
