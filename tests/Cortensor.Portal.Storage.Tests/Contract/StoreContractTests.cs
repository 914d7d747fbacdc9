using System.Security.Cryptography;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>
/// The behaviour every durable store (SQLite, Postgres) must show. A concrete subclass per store supplies
/// <see cref="CreateStoreAsync"/>; every <c>[Fact]</c> here runs once per subclass. Each test gets a fresh,
/// empty, migrated database and disposes it at the end.
/// </summary>
/// <remarks>
/// Contract points a store must honour beyond the interfaces' own docs:
/// <list type="bullet">
/// <item>A duplicate key hash or key id on <see cref="IApiKeyStore.AddAsync"/> throws <see cref="InvalidOperationException"/> (or a subclass).</item>
/// <item>Timestamps come back in UTC (<see cref="DateTimeOffset.Offset"/> zero), exact to the microsecond.</item>
/// <item><c>AllowedModels</c> keeps the difference between <see langword="null"/> (all models) and empty (none).</item>
/// <item><see cref="IUsageSink.WriteBatchAsync"/> is idempotent by request id, also within one batch.</item>
/// </list>
/// </remarks>
public abstract class StoreContractTests
{
    /// <summary>A fixed instant in the middle of a month; usage tests place events around it.</summary>
    protected static readonly DateTimeOffset BaseTime = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Creates a store over a fresh, empty, migrated database.</summary>
    protected abstract Task<StoreUnderTest> CreateStoreAsync();

    // ---------------------------------------------------------------- keys

    [Fact]
    public async Task Keys_AddThenFindByHash_ReturnsAllFields()
    {
        await using var store = await CreateStoreAsync();
        var record = NewKey("org_a", "key_1") with
        {
            Name = "ci key",
            Environment = ApiKeyEnvironment.Live,
            Scopes = ["chat", "models:read"],
            AllowedModels = ["llama-3", "mistral"],
            ExpiresAt = BaseTime.AddDays(30),
        };

        await store.Keys.AddAsync(record);
        var found = await store.Keys.FindByHashAsync(record.Hash);

        Assert.NotNull(found);
        AssertSameKey(record, found);
    }

    [Fact]
    public async Task Keys_FindByHash_SliceOfLargerBuffer_Found()
    {
        await using var store = await CreateStoreAsync();
        var record = NewKey("org_a", "key_1");
        await store.Keys.AddAsync(record);

        var buffer = new byte[40];
        record.Hash.CopyTo(buffer, 5);
        var found = await store.Keys.FindByHashAsync(buffer.AsMemory(5, 32));

        Assert.NotNull(found);
        Assert.Equal("key_1", found.KeyId);
    }

    [Fact]
    public async Task Keys_FindByHash_Unknown_ReturnsNull()
    {
        await using var store = await CreateStoreAsync();
        await store.Keys.AddAsync(NewKey("org_a", "key_1"));

        Assert.Null(await store.Keys.FindByHashAsync(RandomNumberGenerator.GetBytes(32)));
    }

    [Fact]
    public async Task Keys_NullAndEmptyLists_RoundTripDistinctly()
    {
        await using var store = await CreateStoreAsync();
        var all = NewKey("org_a", "key_all") with { AllowedModels = null, Scopes = [] };
        var none = NewKey("org_a", "key_none") with { AllowedModels = [], Scopes = ["chat"] };
        await store.Keys.AddAsync(all);
        await store.Keys.AddAsync(none);

        var foundAll = await store.Keys.FindByHashAsync(all.Hash);
        var foundNone = await store.Keys.FindByHashAsync(none.Hash);

        Assert.NotNull(foundAll);
        Assert.Null(foundAll.AllowedModels);
        Assert.Empty(foundAll.Scopes);
        Assert.NotNull(foundNone);
        Assert.NotNull(foundNone.AllowedModels);
        Assert.Empty(foundNone.AllowedModels);
        Assert.Equal(["chat"], foundNone.Scopes);
    }

