using System.Diagnostics;
using Cortensor.Portal.Metering.Usage;
using Xunit.Abstractions;

namespace Cortensor.Portal.Storage.Tests.Postgres;

public sealed class PostgresUsageStoreTests(ITestOutputHelper output)
{
    private static readonly DateTimeOffset BaseTime = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task WriteBatch_DuplicatesWithinAndAcrossBatches_StoreEachIdOnceFirstWins()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();

        await store.WriteBatchAsync(
            [
                PostgresTestData.NewUsage("a", BaseTime, 1, 0),
                PostgresTestData.NewUsage("b", BaseTime, 10, 0),
                PostgresTestData.NewUsage("a", BaseTime.AddSeconds(5), 500, 0),
                PostgresTestData.NewUsage("c", BaseTime, 100, 0),
                PostgresTestData.NewUsage("a", BaseTime, 900, 0),
            ],
            CancellationToken.None);
        await store.WriteBatchAsync(
            [
                PostgresTestData.NewUsage("c", BaseTime, 7000, 0),
                PostgresTestData.NewUsage("d", BaseTime, 1000, 0),
                PostgresTestData.NewUsage("d", BaseTime, 9000, 0),
                PostgresTestData.NewUsage("a", BaseTime, 9000, 0),
            ],
            CancellationToken.None);

        Assert.Equal(new UsageTotals(4, 1111, 0), await store.GetTotalsAsync("org_a", BaseTime, BaseTime.AddHours(1)));
        foreach (var table in new[] { "usage_events", "request_logs" })
        {
            Assert.Equal(4, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table(table)}"));
        }

