using Cortensor.Portal.Metering.Tests.TestDoubles;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Metering.Tests.Usage;

public sealed class InMemoryUsageSinkTests
{
    [Fact]
    public async Task WriteBatchAsync_SameRequestIdTwice_StoresItOnce()
    {
        var sink = new InMemoryUsageSink();

        await sink.WriteBatchAsync([TestRecords.Create("req_1"), TestRecords.Create("req_2")], default);
        await sink.WriteBatchAsync([TestRecords.Create("req_2"), TestRecords.Create("req_3")], default);

        Assert.Equal(3, sink.Count);
        Assert.Equal(4, sink.ReceivedCount);
        Assert.Equal(1, sink.DuplicateCount);
        Assert.Equal(2, sink.BatchCount);
        Assert.True(sink.Contains("req_2"));
    }

    [Fact]
    public async Task WriteBatchAsync_ConcurrentWriters_KeepsEveryDistinctId()
    {
        var sink = new InMemoryUsageSink();

        await Parallel.ForAsync(0, 1_000, async (i, ct) =>
            await sink.WriteBatchAsync([TestRecords.Create(TestRecords.Id(i)), TestRecords.Create(TestRecords.Id(i % 10))], ct));

        Assert.Equal(1_000, sink.Count);
        Assert.Equal(2_000, sink.ReceivedCount);
    }

    [Fact]
    public async Task GetTotalsAsync_RangeAndKey_CountsOnlyMatchingEvents()
    {
        var sink = new InMemoryUsageSink();
        var other = TestRecords.Create("req_other");
        other = other with { Usage = other.Usage with { KeyId = "key_2" } };
        var late = TestRecords.Create("req_late");
        late = late with { Usage = late.Usage with { OccurredAt = TestRecords.At.AddHours(1) } };
        await sink.WriteBatchAsync([TestRecords.Create("req_1"), other, late], default);

        var all = await sink.GetTotalsAsync("org_1", TestRecords.At, TestRecords.At.AddMinutes(1));
        var key1 = await sink.GetTotalsAsync("org_1", TestRecords.At, TestRecords.At.AddMinutes(1), "key_1");

        Assert.Equal(new UsageTotals(2, 20, 10), all);
        Assert.Equal(new UsageTotals(1, 10, 5), key1);
        Assert.Equal("key_2", (await sink.FindUsageEventAsync("req_other"))?.KeyId);
        Assert.Equal(200, (await sink.FindRequestLogAsync("req_1"))?.StatusCode);
        Assert.Null(await sink.FindUsageEventAsync("req_missing"));
    }
}
