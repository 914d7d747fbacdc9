using Cortensor.Portal.Metering.RateLimiting;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

/// <summary>The allocation-free walk over a request's rules that every limiter uses.</summary>
public sealed class RateLimitRuleEnumeratorTests
{
    private static readonly RateLimitRule Rps = new("rps", RateLimitClass.Requests, 10, TimeSpan.FromSeconds(1));
    private static readonly RateLimitRule Tpm = new("tpm", RateLimitClass.Tokens, 1_000, TimeSpan.FromMinutes(1));
    private static readonly RateLimitRule Concurrency = new("concurrency", RateLimitClass.Concurrency, 2, TimeSpan.Zero);

    [Fact]
    public void EnumerateRules_VisitsEveryRuleInRequestOrder_SkippingEmptyPartitions()
    {
        var key = new RateLimitPartition("key", "key_1", [Rps, Tpm]);
        var empty = new RateLimitPartition("team", "team_1", []);
        var org = new RateLimitPartition("org", "org_1", [Concurrency]);
        var request = Request(empty, key, empty, org, empty);

        var seen = new List<(RateLimitPartition, RateLimitRule)>();
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            seen.Add((partition, rule));
        }

        Assert.Equal([(key, Rps), (key, Tpm), (org, Concurrency)], seen);
        Assert.Equal(seen.Count, RateLimitConventions.CountRules(request));
    }

    [Fact]
    public void EnumerateRules_NoPartitions_VisitsNothing()
    {
        var visited = 0;
        foreach (var _ in Request().EnumerateRules())
        {
            visited++;
        }

        Assert.Equal(0, visited);
    }

    [Fact]
    public void EnumerateRules_DoesNotAllocate()
    {
        var request = Request(new RateLimitPartition("key", "key_1", [Rps, Tpm, Concurrency]), new RateLimitPartition("org", "org_1", [Rps, Tpm, Concurrency]));
        long Walk()
        {
            long quota = 0;
            foreach (var (_, rule) in request.EnumerateRules())
            {
                quota += rule.Quota;
            }

            return quota;
        }

        Walk(); // JIT first
        var before = GC.GetAllocatedBytesForCurrentThread();
        var quota = Walk();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(2 * (10 + 1_000 + 2), quota);
        Assert.Equal(0, allocated);
    }

    private static RateLimitRequest Request(params RateLimitPartition[] partitions) =>
        new() { RequestId = "req_1", HashTag = "org_1", Partitions = partitions };
}
