using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Metering.Ledger;
using Cortensor.Portal.Storage.Postgres.Migrations;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>V0001 → V0002 on a schema that already holds data, and the Postgres-specific parts of the new stores.</summary>
public sealed class PostgresFleetSchemaUpgradeTests
{
    private static readonly DateTimeOffset BaseTime = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Migrate_V0001SchemaWithData_AppliesV0002AndKeepsEveryRow()
    {
        var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await using var stores = PostgresExtendedStores.Over(db); // drops the schema at the end
        var v1Only = new PostgresMigrator(db.DataSource, db.Options, TimeProvider.System, null, [EmbeddedMigrations.All[0]]);
        Assert.Equal([1], (await v1Only.MigrateAsync()).Applied);
        await db.CreateKeyStore().AddAsync(PostgresTestData.NewKey("org_a", "key_1"));
        await db.ExecuteAsync(
            $"""
            INSERT INTO {db.Table("users")} (id, auth_provider, auth_subject, email, display_name, status, created_at)
                VALUES ('usr_1', 'supabase', 'sub-1', 'ada@example.com', 'Ada', 'active', '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("organizations")} (id, name, owner_user_id, status, created_at)
                VALUES ('org_a', 'Acme', 'usr_1', 'active', '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("organization_members")} (org_id, user_id, role, created_at)
                VALUES ('org_a', 'usr_1', 'owner', '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("plans")} (id, name, created_at) VALUES ('plan_pro', 'Pro', '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("plan_subscriptions")} (id, org_id, plan_id, period_start, period_end, status, created_at)
                VALUES ('sub_1', 'org_a', 'plan_pro', '2026-01-15 12:00:00+00', NULL, 'active', '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("model_access_policies")} (id, subject_type, subject_id, model_alias, effect, created_at)
                VALUES ('map_1', 'org', 'org_a', 'llama-3', 'deny', '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("billing_ledger")} (org_id, occurred_at, kind, amount_minor, currency, request_id, description)
                VALUES ('org_a', '2026-01-15 12:00:00+00', 'grant', 1000, 'USD', NULL, 'welcome'),
                       ('org_a', '2026-01-15 12:00:01+00', 'debit', 40, 'USD', 'req_1', '');
            INSERT INTO {db.Table("audit_log")} (id, occurred_at, actor_type, actor_id, action, org_id, target_id, details)
                VALUES ('aud_1', '2026-01-15 12:00:00+00', 'admin', 'usr_1', 'key.created', 'org_a', 'key_1', '{"{"}"name": "ci"{"}"}');
            INSERT INTO {db.Table("routers")} (id, base_url, protocol, api_version, api_key_ref, enabled, created_at)
                VALUES ('router-b', 'http://10.0.0.6:5010', 'cortensor', 'v1', 'env:ROUTER_B_KEY', true, '2026-01-15 12:00:00+00'),
                       ('router-a', 'http://10.0.0.5:5010', 'cortensor', 'v1', NULL, false, '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("router_pools")} (name, state, prompt_format, task_timeout_seconds, upstream_model, created_at)
                VALUES ('pool-a', 'active', 'llama3', 300, NULL, '2026-01-15 12:00:00+00'),
                       ('pool-b', 'draining', 'chatml', 120, 'some/model', '2026-01-15 12:00:00+00');
            INSERT INTO {db.Table("router_pool_members")} (pool_name, router_id, session_id, enabled)
                VALUES ('pool-a', 'router-b', 3, true), ('pool-a', 'router-a', 9, false), ('pool-a', 'router-a', 2, true),
                       ('pool-b', 'router-b', 1, true);
            INSERT INTO {db.Table("router_pool_models")} (alias, pool_name, context_tokens, max_output_tokens, enabled, created_at)
                VALUES ('llama-3', 'pool-a', 131072, 4096, true, '2026-01-15 12:00:00+00');
            """);

        var result = await db.CreateMigrator().MigrateAsync();

        Assert.Equal(1, result.PreviousVersion);
        Assert.Equal(PostgresMigrator.LatestVersion, result.CurrentVersion);
        Assert.Contains(2, result.Applied);
        Assert.Equal("fleet settings", await db.ScalarAsync<string>($"SELECT description FROM {db.Table("schema_version")} WHERE version = 2"));

        var fleet = await stores.Fleet.LoadAsync();
        Assert.Equal(["router-a", "router-b"], fleet.Routers.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("env:ROUTER_B_KEY", fleet.Routers["router-b"].ApiKeyRef);
        Assert.False(fleet.Routers["router-a"].Enabled);
        var poolA = fleet.Pools["pool-a"];
        // Rows from before V0002 are numbered in (router, session) order.
        Assert.Equal([("router-a", (long?)2, true), ("router-a", 9, false), ("router-b", 3, true)], poolA.Members.Select(m => (m.Router, m.SessionId, m.Enabled)));
        Assert.Equal(PromptFormat.Llama3, poolA.PromptFormat);
        Assert.Equal(300, poolA.TaskTimeoutSeconds);
        Assert.True(poolA.Enabled);
        // New columns carry the option defaults.
        var defaults = new PoolOptions();
        Assert.Null(poolA.PromptType);
        Assert.Null(poolA.PrecommitTimeoutSeconds);
        Assert.Equal(defaults.HttpTimeoutSlackSeconds, poolA.HttpTimeoutSlackSeconds);
        Assert.Equal(defaults.Defaults.MaxTokens, poolA.Defaults.MaxTokens);
        Assert.Null(poolA.Defaults.Temperature);
        // And those of V0006 (stream isolation, URL form).
        Assert.Equal(defaults.RouterQueues, poolA.RouterQueues);
        Assert.Equal(defaults.StreamQueueLength, poolA.StreamQueueLength);
        Assert.Equal(defaults.StreamQueueWaitSeconds, poolA.StreamQueueWaitSeconds);
        Assert.Equal(CortensorUrlForm.Path, fleet.Routers["router-b"].UrlForm);
        Assert.False(fleet.Pools["pool-b"].Enabled); // draining
        Assert.Equal("some/model", fleet.Pools["pool-b"].UpstreamModel);
        var model = fleet.Models["llama-3"];
        Assert.Equal(("pool-a", 131072, 4096), (model.Pool, model.ContextTokens, model.MaxOutputTokens));
        Assert.Equal(new ModelOptions().OwnedBy, model.OwnedBy);
        Assert.Equal(new ModelOptions().Created, model.Created);

        // Every other table kept its rows and reads through the new stores.
        Assert.Equal("ada@example.com", (await stores.Accounts.FindUserByIdentityAsync("supabase", "sub-1"))?.Email);
        Assert.Equal("Acme", (await stores.Accounts.FindOrganizationAsync("org_a"))?.Name);
        Assert.Single(await stores.Accounts.ListMembersAsync("org_a"));
        Assert.Equal("sub_1", (await stores.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(1)))?.Id);
        Assert.Equal(PolicyEffect.Deny, Assert.Single(await stores.Policies.ListApplicableAsync(null, "org_a", "key_1")).Effect);
        Assert.Equal(960, await stores.Ledger.GetBalanceAsync("org_a", "USD"));
        Assert.False(await stores.Ledger.AppendAsync(new LedgerEntry { OrgId = "org_a", OccurredAt = BaseTime, Kind = LedgerEntryKind.Debit, AmountMinor = 40, Currency = "USD", RequestId = "req_1" }));
        var audit = Assert.Single(await stores.Audit.ListAsync("org_a", BaseTime, BaseTime.AddHours(1)));
        Assert.Equal("""{"name":"ci"}""", audit.DetailsJson);
        Assert.Single(await db.CreateKeyStore().ListAsync("org_a"));

        // The upgraded tables take the new settings: a session-less member, order kept, and a saved pool replaces the old rows.
        await stores.Fleet.SaveRouterAsync("router-vllm", new RouterOptions { BaseUrl = new Uri("http://10.0.0.9:8000"), Protocol = RouterProtocol.OpenAICompatible });
        await stores.Fleet.SavePoolAsync("pool-a", new PoolOptions
        {
            Members = [new PoolMemberOptions { Router = "router-vllm" }, new PoolMemberOptions { Router = "router-b", SessionId = 3 }],
            PrecommitTimeoutSeconds = 30,
        });
        var reloaded = (await stores.Fleet.LoadAsync()).Pools["pool-a"];
        Assert.Equal([("router-vllm", (long?)null), ("router-b", 3)], reloaded.Members.Select(m => (m.Router, m.SessionId)));
        Assert.Equal(30, reloaded.PrecommitTimeoutSeconds);
        Assert.True(await stores.Fleet.DeleteRouterAsync("router-a"));
    }

