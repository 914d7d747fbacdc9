using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Accounts.Organizations;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Metering.Ledger;
using Cortensor.Portal.Storage.Sqlite.Accounts;
using Cortensor.Portal.Storage.Sqlite.Fleet;
using Cortensor.Portal.Storage.Sqlite.Ledger;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>SQLite-only checks of the account, ledger and fleet stores: the V0002 upgrade, stored encodings, DI.</summary>
public sealed class SqliteAccountAndFleetStoreTests
{
    private static readonly DateTimeOffset At = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Upgrade_V0001DatabaseWithData_MigratesToV0002AndKeepsData()
    {
        await using var db = new SqliteTestDatabase();
        await CreateAtVersion1Async(db);
        await ExecuteAsync(db, """
            INSERT INTO users (id, auth_provider, auth_subject, email, display_name, status, created_at)
                VALUES ('usr_1', 'supabase', 'sub-1', 'a@example.com', 'Ada', 'active', 1768478400000000);
            INSERT INTO organizations (id, name, owner_user_id, status, created_at) VALUES ('org_a', 'Acme', 'usr_1', 'active', 1768478400000000);
            INSERT INTO organization_members (org_id, user_id, role, created_at) VALUES ('org_a', 'usr_1', 'owner', 1768478400000000);
            INSERT INTO billing_ledger (org_id, occurred_at, kind, amount_minor, currency, request_id, description)
                VALUES ('org_a', 1768478400000000, 'grant', 1000, 'USD', NULL, 'welcome');
            INSERT INTO routers (id, base_url, protocol, api_version, api_key_ref, enabled, created_at)
                VALUES ('router-1', 'http://10.0.0.5:5010', 'cortensor', 'v1', 'env:R1', 1, 1768478400000000);
            INSERT INTO router_pools (name, state, prompt_format, task_timeout_seconds, upstream_model, created_at)
                VALUES ('pool-a', 'active', 'llama3', 240, NULL, 1768478400000000);
            INSERT INTO router_pool_members (pool_name, router_id, session_id, enabled) VALUES ('pool-a', 'router-1', '7', 1);
            INSERT INTO router_pool_models (alias, pool_name, context_tokens, max_output_tokens, enabled, created_at)
                VALUES ('llama-3', 'pool-a', 8192, 1024, 1, 1768478400000000);
            """);
        Assert.Equal(1, await db.CreateMigrator().GetSchemaVersionAsync());

        await db.CreateMigrator().MigrateAsync();

        Assert.Equal(SqliteMigration.LatestVersion, await db.CreateMigrator().GetSchemaVersionAsync());
        Assert.Equal("fleet_settings", (string?)await ScalarAsync(db, "SELECT description FROM schema_version WHERE version = 2;"));
        await using var stores = SqliteExtendedStores.Wrap(db);
        Assert.Equal("Ada", (await stores.Accounts.FindUserAsync("usr_1"))?.DisplayName);
        Assert.Equal(["Acme"], (await stores.Accounts.ListOrganizationsForUserAsync("usr_1")).Select(o => o.Name));
        Assert.Equal(1000, await stores.Ledger.GetBalanceAsync("org_a", "USD"));

        var fleet = await stores.Fleet.LoadAsync();
        Assert.Equal("env:R1", fleet.Routers["router-1"].ApiKeyRef);
        var pool = fleet.Pools["pool-a"];
        Assert.Equal(Cortensor.Portal.Fleet.Prompts.PromptFormat.Llama3, pool.PromptFormat);
        Assert.Equal(240, pool.TaskTimeoutSeconds);
        Assert.Equal(("router-1", (long?)7), (pool.Members.Single().Router, pool.Members.Single().SessionId));
        // Columns added by V0002 carry the option defaults for rows written before the upgrade.
        var defaults = new PoolOptions();
        Assert.Null(pool.PromptType);
        Assert.Null(pool.PrecommitTimeoutSeconds);
        Assert.Equal(defaults.HttpTimeoutSlackSeconds, pool.HttpTimeoutSlackSeconds);
        Assert.Equal(defaults.Defaults.MaxTokens, pool.Defaults.MaxTokens);
        Assert.Null(pool.Defaults.Temperature);
        // And those of V0005 (stream isolation, URL form).
        Assert.Equal(defaults.RouterQueues, pool.RouterQueues);
        Assert.Equal(defaults.StreamQueueLength, pool.StreamQueueLength);
        Assert.Equal(defaults.StreamQueueWaitSeconds, pool.StreamQueueWaitSeconds);
        Assert.Equal(CortensorUrlForm.Path, fleet.Routers["router-1"].UrlForm);
        var model = fleet.Models["llama-3"];
        Assert.Equal(new ModelOptions().OwnedBy, model.OwnedBy);
        Assert.Equal(new ModelOptions().Created, model.Created);
        Assert.Equal(1024, model.MaxOutputTokens);

        // And the upgraded file takes writes of the new columns.
        var changed = new PoolOptions { Members = [new PoolMemberOptions { Router = "router-1", SessionId = 8 }], PromptType = 1, HttpTimeoutSlackSeconds = 5 };
        await stores.Fleet.SavePoolAsync("pool-a", changed);
        Assert.Equal(5, (await stores.Fleet.LoadAsync()).Pools["pool-a"].HttpTimeoutSlackSeconds);
    }