        var a = await store.FindUsageEventAsync("a");
        Assert.NotNull(a);
        Assert.Equal(BaseTime, a.OccurredAt);
        Assert.Equal(1, a.PromptTokens);
    }

    [Fact]
    public async Task WriteBatch_LogWithoutItsUsageBeforeAndAfter_EachTableIsIdempotentOnItsOwn()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();
        var record = PostgresTestData.NewUsage("r1", BaseTime);
        var otherLog = record with { Log = record.Log with { RequestId = "log-only" }, Usage = record.Usage with { RequestId = "usage-only" } };

        await store.WriteBatchAsync([record, otherLog], CancellationToken.None);
        await store.WriteBatchAsync([otherLog, record], CancellationToken.None);

        Assert.NotNull(await store.FindRequestLogAsync("log-only"));
        Assert.Null(await store.FindUsageEventAsync("log-only"));
        Assert.NotNull(await store.FindUsageEventAsync("usage-only"));
        Assert.Equal(2, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")}"));
        Assert.Equal(2, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("usage_events")}"));
    }

    [Fact]
    public async Task WriteBatch_Failure_RollsBackTheWholeBatch()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();
        var bad = PostgresTestData.NewUsage("bad", BaseTime);
        bad = bad with { Usage = bad.Usage with { Outcome = (UsageOutcome)9 } }; // violates CHECK (outcome BETWEEN 0 AND 3)

        await Assert.ThrowsAnyAsync<Exception>(() => store.WriteBatchAsync([PostgresTestData.NewUsage("good", BaseTime), bad], CancellationToken.None));

        Assert.Null(await store.FindUsageEventAsync("good"));
        Assert.Null(await store.FindRequestLogAsync("good"));
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("usage_events")}"));
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")}"));

        // The connection went back to the pool clean: the temp tables were dropped with the transaction.
        await store.WriteBatchAsync([PostgresTestData.NewUsage("good", BaseTime)], CancellationToken.None);
        Assert.NotNull(await store.FindUsageEventAsync("good"));
    }

    [Fact]
    public async Task WriteBatch_CancelledToken_Throws()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            store.WriteBatchAsync([PostgresTestData.NewUsage("r1", BaseTime)], new CancellationToken(canceled: true)));
    }

    [Fact]
    public async Task WriteBatch_BatchMixingStoredAndNewRows_WritesOnlyTheNewOnesAndKeepsTheStored()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();
        var stored = Enumerable.Range(0, 50).Select(i => PostgresTestData.NewUsage($"s{i:D3}", BaseTime.AddSeconds(i), 10, 1)).ToArray();
        await store.WriteBatchAsync(stored, CancellationToken.None); // the COPY path

        // Replays carry the same occurred_at; the numbers differ only to show which row is kept.
        var mixed = stored.Select(r => r with { Usage = r.Usage with { PromptTokens = 999 } })
            .Concat(Enumerable.Range(0, 30).Select(i => PostgresTestData.NewUsage($"n{i:D3}", BaseTime.AddSeconds(i), 1, 1)))
            .Reverse()
            .ToArray();
        await store.WriteBatchAsync(mixed, CancellationToken.None); // hits the key: the merge path
        await store.WriteBatchAsync(mixed, CancellationToken.None); // all duplicates

        Assert.Equal(new UsageTotals(80, (50 * 10) + 30, 80), await store.GetTotalsAsync("org_a", BaseTime, BaseTime.AddHours(1)));
        Assert.Equal(80, await db.ScalarAsync<int>($"SELECT count(DISTINCT request_id) FROM {db.Table("request_logs")}"));
        Assert.Equal(80, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")}"));
        Assert.Equal(10, (await store.FindUsageEventAsync("s007"))!.PromptTokens);
        Assert.NotNull(await store.FindRequestLogAsync("n029"));
    }

    [Fact]
    public async Task WriteBatch_UsageStoredButLogNot_MergePathWritesTheLog()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();
        var record = PostgresTestData.NewUsage("half", BaseTime);
        await db.ExecuteAsync(
            $"INSERT INTO {db.Table("usage_events")} (request_id, occurred_at, org_id, key_id, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream) " +
            $"VALUES ('half', '{BaseTime.UtcDateTime:O}', 'org_a', 'key_1', 0, 1, 1, false, false)");

        await store.WriteBatchAsync([record], CancellationToken.None);

        Assert.Equal(1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("usage_events")}"));
        Assert.NotNull(await store.FindRequestLogAsync("half"));
    }

    [Fact]
    public async Task WriteBatch_ConcurrentWritersOfTheSameBatches_StoreEachIdOnceWithoutDeadlock()
    {
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();
        var batches = Enumerable.Range(0, 10)
            .Select(b => Enumerable.Range(0, 500).Select(i => PostgresTestData.NewUsage($"b{b}-r{i:D4}", BaseTime.AddMilliseconds(i), 1, 1)).ToArray())
            .ToArray();

        // Four writers send the same batches, two of them in reverse record order: COPY paths collide.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            foreach (var batch in batches)
            {
                await store.WriteBatchAsync(w % 2 == 0 ? batch : batch.Reverse().ToArray(), CancellationToken.None);
            }
        })));

        Assert.Equal(5000, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("usage_events")}"));
        Assert.Equal(5000, await db.ScalarAsync<int>($"SELECT count(DISTINCT request_id) FROM {db.Table("request_logs")}"));
        Assert.Equal(5000, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")}"));
    }

    [Fact]
    public async Task WriteBatch_100000Records_AllArrive()
    {
        const int Count = 100_000;
        await using var db = await PostgresTestDatabase.CreateAsync();
        var store = db.CreateUsageStore();

        // Now, so the rows go to the current month's partition as in production.
        var start = TimeProvider.System.GetUtcNow();
        var batch = new UsageRecord[Count];
        for (var i = 0; i < Count; i++)
        {
            batch[i] = PostgresTestData.NewUsage($"req_{i:D8}", start.AddMilliseconds(i), 3, 2, keyId: "key_" + (i % 50));
        }

        // Warm up the pool and type loading so the timing shows the batch itself.
        await store.WriteBatchAsync([PostgresTestData.NewUsage("warm-up", start.AddDays(-1))], CancellationToken.None);

        var watch = Stopwatch.StartNew();
        await store.WriteBatchAsync(batch, CancellationToken.None);
        watch.Stop();
        output.WriteLine($"100,000 usage events + 100,000 request logs in {watch.Elapsed.TotalMilliseconds:F0} ms = {Count / watch.Elapsed.TotalSeconds:F0} events/s");

        Assert.Equal(new UsageTotals(Count, Count * 3L, Count * 2L), await store.GetTotalsAsync("org_a", start, start.AddDays(1)));
        Assert.Equal(Count + 1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("request_logs")}"));
        Assert.Equal(0, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("requests_default")} WHERE occurred_at >= '{start.UtcDateTime:O}'"));

        // Replaying the whole batch adds nothing.
        await store.WriteBatchAsync(batch, CancellationToken.None);
        Assert.Equal(Count + 1, await db.ScalarAsync<int>($"SELECT count(*) FROM {db.Table("usage_events")}"));
    }
}
