using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Postgres.Usage;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>
/// V0003: usage events and request logs live in one partitioned table <c>requests</c>, with <c>usage_events</c>
/// and <c>request_logs</c> as views over it; the migration from V0002 carries every row over.
/// </summary>
public sealed class PostgresRequestsTableTests
{
    private static readonly DateTimeOffset Jan = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    private static readonly string[] UsageEventColumns =
    [
        "request_id:text", "occurred_at:timestamp with time zone", "org_id:text", "key_id:text", "model:text", "pool:text",
        "outcome:smallint", "prompt_tokens:integer", "completion_tokens:integer", "tokens_estimated:boolean", "stream:boolean",
    ];

    private static readonly string[] RequestLogColumns =
    [
        "request_id:text", "occurred_at:timestamp with time zone", "org_id:text", "key_id:text", "method:text", "path:text",
        "model:text", "status_code:integer", "error_code:text", "latency_ms:integer", "router_id:text", "upstream_status:integer",
    ];

    [Fact]
    public async Task Migrate_Empty_CreatesTheRequestsTableAndTwoViewsWithTheOldColumns()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);

        var result = await db.CreateMigrator().MigrateAsync();

        Assert.Contains(3, result.Applied);
        Assert.Equal("one requests table", await db.ScalarAsync<string>($"SELECT description FROM {db.Table("schema_version")} WHERE version = 3"));
        Assert.Equal("p", await db.ScalarAsync<string>($"SELECT relkind::text FROM pg_class WHERE oid = '{db.Table("requests")}'::regclass"));
        Assert.Equal(UsageEventColumns, await ColumnsAsync(db, "usage_events"));
        Assert.Equal(RequestLogColumns, await ColumnsAsync(db, "request_logs"));
        foreach (var view in new[] { "usage_events", "request_logs" })
        {
            Assert.Equal("v", await db.ScalarAsync<string>($"SELECT relkind::text FROM pg_class WHERE oid = '{db.Table(view)}'::regclass"));
        }

        // Three B-trees per row (the key and two time-range indexes) plus a partial index that ordinary rows skip.
        var indexes = await db.ColumnAsync($"SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = '{db.Table("requests")}'::regclass");
        Assert.Equal(4, indexes.Count);
        Assert.Single(indexes, i => i.Contains(" WHERE ", StringComparison.Ordinal));
        Assert.Equal(1, await db.ScalarAsync<int>(
            $"SELECT count(*) FROM pg_partitioned_table pt JOIN pg_class d ON d.oid = pt.partdefid WHERE pt.partrelid = '{db.Table("requests")}'::regclass AND d.relname = 'requests_default'"));
    }

    [Fact]
    public async Task Migrate_V0002SchemaWithPartitionsAndRows_KeepsEveryRow_AndTheViewsReturnThem()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        var v2Only = new PostgresMigrator(db.DataSource, db.Options, TimeProvider.System, null, [EmbeddedMigrations.All[0], EmbeddedMigrations.All[1]]);
        Assert.Equal([1, 2], (await v2Only.MigrateAsync()).Applied);
        var usageEvents = db.Table("usage_events");
        var requestLogs = db.Table("request_logs");
        await db.ExecuteAsync(
            $"""
            CREATE TABLE {db.Table("usage_events_p202601")} PARTITION OF {usageEvents} FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00');
            CREATE TABLE {db.Table("request_logs_p202601")} PARTITION OF {requestLogs} FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00');
            CREATE TABLE {db.Table("request_logs_p202602")} PARTITION OF {requestLogs} FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-03-01 00:00:00+00');

            -- 300 ordinary requests in January, over 3 orgs and 6 keys.
            INSERT INTO {usageEvents}
                SELECT 'req_' || lpad(g::text, 4, '0'), '2026-01-10 00:00:00+00'::timestamptz + g * interval '1 second', 'org_' || (g % 3), 'key_' || (g % 6),
                       'llama-3', 'pool-a', (g % 4)::smallint, g, 2 * g, g % 5 = 0, g % 2 = 0
                FROM generate_series(1, 300) g;
            INSERT INTO {requestLogs}
                SELECT 'req_' || lpad(g::text, 4, '0'), '2026-01-10 00:00:00+00'::timestamptz + g * interval '1 second', 'org_' || (g % 3), 'key_' || (g % 6),
                       'POST', '/v1/chat/completions', 'llama-3', CASE WHEN g % 4 = 0 THEN 200 ELSE 502 END,
                       CASE WHEN g % 4 = 0 THEN NULL ELSE 'upstream_error' END, g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'router-1' END,
                       CASE WHEN g % 7 = 0 THEN NULL ELSE 200 END
                FROM generate_series(1, 300) g;

            -- In the default partitions (no month partition), with nulls everywhere they are allowed.
            INSERT INTO {usageEvents} VALUES ('old', '2025-05-01 00:00:00+00', NULL, NULL, NULL, NULL, 1, 0, 0, false, false);
            INSERT INTO {requestLogs} VALUES ('old', '2025-05-01 00:00:00+00', NULL, NULL, 'GET', '/v1/models', NULL, 401, 'invalid_api_key', 0, NULL, NULL);

            -- A usage event without its log, and a log without its usage event (in February).
            INSERT INTO {usageEvents} VALUES ('usage-only', '2026-01-20 00:00:00+00', 'org_0', 'key_0', 'llama-3', 'pool-a', 0, 5, 6, false, false);
            INSERT INTO {requestLogs} VALUES ('log-only', '2026-02-03 00:00:00+00', 'org_1', 'key_1', 'POST', '/v1/completions', 'llama-3', 200, NULL, 9, 'router-2', 200);

            -- The same request id at two different times, and a log that names another key and model.
            INSERT INTO {usageEvents} VALUES ('two-times', '2026-01-21 00:00:00+00', 'org_0', 'key_0', 'llama-3', 'pool-a', 0, 1, 1, false, false);
            INSERT INTO {requestLogs} VALUES ('two-times', '2026-01-21 00:00:00.5+00', 'org_0', 'key_0', 'POST', '/v1/chat/completions', 'llama-3', 200, NULL, 500, NULL, NULL);
            INSERT INTO {usageEvents} VALUES ('odd-key', '2026-01-22 00:00:00+00', 'org_2', 'key_2', 'llama-3', 'pool-a', 0, 3, 4, false, true);
            INSERT INTO {requestLogs} VALUES ('odd-key', '2026-01-22 00:00:00+00', 'org_2', 'key_9', 'POST', '/v1/chat/completions', 'mistral', 200, NULL, 7, NULL, NULL);
            """);
        var usageBefore = await SnapshotAsync(db, "usage_events");
        var logsBefore = await SnapshotAsync(db, "request_logs");
        Assert.Equal(304, usageBefore.Count);
        Assert.Equal(304, logsBefore.Count);

        var result = await db.CreateMigrator().MigrateAsync();

        Assert.Equal(2, result.PreviousVersion);
        Assert.Equal(3, result.Applied[0]); // then any later versions
        Assert.Equal(usageBefore, await SnapshotAsync(db, "usage_events"));
        Assert.Equal(logsBefore, await SnapshotAsync(db, "request_logs"));

        // One row per request; the two-times pair stays two rows (the old keys differ).
        Assert.Equal(300 + 1 + 1 + 1 + 2 + 1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests")}"));
        Assert.Equal(300, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests_p202601")} WHERE request_id LIKE 'req\\_%' AND outcome IS NOT NULL AND method IS NOT NULL AND log_occurred_at IS NULL"));
        Assert.Equal("requests_p202602", await PartitionOfAsync(db, "log-only"));
        Assert.Equal("requests_default", await PartitionOfAsync(db, "old"));
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{db.Schema}' AND c.relname LIKE 'usage\\_events\\_%'"));

        // The store reads what V0002 wrote.
        var store = db.CreateUsageStore();
        var oddUsage = await store.FindUsageEventAsync("odd-key");
        var oddLog = await store.FindRequestLogAsync("odd-key");
        Assert.Equal(("key_2", "llama-3"), (oddUsage!.KeyId, oddUsage.Model));
        Assert.Equal(("key_9", "mistral"), (oddLog!.KeyId, oddLog.Model));
        Assert.Equal(new DateTimeOffset(2026, 1, 21, 0, 0, 0, 500, TimeSpan.Zero), (await store.FindRequestLogAsync("two-times"))!.OccurredAt);
        Assert.Null(await store.FindRequestLogAsync("usage-only"));
        Assert.Null(await store.FindUsageEventAsync("log-only"));
        var january = (From: new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), To: new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero));
        Assert.Equal(100 + 2, (await store.GetTotalsAsync("org_0", january.From, january.To)).Requests); // + usage-only, two-times
        var key2 = Enumerable.Range(1, 300).Where(g => g % 6 == 2).Sum(); // org_2/key_2 rows, plus odd-key (3, 4)
        Assert.Equal(new UsageTotals(51, key2 + 3, (2 * key2) + 4), await store.GetTotalsAsync("org_2", january.From, january.To, "key_2"));

        // Writing the missing halves completes those rows; replaying everything changes nothing else.
        await store.WriteBatchAsync(
            [
                PostgresTestData.NewUsage("usage-only", new DateTimeOffset(2026, 1, 20, 0, 0, 0, TimeSpan.Zero), 999, 999, orgId: "org_0", keyId: "key_0"),
                PostgresTestData.NewUsage("log-only", new DateTimeOffset(2026, 2, 3, 0, 0, 0, TimeSpan.Zero), 8, 8, orgId: "org_1", keyId: "key_1"),
            ],
            CancellationToken.None);
        Assert.Equal(5, (await store.FindUsageEventAsync("usage-only"))!.PromptTokens); // the stored usage event stays
        Assert.Equal(42, (await store.FindRequestLogAsync("usage-only"))!.LatencyMs); // the missing log was added
        Assert.Equal(8, (await store.FindUsageEventAsync("log-only"))!.PromptTokens); // the missing usage event was added
        Assert.Equal(9, (await store.FindRequestLogAsync("log-only"))!.LatencyMs); // the stored log stays
        Assert.Equal(306, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests")}"));
        Assert.Equal(305, (await SnapshotAsync(db, "usage_events")).Count);
        Assert.Equal(305, (await SnapshotAsync(db, "request_logs")).Count);

        // Partition maintenance and retention now act on requests.
        var clock = new ManualTimeProvider(new DateTimeOffset(2027, 3, 1, 0, 0, 0, TimeSpan.Zero));
        var maintained = await db.CreateMaintenance(retentionMonths: 13, monthsAhead: 0, timeProvider: clock).MaintainPartitionsAsync();
        Assert.Equal(["requests_p202703"], maintained.Created);
        Assert.Equal(["requests_p202601"], maintained.Dropped);
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("usage_events")} WHERE occurred_at < '2026-02-01 00:00:00+00'"));
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")} WHERE occurred_at < '2026-02-01 00:00:00+00'"));
        Assert.Equal(1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")}"));
    }

    [Fact]
    public async Task WriteBatch_LogDisagreeingWithItsUsageEvent_EachViewShowsItsPartAsWritten()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();
        var record = PostgresTestData.NewUsage("r1", Jan, 3, 4);
        record = record with { Log = record.Log with { OccurredAt = Jan.AddMilliseconds(250), OrgId = "org_b", KeyId = null, Model = "other" } };

        await store.WriteBatchAsync([record, PostgresTestData.NewUsage("r2", Jan)], CancellationToken.None);
        await store.WriteBatchAsync([record], CancellationToken.None); // a replay: the merge path

        Assert.Equal(record.Usage, await store.FindUsageEventAsync("r1"));
        Assert.Equal(record.Log, await store.FindRequestLogAsync("r1"));
        Assert.Equal(2, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests")}"));
        Assert.Equal(1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")} WHERE org_id = 'org_b' AND key_id IS NULL AND model = 'other'"));
        Assert.Equal(1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("usage_events")} WHERE org_id = 'org_a' AND request_id = 'r1'"));
        Assert.Equal(new UsageTotals(2, 4, 5), await store.GetTotalsAsync("org_a", Jan, Jan.AddSeconds(1)));
    }

    [Fact]
    public async Task UsageEventsView_IsInsertable_AndRefusesARowWithoutAUsagePart()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var columns = "request_id, occurred_at, org_id, key_id, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream";

        await db.ExecuteAsync($"INSERT INTO {db.Table("usage_events")} ({columns}) VALUES ('v1', '2026-01-15 12:00:00+00', 'org_a', 'key_1', 0, 1, 2, false, false)");

        Assert.Equal(new UsageTotals(1, 1, 2), await db.CreateUsageStore().GetTotalsAsync("org_a", Jan.AddHours(-1), Jan.AddHours(1)));
        await Assert.ThrowsAnyAsync<Exception>(() => db.ExecuteAsync(
            $"INSERT INTO {db.Table("usage_events")} ({columns}) VALUES ('v2', '2026-01-15 12:00:00+00', 'org_a', 'key_1', NULL, 1, 2, false, false)"));
    }

    [Fact]
    public async Task WriteBatch_SplitOverTwoConnections_APartThatFailed_RetryStoresEveryRowOnce()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore(); // UsageWriteConnections = 2 (the default)
        var good = Enumerable.Range(0, 4000).Select(i => PostgresTestData.NewUsage($"r{i:D5}", Jan.AddMilliseconds(i), 1, 1)).ToArray();
        var poisoned = PostgresTestData.NewUsage("z-bad", Jan);
        poisoned = poisoned with { Usage = poisoned.Usage with { Outcome = (UsageOutcome)9 } };

        // The row sorting last spoils the second part only: the first part commits, the call throws.
        await Assert.ThrowsAnyAsync<Exception>(() => store.WriteBatchAsync([.. good, poisoned], CancellationToken.None));
        Assert.Equal(2000, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests")}"));
        Assert.NotNull(await store.FindRequestLogAsync("r01999"));
        Assert.Null(await store.FindUsageEventAsync("r02000"));

        // The retry (here with the bad row fixed) merges the stored part and copies the rest.
        await store.WriteBatchAsync([.. good, PostgresTestData.NewUsage("z-bad", Jan)], CancellationToken.None);
        await store.WriteBatchAsync([.. good.Reverse()], CancellationToken.None);

        Assert.Equal(4001, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests")}"));
        Assert.Equal(4001, await db.ScalarAsync<int>($"SELECT count(DISTINCT request_id) FROM {db.Table("request_logs")}"));
        Assert.Equal(new UsageTotals(4001, 4001, 4001), await store.GetTotalsAsync("org_a", Jan, Jan.AddHours(1)));
    }

    [Fact]
    public async Task WriteBatch_OneConnection_ABadRowRollsBackTheWholeLargeBatch()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var options = Microsoft.Extensions.Options.Options.Create(new PostgresStorageOptions
        {
            ConnectionString = db.ConnectionString,
            Schema = db.Schema,
            UsageWriteConnections = 1,
        });
        var store = new PostgresUsageStore(db.DataSource, options);
        var batch = Enumerable.Range(0, 4000).Select(i => PostgresTestData.NewUsage($"r{i:D5}", Jan, 1, 1)).ToList();
        var bad = PostgresTestData.NewUsage("z-bad", Jan);
        batch.Add(bad with { Usage = bad.Usage with { Outcome = (UsageOutcome)9 } });

        await Assert.ThrowsAnyAsync<Exception>(() => store.WriteBatchAsync(batch, CancellationToken.None));

        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests")}"));
    }

    private static Task<List<string>> ColumnsAsync(PostgresTestDatabase db, string relation) => db.ColumnAsync(
        $"""
        SELECT a.attname || ':' || format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a
        WHERE a.attrelid = '{db.Table(relation)}'::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """);

    /// <summary>Every row as text, sorted: equal snapshots mean the same rows with the same values.</summary>
    private static Task<List<string>> SnapshotAsync(PostgresTestDatabase db, string relation) =>
        db.ColumnAsync($"SET TIME ZONE 'UTC'; SELECT t::text FROM {db.Table(relation)} t ORDER BY t::text COLLATE \"C\"");

    private static Task<string> PartitionOfAsync(PostgresTestDatabase db, string requestId) =>
        db.ScalarAsync<string>($"SELECT c.relname::text FROM {db.Table("requests")} t JOIN pg_class c ON c.oid = t.tableoid WHERE t.request_id = '{requestId}'");
}