    [Fact]
    public async Task Migrate_Fresh_RecordsV0002AndItsIndex()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        Assert.True(SqliteMigration.LatestVersion >= 2);
        Assert.Equal("fleet_settings", SqliteMigration.All[1].Description);
        Assert.Equal(1L, await ScalarAsync(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'ix_router_pool_members_router_id';"));
        Assert.Equal(1L, await ScalarAsync(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'router_pools' AND sql LIKE '%STRICT%';"));
    }

    [Fact]
    public async Task Fleet_RouterKey_NeverWrittenToTheFile()
    {
        const string Secret = "sk-router-very-secret-0123456789";
        await using var db = new SqliteTestDatabase();
        await using var stores = await db.CreateExtendedStoreAsync();

        await stores.Fleet.SaveRouterAsync("router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5010"), ApiKey = Secret, ApiKeyRef = "env:ROUTER_1_KEY" });
        await stores.Fleet.SaveRouterAsync("router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5011"), ApiKey = Secret, ApiKeyRef = "env:ROUTER_1_KEY" });

        Assert.Equal(0L, await ScalarAsync(db, $"SELECT count(*) FROM routers WHERE instr(id || base_url || protocol || api_version || coalesce(api_key_ref, ''), '{Secret}') > 0;"));
        Assert.Equal("env:ROUTER_1_KEY", (string?)await ScalarAsync(db, "SELECT api_key_ref FROM routers;"));
        await ExecuteAsync(db, "PRAGMA wal_checkpoint(TRUNCATE);");
        using (var pooled = new SqliteConnection(db.Database.ConnectionString))
        {
            SqliteConnection.ClearPool(pooled);
        }

        foreach (var file in Directory.GetFiles(Path.GetDirectoryName(db.DatabasePath)!))
        {
            var bytes = await File.ReadAllBytesAsync(file);
            Assert.DoesNotContain(Secret, System.Text.Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Fleet_StoredAsDocumentedColumns()
    {
        await using var db = new SqliteTestDatabase();
        await using var stores = await db.CreateExtendedStoreAsync();
        await stores.Fleet.SaveRouterAsync("router-vllm", new RouterOptions { BaseUrl = new Uri("http://10.0.0.9:8000"), Protocol = RouterProtocol.OpenAICompatible });
        await stores.Fleet.SaveRouterAsync("router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5010") });
        await stores.Fleet.SavePoolAsync("pool-a", new PoolOptions
        {
            Members = [new PoolMemberOptions { Router = "router-1", SessionId = 42 }, new PoolMemberOptions { Router = "router-vllm", Enabled = false }],
            PromptFormat = Cortensor.Portal.Fleet.Prompts.PromptFormat.ChatML,
            Enabled = false,
            Defaults = new SamplingDefaults { MaxTokens = 256, Temperature = 0.5 },
        });
        await stores.Fleet.SaveModelAsync("m1", new ModelOptions { Pool = "pool-a", Created = 1_700_000_000 });

        Assert.Equal("openai_compatible", (string?)await ScalarAsync(db, "SELECT protocol FROM routers WHERE id = 'router-vllm';"));
        Assert.Equal("cortensor", (string?)await ScalarAsync(db, "SELECT protocol FROM routers WHERE id = 'router-1';"));
        Assert.Equal("disabled", (string?)await ScalarAsync(db, "SELECT state FROM router_pools;"));
        Assert.Equal("chatml", (string?)await ScalarAsync(db, "SELECT prompt_format FROM router_pools;"));
        Assert.Equal(0.5, (double?)await ScalarAsync(db, "SELECT default_temperature FROM router_pools;"));
        Assert.Equal("42|0|1;|1|0", (string?)await ScalarAsync(db, "SELECT group_concat(session_id || '|' || position || '|' || enabled, ';') FROM (SELECT * FROM router_pool_members ORDER BY position);"));
        Assert.Equal(1_700_000_000L, await ScalarAsync(db, "SELECT created_unix_seconds FROM router_pool_models;"));
    }