    [Fact]
    public async Task Fleet_IdsMatchCaseInsensitively_KeepingTheStoredSpelling()
    {
        var db = await PostgresTestDatabase.CreateAsync();
        await using var stores = PostgresExtendedStores.Over(db); // drops the schema at the end
        await stores.Fleet.SaveRouterAsync("Router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5010") });
        await stores.Fleet.SaveRouterAsync("router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.6:5010"), ApiVersion = "v2" });
        await stores.Fleet.SavePoolAsync("Pool-A", new PoolOptions { Members = [new PoolMemberOptions { Router = "ROUTER-1", SessionId = 1 }] });
        await stores.Fleet.SavePoolAsync("pool-a", new PoolOptions { Members = [new PoolMemberOptions { Router = "router-1", SessionId = 2 }] });
        await stores.Fleet.SaveModelAsync("Llama-3", new ModelOptions { Pool = "POOL-A" });
        await stores.Fleet.SaveModelAsync("llama-3", new ModelOptions { Pool = "pool-a", ContextTokens = 4096 });

        var loaded = await stores.Fleet.LoadAsync();

        var router = Assert.Single(loaded.Routers);
        Assert.Equal("Router-1", router.Key);
        Assert.Equal(new Uri("http://10.0.0.6:5010"), router.Value.BaseUrl);
        var pool = Assert.Single(loaded.Pools);
        Assert.Equal("Pool-A", pool.Key);
        Assert.Equal([("Router-1", (long?)2)], pool.Value.Members.Select(m => (m.Router, m.SessionId)));
        var model = Assert.Single(loaded.Models);
        Assert.Equal(("Llama-3", "Pool-A", 4096), (model.Key, model.Value.Pool, model.Value.ContextTokens));
        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => stores.Fleet.DeleteRouterAsync("ROUTER-1"));
        Assert.True(await stores.Fleet.DeleteModelAsync("LLAMA-3"));
    }

    [Fact]
    public async Task Fleet_SimulatedRouterOrSettingOutOfRange_ThrowsArgumentException()
    {
        var db = await PostgresTestDatabase.CreateAsync();
        await using var stores = PostgresExtendedStores.Over(db); // drops the schema at the end
        await stores.Fleet.SaveRouterAsync("router-1", new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5010") });

        await Assert.ThrowsAnyAsync<ArgumentException>(() => stores.Fleet.SaveRouterAsync("sim", new RouterOptions { BaseUrl = new Uri("http://127.0.0.1:1"), Simulated = true }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => stores.Fleet.SaveRouterAsync("no-url", new RouterOptions()));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => stores.Fleet.SavePoolAsync("pool-a", new PoolOptions
        {
            Members = [new PoolMemberOptions { Router = "router-1", SessionId = 1 }],
            HttpTimeoutSlackSeconds = 601,
        }));

        var loaded = await stores.Fleet.LoadAsync();
        Assert.Equal(["router-1"], loaded.Routers.Keys);
        Assert.Empty(loaded.Pools);
    }

    [Fact]
    public async Task Fleet_DeleteRouterRacingSavePool_NeverLeavesAMemberWithoutItsRouter()
    {
        var db = await PostgresTestDatabase.CreateAsync();
        await using var stores = PostgresExtendedStores.Over(db); // drops the schema at the end

        for (var round = 0; round < 10; round++)
        {
            var routerId = $"router-{round}";
            await stores.Fleet.SaveRouterAsync(routerId, new RouterOptions { BaseUrl = new Uri("http://10.0.0.5:5010") });
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var save = Task.Run(async () =>
            {
                await start.Task;
                await stores.Fleet.SavePoolAsync($"pool-{round}", new PoolOptions { Members = [new PoolMemberOptions { Router = routerId, SessionId = 1 }] });
            });
            var delete = Task.Run(async () =>
            {
                await start.Task;
                return await stores.Fleet.DeleteRouterAsync(routerId);
            });
            start.SetResult();

            // Exactly one wins: either the pool was saved (and the delete refused), or the router is gone (and the save refused).
            var saveError = await Record.ExceptionAsync(() => save);
            var deleteError = await Record.ExceptionAsync(() => delete);
            Assert.True((saveError is null) != (deleteError is null), $"save: {saveError?.Message}; delete: {deleteError?.Message}");
            Assert.IsType<InvalidOperationException>(saveError ?? deleteError);
        }

        Assert.Equal(
            0,
            await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("router_pool_members")} m WHERE NOT EXISTS (SELECT 1 FROM {db.Table("routers")} r WHERE r.id = m.router_id)"));
    }

    [Fact]
    public async Task Audit_NullDetails_StoredAsEmptyObject_ReadBackNull()
    {
        var db = await PostgresTestDatabase.CreateAsync();
        await using var stores = PostgresExtendedStores.Over(db); // drops the schema at the end

        await stores.Audit.AppendAsync(new AuditEntry { Id = "aud_1", OccurredAt = BaseTime, ActorType = AuditActorType.System, ActorId = "sys", Action = "x", OrgId = "org_a" });
        await Assert.ThrowsAnyAsync<ArgumentException>(() => stores.Audit.AppendAsync(
            new AuditEntry { Id = "aud_2", OccurredAt = BaseTime, ActorType = AuditActorType.System, ActorId = "sys", Action = "x", OrgId = "org_a", DetailsJson = "{not json" }));

        Assert.Equal("{}", await db.ScalarAsync<string>($"SELECT details::text FROM {db.Table("audit_log")} WHERE id = 'aud_1'"));
        Assert.Null(Assert.Single(await stores.Audit.ListAsync("org_a", BaseTime, BaseTime.AddSeconds(1))).DetailsJson);
    }
}
