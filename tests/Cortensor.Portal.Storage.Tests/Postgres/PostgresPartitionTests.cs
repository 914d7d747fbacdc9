using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Postgres.Migrations;

namespace Cortensor.Portal.Storage.Tests.Postgres;

public sealed class PostgresPartitionTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Maintain_CreatesCurrentAndAheadMonths_OfTheRequestsTable()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await db.CreateMigrator().MigrateAsync();

        var result = await db.CreateMaintenance(monthsAhead: 2, timeProvider: new ManualTimeProvider(Now)).MaintainPartitionsAsync();

        string[] expected = ["requests_p202601", "requests_p202602", "requests_p202603"];
        Assert.Equal(expected, result.Created.Order(StringComparer.Ordinal));
        Assert.Empty(result.Dropped);
        Assert.Equal(expected.Append("requests_default").Order(StringComparer.Ordinal), await PartitionsAsync(db));
    }

    [Fact]
    public async Task Maintain_YearBoundaryAndRunAgain_IsIdempotent()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await db.CreateMigrator().MigrateAsync();
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 30, 23, 59, 59, TimeSpan.Zero));
        var maintenance = db.CreateMaintenance(monthsAhead: 2, timeProvider: clock);

        var first = await maintenance.MaintainPartitionsAsync();
        var second = await maintenance.MaintainPartitionsAsync();

        Assert.Contains("requests_p202611", first.Created);
        Assert.Contains("requests_p202612", first.Created);
        Assert.Contains("requests_p202701", first.Created);
        Assert.Empty(second.Created);
        Assert.Empty(second.Dropped);
    }

    [Fact]
    public async Task Insert_LandsInItsMonthsPartition_OrTheDefaultOutsideThem()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await db.CreateMigrator().MigrateAsync();
        await db.CreateMaintenance(monthsAhead: 2, timeProvider: new ManualTimeProvider(Now)).MaintainPartitionsAsync();
        var store = db.CreateUsageStore();

        await store.WriteBatchAsync(
            [
                PostgresTestData.NewUsage("feb", new DateTimeOffset(2026, 2, 10, 0, 0, 0, TimeSpan.Zero)),
                PostgresTestData.NewUsage("feb-first-instant", new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero)),
                PostgresTestData.NewUsage("jan-last-instant", new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(-10)),
                PostgresTestData.NewUsage("old", new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero)),
                PostgresTestData.NewUsage("far", new DateTimeOffset(2027, 6, 1, 0, 0, 0, TimeSpan.Zero)),
            ],
            CancellationToken.None);

        Assert.Equal("requests_p202602", await PartitionOfAsync(db, "feb"));
        Assert.Equal("requests_p202602", await PartitionOfAsync(db, "feb-first-instant"));
        Assert.Equal("requests_p202601", await PartitionOfAsync(db, "jan-last-instant"));
        Assert.Equal("requests_default", await PartitionOfAsync(db, "old"));
        Assert.Equal("requests_default", await PartitionOfAsync(db, "far"));
        Assert.Equal(5, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")}"));
    }

    [Fact]
    public async Task Maintain_MonthWithRowsInDefault_MovesThemIntoTheNewPartition()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await db.CreateMigrator().MigrateAsync();
        var clock = new ManualTimeProvider(Now);
        await db.CreateMaintenance(monthsAhead: 0, timeProvider: clock).MaintainPartitionsAsync();
        var store = db.CreateUsageStore();
        var may = new DateTimeOffset(2026, 5, 3, 0, 0, 0, TimeSpan.Zero);
        await store.WriteBatchAsync([PostgresTestData.NewUsage("may", may, 5, 6), PostgresTestData.NewUsage("june", may.AddMonths(1))], CancellationToken.None);
        Assert.Equal("requests_default", await PartitionOfAsync(db, "may"));

        clock.Now = new DateTimeOffset(2026, 4, 20, 0, 0, 0, TimeSpan.Zero);
        var result = await db.CreateMaintenance(monthsAhead: 1, timeProvider: clock).MaintainPartitionsAsync();

        Assert.Contains("requests_p202605", result.Created);
        Assert.Equal("requests_p202605", await PartitionOfAsync(db, "may"));
        Assert.Equal("requests_default", await PartitionOfAsync(db, "june"));
        Assert.Equal(new UsageTotals(1, 5, 6), await store.GetTotalsAsync("org_a", may.AddDays(-1), may.AddDays(1)));
        Assert.NotNull(await store.FindUsageEventAsync("may"));
        Assert.NotNull(await store.FindRequestLogAsync("may"));

        // The moved partition carries the parent's indexes and uniqueness.
        Assert.True(await db.ScalarAsync<int>($"SELECT count(*) FROM pg_indexes WHERE schemaname = '{db.Schema}' AND tablename = 'requests_p202605'") >= 4);
        await store.WriteBatchAsync([PostgresTestData.NewUsage("may", may, 7, 7)], CancellationToken.None);
        Assert.Equal(new UsageTotals(1, 5, 6), await store.GetTotalsAsync("org_a", may.AddDays(-1), may.AddDays(1)));
    }

    [Fact]
    public async Task Maintain_Retention_DropsOnlyMonthsEntirelyOlder_NeverTheCurrentMonth()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await db.CreateMigrator().MigrateAsync();
        var clock = new ManualTimeProvider(new DateTimeOffset(2024, 11, 10, 0, 0, 0, TimeSpan.Zero));
        await db.CreateMaintenance(retentionMonths: 13, monthsAhead: 2, timeProvider: clock).MaintainPartitionsAsync(); // 2024-11 .. 2025-01
        var store = db.CreateUsageStore();
        await store.WriteBatchAsync(
            [
                PostgresTestData.NewUsage("nov24", new DateTimeOffset(2024, 11, 20, 0, 0, 0, TimeSpan.Zero)),
                PostgresTestData.NewUsage("dec24", new DateTimeOffset(2024, 12, 20, 0, 0, 0, TimeSpan.Zero)),
                PostgresTestData.NewUsage("old-default", new DateTimeOffset(2023, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            ],
            CancellationToken.None);

        // 13 months before 2026-01-15 is 2024-12-15: November 2024 ended before it, December 2024 did not.
        clock.Now = Now;
        var result = await db.CreateMaintenance(retentionMonths: 13, monthsAhead: 2, timeProvider: clock).MaintainPartitionsAsync();

        Assert.Equal(["requests_p202411"], result.Dropped);
        var partitions = await PartitionsAsync(db);
        Assert.DoesNotContain("requests_p202411", partitions);
        Assert.Contains("requests_p202412", partitions);
        Assert.Contains("requests_p202601", partitions);
        Assert.Null(await store.FindUsageEventAsync("nov24"));
        Assert.Null(await store.FindUsageEventAsync("old-default"));
        Assert.NotNull(await store.FindUsageEventAsync("dec24"));
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")} WHERE request_id IN ('nov24', 'old-default')"));
        Assert.Equal(1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")} WHERE request_id = 'dec24'"));

        // A one-month retention on the first day of a month still keeps the current month.
        clock.Now = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        var tight = await db.CreateMaintenance(retentionMonths: 1, monthsAhead: 0, timeProvider: clock).MaintainPartitionsAsync();
        Assert.DoesNotContain("requests_p202603", tight.Dropped);
        Assert.DoesNotContain("requests_p202602", tight.Dropped);
        Assert.Contains("requests_p202601", tight.Dropped);
        Assert.Contains("requests_p202603", await PartitionsAsync(db));
    }

    [Fact]
    public async Task Maintain_RetentionZero_KeepsEverything()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await db.CreateMigrator().MigrateAsync();
        var clock = new ManualTimeProvider(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await db.CreateMaintenance(retentionMonths: 0, monthsAhead: 0, timeProvider: clock).MaintainPartitionsAsync();

        clock.Now = Now;
        var result = await db.CreateMaintenance(retentionMonths: 0, monthsAhead: 0, timeProvider: clock).MaintainPartitionsAsync();

        Assert.Empty(result.Dropped);
        Assert.Contains("requests_p202001", await PartitionsAsync(db));
    }

    [Fact]
    public async Task Maintain_ConcurrentRuns_CreateEachPartitionOnce()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(migrate: false);
        await db.CreateMigrator().MigrateAsync();
        var clock = new ManualTimeProvider(Now);

        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
            Task.Run(() => db.CreateMaintenance(monthsAhead: 3, timeProvider: clock).MaintainPartitionsAsync())));

        var created = results.SelectMany(r => r.Created).ToArray();
        Assert.Equal(4, created.Length);
        Assert.Equal(4, created.Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [InlineData("requests", "requests_p202611", 2026, 11)]
    [InlineData("requests", "requests_default", 0, 0)]
    [InlineData("requests", "usage_events_p202611", 0, 0)]
    [InlineData("requests", "requests_p202613", 0, 0)]
    [InlineData("requests", "requests_p2026111", 0, 0)]
    public void ParseMonth_OnlyAcceptsThisPackagesNames(string table, string name, int year, int month)
    {
        var parsed = PostgresPartitionMaintenance.ParseMonth(table, name);

        if (year == 0)
        {
            Assert.Null(parsed);
        }
        else
        {
            Assert.Equal(new DateTimeOffset(year, month, 1, 0, 0, 0, TimeSpan.Zero), parsed);
            Assert.Equal(name, PostgresPartitionMaintenance.PartitionName(table, year, month));
        }
    }

    private static Task<List<string>> PartitionsAsync(PostgresTestDatabase db) => db.ColumnAsync(
        $"""
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = '{db.Schema}' AND c.relkind = 'r' ORDER BY c.relname COLLATE "C"
        """);

    private static Task<string> PartitionOfAsync(PostgresTestDatabase db, string requestId) =>
        db.ScalarAsync<string>($"SELECT c.relname::text FROM {db.Table("requests")} t JOIN pg_class c ON c.oid = t.tableoid WHERE t.request_id = '{requestId}'");
}