    [Fact]
    public async Task Fleet_IdsMatchCaseInsensitively_KeepStoredSpelling()
    {
        await using var db = new SqliteTestDatabase();
        await using var stores = await db.CreateExtendedStoreAsync();
        await stores.Fleet.SaveRouterAsync("Router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5010") });
        await stores.Fleet.SaveRouterAsync("router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5099") });
        await stores.Fleet.SavePoolAsync("Pool-A", new PoolOptions { Members = [new PoolMemberOptions { Router = "ROUTER-1", SessionId = 1 }] });
        await stores.Fleet.SavePoolAsync("pool-a", new PoolOptions { Members = [new PoolMemberOptions { Router = "router-1", SessionId = 2 }] });
        await stores.Fleet.SaveModelAsync("M1", new ModelOptions { Pool = "POOL-A" });
        await stores.Fleet.SaveModelAsync("m1", new ModelOptions { Pool = "pool-a", ContextTokens = 10 });

        var fleet = await stores.Fleet.LoadAsync();

        Assert.Equal("Router-1", Assert.Single(fleet.Routers).Key);
        Assert.Equal(new Uri("http://10.0.0.5:5099"), fleet.Routers["router-1"].BaseUrl);
        var pool = Assert.Single(fleet.Pools);
        Assert.Equal("Pool-A", pool.Key);
        Assert.Equal(("Router-1", (long?)2), (pool.Value.Members.Single().Router, pool.Value.Members.Single().SessionId));
        var model = Assert.Single(fleet.Models);
        Assert.Equal(("M1", "Pool-A", 10), (model.Key, model.Value.Pool, model.Value.ContextTokens));
        Assert.True(await stores.Fleet.DeleteModelAsync("m1"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => stores.Fleet.DeleteRouterAsync("ROUTER-1"));
    }

    [Fact]
    public async Task Fleet_SimulatedRouterWithoutBaseUrl_IsRefused()
    {
        await using var db = new SqliteTestDatabase();
        await using var stores = await db.CreateExtendedStoreAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => stores.Fleet.SaveRouterAsync("sim", new RouterOptions { Simulated = true }));
    }

    [Fact]
    public async Task Accounts_StoredAsDocumentedText()
    {
        await using var db = new SqliteTestDatabase();
        await using var stores = await db.CreateExtendedStoreAsync();
        await stores.Accounts.AddUserAsync(new PortalUser { Id = "usr_1", AuthProvider = "local", AuthSubject = "s", Status = UserStatus.Disabled, CreatedAt = At });
        await stores.Accounts.AddOrganizationAsync(new Organization { Id = "org_a", Name = "Acme", Status = OrganizationStatus.Suspended, CreatedAt = At });
        await stores.Accounts.SetMemberAsync(new OrganizationMember("org_a", "usr_1", OrganizationRole.Admin, At));
        await stores.Plans.UpsertPlanAsync(new Plan { Id = "plan_a", Name = "A", CreatedAt = At });
        await stores.Plans.AddSubscriptionAsync(new PlanSubscription { Id = "sub_1", OrgId = "org_a", PlanId = "plan_a", PeriodStart = At, CreatedAt = At });
        await stores.Policies.SetAsync(new ModelAccessPolicy { SubjectType = PolicySubjectType.Key, SubjectId = "key_1", ModelAlias = "m", Effect = PolicyEffect.Deny, CreatedAt = At });
        await stores.Audit.AppendAsync(new AuditEntry { Id = "aud_1", OccurredAt = At, ActorType = AuditActorType.Admin, ActorId = "usr_1", Action = "key.revoked", DetailsJson = "{\"a\":1}" });
        await stores.Ledger.AppendAsync(new LedgerEntry { OrgId = "org_a", OccurredAt = At, Kind = LedgerEntryKind.Adjustment, AmountMinor = -5, Currency = "USD" });

        Assert.Equal("disabled", (string?)await ScalarAsync(db, "SELECT status FROM users;"));
        Assert.Equal("suspended", (string?)await ScalarAsync(db, "SELECT status FROM organizations;"));
        Assert.Equal("admin", (string?)await ScalarAsync(db, "SELECT role FROM organization_members;"));
        Assert.Equal("active", (string?)await ScalarAsync(db, "SELECT status FROM plan_subscriptions;"));
        Assert.Equal("key|deny", (string?)await ScalarAsync(db, "SELECT subject_type || '|' || effect FROM model_access_policies;"));
        Assert.StartsWith("map_", (string?)await ScalarAsync(db, "SELECT id FROM model_access_policies;"), StringComparison.Ordinal);
        Assert.Equal("admin|{\"a\":1}", (string?)await ScalarAsync(db, "SELECT actor_type || '|' || details FROM audit_log;"));
        Assert.Equal("adjustment|-5", (string?)await ScalarAsync(db, "SELECT kind || '|' || amount_minor FROM billing_ledger;"));
        Assert.Equal((At.UtcTicks - DateTime.UnixEpoch.Ticks) / 10, await ScalarAsync(db, "SELECT created_at FROM users;"));
    }

    [Fact]
    public async Task Audit_InvalidDetailsJson_Throws()
    {
        await using var db = new SqliteTestDatabase();
        await using var stores = await db.CreateExtendedStoreAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => stores.Audit.AppendAsync(new AuditEntry
        {
            Id = "aud_1",
            OccurredAt = At,
            ActorType = AuditActorType.System,
            ActorId = "x",
            Action = "key.created",
            DetailsJson = "{not json",
        }));
    }

    [Fact]
    public async Task Policies_ListApplicable_UsesTheUniqueIndex()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();
        await using var connection = await db.Database.OpenConnectionAsync();
        using var command = connection.CreateCommand();
        command.CommandText = """
            EXPLAIN QUERY PLAN
            SELECT subject_type, subject_id, model_alias, effect, created_at FROM model_access_policies
            WHERE (subject_type = 'key' AND subject_id = 'k') OR (subject_type = 'org' AND subject_id = 'o') OR (subject_type = 'plan' AND subject_id = 'p');
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

    [Fact]
    public async Task Registration_ResolvesEveryStoreAsItsInterface_Once()
    {
        await using var db = new SqliteTestDatabase();
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorSqliteStorage(o => o.DatabasePath = db.DatabasePath);
        services.AddCortensorSqliteStorage(o => o.DatabasePath = db.DatabasePath);
        await using var provider = services.BuildServiceProvider();

        Assert.Same(provider.GetRequiredService<SqliteAccountStore>(), provider.GetRequiredService<IAccountStore>());
        Assert.Same(provider.GetRequiredService<SqlitePlanStore>(), provider.GetRequiredService<IPlanStore>());
        Assert.Same(provider.GetRequiredService<SqliteModelAccessPolicyStore>(), provider.GetRequiredService<IModelAccessPolicyStore>());
        Assert.Same(provider.GetRequiredService<SqliteAuditLog>(), provider.GetRequiredService<IAuditLog>());
        Assert.Same(provider.GetRequiredService<SqliteLedgerStore>(), provider.GetRequiredService<ILedgerStore>());
        Assert.Same(provider.GetRequiredService<SqliteFleetConfigurationStore>(), provider.GetRequiredService<IFleetConfigurationStore>());
        foreach (var type in (Type[])[typeof(IAccountStore), typeof(IPlanStore), typeof(IModelAccessPolicyStore), typeof(IAuditLog), typeof(ILedgerStore), typeof(IFleetConfigurationStore), typeof(SqliteFleetConfigurationStore)])
        {
            Assert.Single(services, d => d.ServiceType == type);
        }
    }

    [Fact]
    public async Task Registration_ReplacesAnEarlierRegistration()
    {
        await using var db = new SqliteTestDatabase();
        var services = new ServiceCollection().AddLogging();
        services.AddSingleton<ILedgerStore, ThrowingLedger>();
        services.AddCortensorSqliteStorage(o => o.DatabasePath = db.DatabasePath);
        await using var provider = services.BuildServiceProvider();

        Assert.IsType<SqliteLedgerStore>(provider.GetRequiredService<ILedgerStore>());
    }

    /// <summary>Builds a database at schema version 1 exactly as a V0001-only release left it.</summary>
    private static async Task CreateAtVersion1Async(SqliteTestDatabase db)
    {
        var v1 = SqliteMigration.All[0];
        Assert.Equal(1, v1.Version);
        await ExecuteAsync(db, "PRAGMA journal_mode = WAL;");
        await ExecuteAsync(db, "CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at INTEGER NOT NULL, description TEXT NOT NULL) STRICT;");
        await ExecuteAsync(db, "BEGIN IMMEDIATE;\n" + v1.ReadScript() + "\nINSERT INTO schema_version (version, applied_at, description) VALUES (1, 0, 'initial');\nCOMMIT;");
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

    private sealed class ThrowingLedger : ILedgerStore
    {
        public Task<bool> AppendAsync(LedgerEntry entry, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<long> GetBalanceAsync(string orgId, string currency, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task<IReadOnlyList<LedgerEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    }
}
