using Cortensor.Portal.Metering.RateLimiting;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

public sealed class RateLimitPlannerTests
{
    private static RateLimitingOptions Options() => new()
    {
        Defaults = new RateLimitTier
        {
            Key = new RateLimitLimits { RequestsPerSecond = 2, RequestsPerMinute = 60, TokensPerMinute = 10_000, ConcurrentRequests = 2 },
            Org = new RateLimitLimits { RequestsPerMinute = 120 },
        },
        Plans =
        {
            ["pro"] = new RateLimitTier
            {
                Key = new RateLimitLimits { RequestsPerMinute = 600, TokensPerMinute = 100_000 },
                Org = new RateLimitLimits { RequestsPerMinute = 3000, ConcurrentRequests = 50 },
            },
        },
    };

    private static RateLimitPlanner Planner(RateLimitingOptions options) => new(new FixedOptionsMonitor(options));

    [Fact]
    public void Plan_NoPlan_UsesDefaultsForKeyAndOrg()
    {
        var request = Planner(Options()).Plan("req-1", "org-1", "key-1", null, 250);

        Assert.NotNull(request);
        Assert.Equal("req-1", request.RequestId);
        Assert.Equal("org-1", request.HashTag);
        Assert.Equal(250, request.Tokens);
        Assert.Equal(2, request.Partitions.Count);
        var key = request.Partitions[0];
        Assert.Equal(("key", "key-1"), (key.Scope, key.Id));
        Assert.Equal(
            [
                new RateLimitRule("rps", RateLimitClass.Requests, 2, TimeSpan.FromSeconds(1)),
                new RateLimitRule("rpm", RateLimitClass.Requests, 60, TimeSpan.FromMinutes(1)),
                new RateLimitRule("tpm", RateLimitClass.Tokens, 10_000, TimeSpan.FromMinutes(1)),
                new RateLimitRule("concurrency", RateLimitClass.Concurrency, 2, TimeSpan.Zero),
            ],
            key.Rules);
        var org = request.Partitions[1];
        Assert.Equal(("org", "org-1"), (org.Scope, org.Id));
        Assert.Equal([new RateLimitRule("rpm", RateLimitClass.Requests, 120, TimeSpan.FromMinutes(1))], org.Rules);
    }

    [Fact]
    public void Plan_KnownPlan_UsesItsTier()
    {
        var request = Planner(Options()).Plan("req-1", "org-1", "key-1", "pro", 0);

        Assert.NotNull(request);
        Assert.Equal(["rpm:600", "tpm:100000"], request.Partitions[0].Rules.Select(r => $"{r.Name}:{r.Quota}"));
        Assert.Equal(["rpm:3000", "concurrency:50"], request.Partitions[1].Rules.Select(r => $"{r.Name}:{r.Quota}"));
    }

    [Fact]
    public void Plan_UnknownPlan_UsesDefaults()
    {
        var request = Planner(Options()).Plan("req-1", "org-1", "key-1", "enterprise", 0);

        Assert.Equal(4, request?.Partitions[0].Rules.Count);
    }

    [Fact]
    public void Plan_Overrides_ReplaceOnlyTheValuesTheySet()
    {
        var options = Options();
        options.Keys["key-1"] = new RateLimitLimits { RequestsPerMinute = 5, ConcurrentRequests = 9 };
        options.Orgs["org-1"] = new RateLimitLimits { TokensPerMinute = 777 };

        var request = Planner(options).Plan("req-1", "org-1", "key-1", "pro", 0);

        Assert.NotNull(request);
        Assert.Equal(["rpm:5", "tpm:100000", "concurrency:9"], request.Partitions[0].Rules.Select(r => $"{r.Name}:{r.Quota}"));
        Assert.Equal(["rpm:3000", "tpm:777", "concurrency:50"], request.Partitions[1].Rules.Select(r => $"{r.Name}:{r.Quota}"));

        var otherKey = Planner(options).Plan("req-2", "org-2", "key-2", "pro", 0);
        Assert.Equal(["rpm:600", "tpm:100000"], otherKey!.Partitions[0].Rules.Select(r => $"{r.Name}:{r.Quota}"));
        Assert.Equal(["rpm:3000", "concurrency:50"], otherKey.Partitions[1].Rules.Select(r => $"{r.Name}:{r.Quota}"));
    }

    [Fact]
    public void Plan_PartitionWithoutLimits_IsLeftOut()
    {
        var options = new RateLimitingOptions();
        options.Orgs["org-1"] = new RateLimitLimits { RequestsPerMinute = 10 };

        var request = Planner(options).Plan("req-1", "org-1", "key-1", null, 0);

        var partition = Assert.Single(request!.Partitions);
        Assert.Equal("org", partition.Scope);
    }

    [Fact]
    public void Plan_NoLimitsAtAll_ReturnsNull()
    {
        Assert.Null(Planner(new RateLimitingOptions()).Plan("req-1", "org-1", "key-1", null, 0));
    }

    [Fact]
    public void Plan_Disabled_ReturnsNull()
    {
        var options = Options();
        options.Enabled = false;

        Assert.Null(Planner(options).Plan("req-1", "org-1", "key-1", null, 0));
    }

    [Fact]
    public void Plan_OptionsChange_AppliesToTheNextCall()
    {
        var options = Options();
        var planner = Planner(options);
        Assert.NotNull(planner.Plan("req-1", "org-1", "key-1", null, 0));

        options.Enabled = false;

        Assert.Null(planner.Plan("req-2", "org-1", "key-1", null, 0));
    }

    [Fact]
    public void Plan_NegativeTokens_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Planner(Options()).Plan("req-1", "org-1", "key-1", null, -1));
    }
}