    [Fact]
    public async Task Keys_AddDuplicateHash_ThrowsAndKeepsFirst()
    {
        await using var store = await CreateStoreAsync();
        var first = NewKey("org_a", "key_1");
        await store.Keys.AddAsync(first);

        var sameHash = NewKey("org_b", "key_2") with { Hash = first.Hash.ToArray() };
        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Keys.AddAsync(sameHash));

        var found = await store.Keys.FindByHashAsync(first.Hash);
        Assert.NotNull(found);
        Assert.Equal("key_1", found.KeyId);
        Assert.Empty(await store.Keys.ListAsync("org_b"));
    }

    [Fact]
    public async Task Keys_AddDuplicateKeyId_Throws()
    {
        await using var store = await CreateStoreAsync();
        await store.Keys.AddAsync(NewKey("org_a", "key_1"));

        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Keys.AddAsync(NewKey("org_a", "key_1")));
        Assert.Single(await store.Keys.ListAsync("org_a"));
    }

    [Fact]
    public async Task Keys_List_OnlyThatOrg_OrderedByCreatedAtThenKeyId()
    {
        await using var store = await CreateStoreAsync();
        var t0 = BaseTime;
        await store.Keys.AddAsync(NewKey("org_a", "key_c") with { CreatedAt = t0.AddMinutes(2) });
        await store.Keys.AddAsync(NewKey("org_a", "key_b") with { CreatedAt = t0 });
        await store.Keys.AddAsync(NewKey("org_b", "key_x") with { CreatedAt = t0.AddMinutes(1) });
        await store.Keys.AddAsync(NewKey("org_a", "key_a") with { CreatedAt = t0 });
        await store.Keys.AddAsync(NewKey("org_a", "key_d") with { CreatedAt = t0.AddMinutes(1) });

        var list = await store.Keys.ListAsync("org_a");

        Assert.Equal(["key_a", "key_b", "key_d", "key_c"], list.Select(k => k.KeyId));
        Assert.All(list, k => Assert.Equal("org_a", k.OrgId));
        Assert.Empty(await store.Keys.ListAsync("org_none"));
    }

    [Fact]
    public async Task Keys_Revoke_SetsRevokedAt()
    {
        await using var store = await CreateStoreAsync();
        var record = NewKey("org_a", "key_1");
        await store.Keys.AddAsync(record);
        var revokedAt = BaseTime.AddHours(3).AddTicks(1234560);

        Assert.True(await store.Keys.RevokeAsync("org_a", "key_1", revokedAt));

        var found = await store.Keys.FindByHashAsync(record.Hash);
        Assert.NotNull(found);
        Assert.Equal(revokedAt, found.RevokedAt);
        Assert.Equal(TimeSpan.Zero, found.RevokedAt!.Value.Offset);
        var listed = Assert.Single(await store.Keys.ListAsync("org_a"));
        Assert.Equal(revokedAt, listed.RevokedAt);
    }

    [Fact]
    public async Task Keys_RevokeFromOtherOrg_ReturnsFalseAndLeavesKeyActive()
    {
        await using var store = await CreateStoreAsync();
        var record = NewKey("org_a", "key_1");
        await store.Keys.AddAsync(record);

        Assert.False(await store.Keys.RevokeAsync("org_b", "key_1", BaseTime));

        var found = await store.Keys.FindByHashAsync(record.Hash);
        Assert.NotNull(found);
        Assert.Null(found.RevokedAt);
    }

    [Fact]
    public async Task Keys_RevokeTwice_SecondReturnsFalseAndKeepsFirstTime()
    {
        await using var store = await CreateStoreAsync();
        var record = NewKey("org_a", "key_1");
        await store.Keys.AddAsync(record);

        Assert.True(await store.Keys.RevokeAsync("org_a", "key_1", BaseTime));
        Assert.False(await store.Keys.RevokeAsync("org_a", "key_1", BaseTime.AddDays(1)));

        var found = await store.Keys.FindByHashAsync(record.Hash);
        Assert.NotNull(found);
        Assert.Equal(BaseTime, found.RevokedAt);
    }

    [Fact]
    public async Task Keys_RevokeUnknown_ReturnsFalse()
    {
        await using var store = await CreateStoreAsync();

        Assert.False(await store.Keys.RevokeAsync("org_a", "key_missing", BaseTime));
    }

    // ---------------------------------------------------------------- usage

    [Fact]
    public async Task Usage_EmptyBatch_IsNoOp()
    {
        await using var store = await CreateStoreAsync();

        await store.Sink.WriteBatchAsync([], CancellationToken.None);

        Assert.Equal(new UsageTotals(0, 0, 0), await store.Reader.GetTotalsAsync("org_a", BaseTime.AddYears(-1), BaseTime.AddYears(1)));
    }

    [Fact]
    public async Task Usage_WriteBatch_TotalsPerOrg()
    {
        await using var store = await CreateStoreAsync();
        await store.Sink.WriteBatchAsync(
            [
                NewUsage("r1", "org_a", "key_1", BaseTime, 10, 5),
                NewUsage("r2", "org_a", "key_2", BaseTime.AddMinutes(1), 20, 7),
                NewUsage("r3", "org_b", "key_3", BaseTime.AddMinutes(2), 100, 50),
                NewUsage("r4", null, null, BaseTime.AddMinutes(3), 1000, 0, UsageOutcome.Rejected),
            ],
            CancellationToken.None);

        var from = BaseTime.AddHours(-1);
        var to = BaseTime.AddHours(1);
        Assert.Equal(new UsageTotals(2, 30, 12), await store.Reader.GetTotalsAsync("org_a", from, to));
        Assert.Equal(new UsageTotals(1, 100, 50), await store.Reader.GetTotalsAsync("org_b", from, to));
        Assert.Equal(new UsageTotals(0, 0, 0), await store.Reader.GetTotalsAsync("org_none", from, to));
    }

    [Fact]
    public async Task Usage_Totals_PerKey()
    {
        await using var store = await CreateStoreAsync();
        await store.Sink.WriteBatchAsync(
            [
                NewUsage("r1", "org_a", "key_1", BaseTime, 10, 5),
                NewUsage("r2", "org_a", "key_1", BaseTime.AddSeconds(1), 1, 1),
                NewUsage("r3", "org_a", "key_2", BaseTime.AddSeconds(2), 20, 7),
                NewUsage("r4", "org_b", "key_1", BaseTime.AddSeconds(3), 500, 500), // same key id, other org: not counted
            ],
            CancellationToken.None);

        var from = BaseTime.AddHours(-1);
        var to = BaseTime.AddHours(1);
        Assert.Equal(new UsageTotals(2, 11, 6), await store.Reader.GetTotalsAsync("org_a", from, to, "key_1"));
        Assert.Equal(new UsageTotals(1, 20, 7), await store.Reader.GetTotalsAsync("org_a", from, to, "key_2"));
        Assert.Equal(new UsageTotals(0, 0, 0), await store.Reader.GetTotalsAsync("org_a", from, to, "key_9"));
    }

    [Fact]
    public async Task Usage_Totals_FromInclusiveToExclusive()
    {
        await using var store = await CreateStoreAsync();
        var from = BaseTime;
        var to = BaseTime.AddHours(1);
        await store.Sink.WriteBatchAsync(
            [
                NewUsage("before", "org_a", "key_1", from.AddTicks(-10), 1, 0),  // 1 µs before from
                NewUsage("at_from", "org_a", "key_1", from, 10, 0),
                NewUsage("inside", "org_a", "key_1", from.AddMinutes(30), 100, 0),
                NewUsage("last", "org_a", "key_1", to.AddTicks(-10), 1000, 0),   // 1 µs before to
                NewUsage("at_to", "org_a", "key_1", to, 10000, 0),
            ],
            CancellationToken.None);

        Assert.Equal(new UsageTotals(3, 1110, 0), await store.Reader.GetTotalsAsync("org_a", from, to));
        Assert.Equal(new UsageTotals(3, 1110, 0), await store.Reader.GetTotalsAsync("org_a", from, to, "key_1"));
        Assert.Equal(new UsageTotals(0, 0, 0), await store.Reader.GetTotalsAsync("org_a", from, from));
    }

    [Fact]
    public async Task Usage_Totals_RangeGivenInOtherOffset_ComparesInstants()
    {
        await using var store = await CreateStoreAsync();
        await store.Sink.WriteBatchAsync([NewUsage("r1", "org_a", "key_1", BaseTime, 3, 4)], CancellationToken.None);

        var plusFive = TimeSpan.FromHours(5);
        var from = BaseTime.ToOffset(plusFive);
        var to = BaseTime.AddTicks(10).ToOffset(plusFive);

        Assert.Equal(new UsageTotals(1, 3, 4), await store.Reader.GetTotalsAsync("org_a", from, to));
    }

    [Fact]
    public async Task Usage_Totals_SpanMonthBoundary()
    {
        await using var store = await CreateStoreAsync();
        var monthEnd = new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero);
        await store.Sink.WriteBatchAsync(
            [
                NewUsage("jan", "org_a", "key_1", monthEnd.AddMinutes(-1), 1, 1),
                NewUsage("feb", "org_a", "key_1", monthEnd.AddMinutes(1), 2, 2),
                NewUsage("mar", "org_a", "key_1", monthEnd.AddMonths(1).AddMinutes(1), 4, 4),
            ],
            CancellationToken.None);

        Assert.Equal(new UsageTotals(2, 3, 3), await store.Reader.GetTotalsAsync("org_a", monthEnd.AddDays(-1), monthEnd.AddDays(1)));
        Assert.Equal(new UsageTotals(3, 7, 7), await store.Reader.GetTotalsAsync("org_a", monthEnd.AddMonths(-1), monthEnd.AddMonths(2)));
    }

    [Fact]
    public async Task Usage_AllOutcomes_CountAsRequestsWithTheirTokens()
    {
        await using var store = await CreateStoreAsync();
        await store.Sink.WriteBatchAsync(
            [
                NewUsage("ok", "org_a", "key_1", BaseTime, 10, 10, UsageOutcome.Succeeded),
                NewUsage("rej", "org_a", "key_1", BaseTime, 1, 0, UsageOutcome.Rejected),
                NewUsage("up", "org_a", "key_1", BaseTime, 2, 0, UsageOutcome.UpstreamFailed),
                NewUsage("cxl", "org_a", "key_1", BaseTime, 3, 5, UsageOutcome.Cancelled),
            ],
            CancellationToken.None);

        Assert.Equal(new UsageTotals(4, 16, 15), await store.Reader.GetTotalsAsync("org_a", BaseTime, BaseTime.AddSeconds(1)));
    }

    [Fact]
    public async Task Usage_Interrupted_IsStoredAndReadBack()
    {
        await using var store = await CreateStoreAsync();
        var start = new UsageStart
        {
            RequestId = "req_interrupted",
            StartedAt = BaseTime,
            OrgId = "org_a",
            KeyId = "key_1",
            Model = "m1",
            Pool = "p1",
            RouterId = "r1",
            EstimatedPromptTokens = 12,
            Stream = true,
            Method = "POST",
            Path = "/v1/chat/completions",
        };
        var record = InterruptedUsage.Create(start, completionTokens: 7, elapsedMs: 900);

        await store.Sink.WriteBatchAsync([record], CancellationToken.None);

        Assert.Equal(record.Usage, await store.Reader.FindUsageEventAsync("req_interrupted"));
        var log = await store.Reader.FindRequestLogAsync("req_interrupted");
        Assert.Equal(InterruptedUsage.StatusCode, log!.StatusCode);
        Assert.Equal(InterruptedUsage.ErrorCode, log.ErrorCode);
        Assert.Equal(new UsageTotals(1, 12, 7), await store.Reader.GetTotalsAsync("org_a", BaseTime, BaseTime.AddSeconds(1)));
    }

    [Fact]
    public async Task Usage_InterruptedAfterFinishedOfTheSameRequest_NeverOverwritesIt()
    {
        // A journal replayed after a crash could send an interrupted record for a request whose finished record was
        // already stored (the same request id and time): the finished one stays.
        await using var store = await CreateStoreAsync();
        var finished = NewUsage("req_1", "org_a", "key_1", BaseTime, 10, 20, UsageOutcome.Succeeded);
        var interrupted = InterruptedUsage.Create(
            new UsageStart { RequestId = "req_1", StartedAt = BaseTime, OrgId = "org_a", KeyId = "key_1", EstimatedPromptTokens = 10, Method = "POST", Path = "/v1/chat/completions" },
            completionTokens: 3,
            elapsedMs: 50);

        await store.Sink.WriteBatchAsync([finished], CancellationToken.None);
        await store.Sink.WriteBatchAsync([interrupted], CancellationToken.None);

        Assert.Equal(UsageOutcome.Succeeded, (await store.Reader.FindUsageEventAsync("req_1"))!.Outcome);
        Assert.Equal(200, (await store.Reader.FindRequestLogAsync("req_1"))!.StatusCode);
        Assert.Equal(new UsageTotals(1, 10, 20), await store.Reader.GetTotalsAsync("org_a", BaseTime, BaseTime.AddSeconds(1)));
    }

    [Fact]
    public async Task Usage_ReplaySameBatch_DoesNotDoubleCount()
    {
        await using var store = await CreateStoreAsync();
        UsageRecord[] batch =
        [
            NewUsage("r1", "org_a", "key_1", BaseTime, 10, 1),
            NewUsage("r2", "org_a", "key_1", BaseTime.AddSeconds(1), 20, 2),
            NewUsage("r3", "org_a", "key_1", BaseTime.AddSeconds(2), 30, 3),
        ];

        await store.Sink.WriteBatchAsync(batch, CancellationToken.None);
        await store.Sink.WriteBatchAsync(batch, CancellationToken.None);
        await store.Sink.WriteBatchAsync(batch, CancellationToken.None);

        Assert.Equal(new UsageTotals(3, 60, 6), await store.Reader.GetTotalsAsync("org_a", BaseTime, BaseTime.AddHours(1)));
    }

    [Fact]
    public async Task Usage_OverlappingBatch_WritesOnlyNewIds()
    {
        await using var store = await CreateStoreAsync();
        await store.Sink.WriteBatchAsync(
            [
                NewUsage("r1", "org_a", "key_1", BaseTime, 10, 1),
                NewUsage("r2", "org_a", "key_1", BaseTime, 20, 2),
            ],
            CancellationToken.None);

        // r2 again, but with different numbers: the stored r2 must stay as first written.
        await store.Sink.WriteBatchAsync(
            [
                NewUsage("r2", "org_a", "key_1", BaseTime, 999, 999),
                NewUsage("r3", "org_a", "key_1", BaseTime, 30, 3),
                NewUsage("r1", "org_a", "key_1", BaseTime, 999, 999),
                NewUsage("r4", "org_a", "key_1", BaseTime, 40, 4),
            ],
            CancellationToken.None);

        Assert.Equal(new UsageTotals(4, 100, 10), await store.Reader.GetTotalsAsync("org_a", BaseTime, BaseTime.AddHours(1)));
        var r2 = await store.Reader.FindUsageEventAsync("r2");
        Assert.NotNull(r2);
        Assert.Equal(20, r2.PromptTokens);
        var log2 = await store.Reader.FindRequestLogAsync("r2");
        Assert.NotNull(log2);
        Assert.Equal(200, log2.StatusCode);
        Assert.NotNull(await store.Reader.FindRequestLogAsync("r4"));
    }

    [Fact]
    public async Task Usage_SameIdTwiceInOneBatch_CountsOnce()
    {
        await using var store = await CreateStoreAsync();
        var record = NewUsage("r1", "org_a", "key_1", BaseTime, 10, 1);

        await store.Sink.WriteBatchAsync([record, NewUsage("r2", "org_a", "key_1", BaseTime, 5, 5), record], CancellationToken.None);

        Assert.Equal(new UsageTotals(2, 15, 6), await store.Reader.GetTotalsAsync("org_a", BaseTime, BaseTime.AddHours(1)));
    }

    [Fact]
    public async Task Usage_FindUsageEvent_RoundTripsAllFields()
    {
        await using var store = await CreateStoreAsync();
        var full = new UsageEvent
        {
            RequestId = "req_full",
            OccurredAt = BaseTime.AddTicks(1234560),
            OrgId = "org_a",
            KeyId = "key_1",
            Model = "llama-3",
            Pool = "pool-east",
            Outcome = UsageOutcome.UpstreamFailed,
            PromptTokens = 123,
            CompletionTokens = 456,
            TokensEstimated = true,
            Stream = true,
        };
        var sparse = new UsageEvent
        {
            RequestId = "req_sparse",
            OccurredAt = BaseTime,
            Outcome = UsageOutcome.Rejected,
        };

        await store.Sink.WriteBatchAsync([new UsageRecord(full, NewLog(full)), new UsageRecord(sparse, NewLog(sparse))], CancellationToken.None);

        Assert.Equal(full, await store.Reader.FindUsageEventAsync("req_full"));
        Assert.Equal(sparse, await store.Reader.FindUsageEventAsync("req_sparse"));
        Assert.Null(await store.Reader.FindUsageEventAsync("req_missing"));
    }

    [Fact]
    public async Task RequestLog_RoundTripsAllFields()
    {
        await using var store = await CreateStoreAsync();
        var usage = NewUsage("req_full", "org_a", "key_1", BaseTime, 1, 1).Usage;
        var full = new RequestLogEntry
        {
            RequestId = "req_full",
            OccurredAt = BaseTime.AddTicks(9876540),
            OrgId = "org_a",
            KeyId = "key_1",
            Method = "POST",
            Path = "/v1/chat/completions",
            Model = "llama-3",
            StatusCode = 502,
            ErrorCode = "upstream_error",
            LatencyMs = 1234,
            RouterId = "router-7",
            UpstreamStatus = 503,
        };
        var sparseUsage = new UsageEvent { RequestId = "req_sparse", OccurredAt = BaseTime, Outcome = UsageOutcome.Rejected };
        var sparse = new RequestLogEntry
        {
            RequestId = "req_sparse",
            OccurredAt = BaseTime,
            Method = "GET",
            Path = "/v1/models",
            StatusCode = 401,
            LatencyMs = 0,
        };

        await store.Sink.WriteBatchAsync([new UsageRecord(usage, full), new UsageRecord(sparseUsage, sparse)], CancellationToken.None);

        Assert.Equal(full, await store.Reader.FindRequestLogAsync("req_full"));
        Assert.Equal(sparse, await store.Reader.FindRequestLogAsync("req_sparse"));
        Assert.Null(await store.Reader.FindRequestLogAsync("req_missing"));
    }

    [Fact]
    public async Task Usage_TextOutsideAscii_RoundTripsUnchanged()
    {
        await using var store = await CreateStoreAsync();
        var usage = new UsageEvent
        {
            RequestId = "req_ünï",
            OccurredAt = BaseTime,
            OrgId = "org_é",
            KeyId = "key_日本",
            Model = "modèle-😀",
            Pool = "pool-ß",
            Outcome = UsageOutcome.Succeeded,
        };
        var log = new RequestLogEntry
        {
            RequestId = "req_ünï",
            OccurredAt = BaseTime,
            OrgId = "org_é",
            KeyId = "key_日本",
            Method = "POST",
            Path = "/v1/chat/completions/ü",
            Model = "modèle-😀",
            StatusCode = 200,
            ErrorCode = "code_ø",
            LatencyMs = 1,
            RouterId = "router-日本",
        };

        await store.Sink.WriteBatchAsync([new UsageRecord(usage, log)], CancellationToken.None);

        Assert.Equal(usage, await store.Reader.FindUsageEventAsync("req_ünï"));
        Assert.Equal(log, await store.Reader.FindRequestLogAsync("req_ünï"));
        Assert.Equal(new UsageTotals(1, 0, 0), await store.Reader.GetTotalsAsync("org_é", BaseTime, BaseTime.AddHours(1), "key_日本"));
    }

    [Fact]
    public async Task Timestamps_RoundTripToTheMicrosecondInUtc()
    {
        await using var store = await CreateStoreAsync();
        var offset = TimeSpan.FromHours(5.5);
        var created = new DateTimeOffset(2026, 1, 15, 17, 30, 1, offset).AddTicks(1234560); // .123456
        var expires = created.AddDays(90).AddTicks(10);
        var revoked = created.AddHours(1).AddTicks(999990);
        var key = NewKey("org_a", "key_1") with { CreatedAt = created, ExpiresAt = expires };
        await store.Keys.AddAsync(key);
        await store.Keys.RevokeAsync("org_a", "key_1", revoked);

        var occurred = new DateTimeOffset(2026, 1, 15, 3, 4, 5, TimeSpan.FromHours(-8)).AddTicks(7654320);
        var record = NewUsage("r1", "org_a", "key_1", occurred, 1, 1);
        await store.Sink.WriteBatchAsync([record], CancellationToken.None);

        var foundKey = await store.Keys.FindByHashAsync(key.Hash);
        Assert.NotNull(foundKey);
        AssertUtcInstant(created, foundKey.CreatedAt);
        AssertUtcInstant(expires, foundKey.ExpiresAt!.Value);
        AssertUtcInstant(revoked, foundKey.RevokedAt!.Value);
        var listed = Assert.Single(await store.Keys.ListAsync("org_a"));
        AssertUtcInstant(created, listed.CreatedAt);

        var usage = await store.Reader.FindUsageEventAsync("r1");
        Assert.NotNull(usage);
        AssertUtcInstant(occurred, usage.OccurredAt);
        var log = await store.Reader.FindRequestLogAsync("r1");
        Assert.NotNull(log);
        AssertUtcInstant(occurred, log.OccurredAt);
    }

    [Fact]
    public async Task Usage_ConcurrentWritersWithSharedDuplicates_ExactDistinctCount()
    {
        const int Writers = 8;
        const int BatchesPerWriter = 25;
        const int RecordsPerBatch = 200;
        const int SharedPerBatch = RecordsPerBatch / 10; // 10% of every batch are ids every writer also writes

        await using var store = await CreateStoreAsync();
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            await start.Task;
            for (var b = 0; b < BatchesPerWriter; b++)
            {
                var batch = new UsageRecord[RecordsPerBatch];
                for (var i = 0; i < RecordsPerBatch; i++)
                {
                    var id = i < SharedPerBatch ? $"shared-b{b}-r{i}" : $"w{w}-b{b}-r{i}";
                    var at = BaseTime.AddMilliseconds((b * RecordsPerBatch) + i);
                    batch[i] = NewUsage(id, "org_c", "key_" + (i % 4), at, 2, 3);
                }

                // Writers go through the shared ids in different orders.
                if (w % 2 == 1)
                {
                    Array.Reverse(batch);
                }

                await store.Sink.WriteBatchAsync(batch, CancellationToken.None);
            }
        })).ToArray();

        start.SetResult();
        await Task.WhenAll(writers);

        const long Distinct = (Writers * BatchesPerWriter * (RecordsPerBatch - SharedPerBatch)) + (BatchesPerWriter * SharedPerBatch);
        var totals = await store.Reader.GetTotalsAsync("org_c", BaseTime, BaseTime.AddDays(1));
        Assert.Equal(new UsageTotals(Distinct, Distinct * 2, Distinct * 3), totals);
        Assert.NotNull(await store.Reader.FindRequestLogAsync("shared-b24-r19"));
        Assert.NotNull(await store.Reader.FindRequestLogAsync("w7-b24-r199"));
    }

    // ---------------------------------------------------------------- migrations

    [Fact]
    public async Task Migration_Fresh_HasPositiveVersion()
    {
        await using var store = await CreateStoreAsync();

        Assert.True(await store.SchemaVersionAsync() >= 1);
    }

    [Fact]
    public async Task Migration_RunAgain_KeepsVersionAndData()
    {
        await using var store = await CreateStoreAsync();
        var key = NewKey("org_a", "key_1");
        await store.Keys.AddAsync(key);
        await store.Sink.WriteBatchAsync([NewUsage("r1", "org_a", "key_1", BaseTime, 7, 8)], CancellationToken.None);
        var version = await store.SchemaVersionAsync();

        await store.MigrateAgainAsync();
        await store.MigrateAgainAsync();

        Assert.Equal(version, await store.SchemaVersionAsync());
        Assert.NotNull(await store.Keys.FindByHashAsync(key.Hash));
        Assert.Equal(new UsageTotals(1, 7, 8), await store.Reader.GetTotalsAsync("org_a", BaseTime, BaseTime.AddSeconds(1)));
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>A key record with a random hash, created at <see cref="BaseTime"/>.</summary>
    protected static ApiKeyRecord NewKey(string orgId, string keyId) => new()
    {
        KeyId = keyId,
        OrgId = orgId,
        Name = "key " + keyId,
        Environment = ApiKeyEnvironment.Test,
        Hash = RandomNumberGenerator.GetBytes(32),
        DisplayPrefix = "pk_test_" + keyId,
        Scopes = ["chat"],
        AllowedModels = null,
        CreatedAt = BaseTime,
    };

    /// <summary>A succeeded usage event and its 200 log row.</summary>
    protected static UsageRecord NewUsage(
        string requestId,
        string? orgId,
        string? keyId,
        DateTimeOffset occurredAt,
        int promptTokens,
        int completionTokens,
        UsageOutcome outcome = UsageOutcome.Succeeded)
    {
        var usage = new UsageEvent
        {
            RequestId = requestId,
            OccurredAt = occurredAt,
            OrgId = orgId,
            KeyId = keyId,
            Model = "llama-3",
            Pool = "pool-a",
            Outcome = outcome,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
        };
        return new UsageRecord(usage, NewLog(usage));
    }

    protected static RequestLogEntry NewLog(UsageEvent usage)
    {
        ArgumentNullException.ThrowIfNull(usage);
        return new RequestLogEntry
        {
            RequestId = usage.RequestId,
            OccurredAt = usage.OccurredAt,
            OrgId = usage.OrgId,
            KeyId = usage.KeyId,
            Method = "POST",
            Path = "/v1/chat/completions",
            Model = usage.Model,
            StatusCode = usage.Outcome == UsageOutcome.Succeeded ? 200 : 500,
            LatencyMs = 42,
        };
    }

    protected static void AssertSameKey(ApiKeyRecord expected, ApiKeyRecord actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(expected.KeyId, actual.KeyId);
        Assert.Equal(expected.OrgId, actual.OrgId);
        Assert.Equal(expected.Name, actual.Name);
        Assert.Equal(expected.Environment, actual.Environment);
        Assert.Equal(expected.Hash, actual.Hash);
        Assert.Equal(expected.DisplayPrefix, actual.DisplayPrefix);
        Assert.Equal(expected.Scopes, actual.Scopes);
        if (expected.AllowedModels is null)
        {
            Assert.Null(actual.AllowedModels);
        }
        else
        {
            Assert.NotNull(actual.AllowedModels);
            Assert.Equal(expected.AllowedModels, actual.AllowedModels);
        }

        AssertUtcInstant(expected.CreatedAt, actual.CreatedAt);
        Assert.Equal(expected.ExpiresAt, actual.ExpiresAt);
        Assert.Equal(expected.RevokedAt, actual.RevokedAt);
    }

    protected static void AssertUtcInstant(DateTimeOffset expected, DateTimeOffset actual)
    {
        Assert.Equal(expected.UtcTicks, actual.UtcTicks);
        Assert.Equal(TimeSpan.Zero, actual.Offset);
    }
}
