using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

public sealed class RateLimitingOptionsTests
{
    [Fact]
    public void Defaults_AreValid()
    {
        var options = new RateLimitingOptions();

        Assert.True(options.Enabled);
        Assert.Equal(1, options.FallbackReplicas);
        Assert.Equal(TimeSpan.FromMinutes(10), options.ConcurrencySlotTtl);
        Assert.Equal(TimeSpan.FromSeconds(1), options.StoreRetryInterval);
        Assert.True(new RateLimitingOptionsValidator().Validate(null, options).Succeeded);
    }

    [Fact]
    public void Validate_BadValues_NameEachOne()
    {
        var options = new RateLimitingOptions
        {
            FallbackReplicas = 0,
            ConcurrencySlotTtl = TimeSpan.Zero,
            StoreRetryInterval = TimeSpan.FromSeconds(-1),
        };
        options.Defaults.Key.RequestsPerMinute = 0;
        options.Plans["pro"] = new RateLimitTier { Org = new RateLimitLimits { TokensPerMinute = -5 } };
        options.Keys["key-1"] = new RateLimitLimits { ConcurrentRequests = 0 };
        options.Orgs["org-1"] = new RateLimitLimits { RequestsPerSecond = 0 };
        options.FailureModes.Tokens = (RateLimitFailureMode)7;

        var result = new RateLimitingOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        foreach (var name in new[]
        {
            "FallbackReplicas", "ConcurrencySlotTtl", "StoreRetryInterval", "Defaults.Key.RequestsPerMinute",
            "Plans[pro].Org.TokensPerMinute", "Keys[key-1].ConcurrentRequests", "Orgs[org-1].RequestsPerSecond",
            "FailureModes.Tokens",
        })
        {
            Assert.Contains(name, result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(1_000_000, 60_000_000, 60_000_000, true)] // one unit per microsecond: the most GCRA can count
    [InlineData(1_000_001, 60_000_000, 60_000_000, false)]
    [InlineData(1_000_000, 60_000_001, 60_000_000, false)]
    [InlineData(1_000_000, 60_000_000, 1_000_000_000, false)]
    public void Validate_LimitsAboveOneUnitPerMicrosecond_AreRefused(int perSecond, int perMinute, int tokensPerMinute, bool valid)
    {
        var options = new RateLimitingOptions();
        options.Plans["big"] = new RateLimitTier { Key = new RateLimitLimits { RequestsPerSecond = perSecond, RequestsPerMinute = perMinute, TokensPerMinute = tokensPerMinute } };

        var result = new RateLimitingOptionsValidator().Validate(null, options);

        Assert.Equal(valid, result.Succeeded);
        if (!valid)
        {
            Assert.Contains("Plans[big].Key.", result.FailureMessage, StringComparison.Ordinal);
            Assert.Contains("one unit per microsecond", result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AddCortensorRateLimiting_InvalidOptions_HostStartFails()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCortensorRateLimiting(o => o.FallbackReplicas = 0);
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(nameof(RateLimitingOptions.FallbackReplicas), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddCortensorRateLimiting_CalledTwice_RegistersOnce()
    {
        var once = new ServiceCollection();
        once.AddCortensorRateLimiting();
        var twice = new ServiceCollection();
        twice.AddCortensorRateLimiting();
        var builder = twice.AddCortensorRateLimiting(o => o.Defaults.Key.RequestsPerMinute = 5);

        Assert.Same(twice, builder.Services);
        Assert.Equal(once.Count + 1, twice.Count); // + the second call's Configure
        Assert.Single(twice, d => d.ServiceType == typeof(IRateLimiter));
        Assert.Single(twice, d => d.ServiceType == typeof(InProcessRateLimiter));
        Assert.Single(twice, d => d.ServiceType == typeof(RateLimitPlanner));
        Assert.Single(twice, d => d.ServiceType == typeof(IValidateOptions<RateLimitingOptions>));

        using var provider = twice.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        Assert.Same(provider.GetRequiredService<InProcessRateLimiter>(), provider.GetRequiredService<IRateLimiter>());
        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
        Assert.NotNull(provider.GetRequiredService<RateLimitPlanner>().Plan("r", "o", "k", null, 0));
    }

    [Fact]
    public void AddCortensorRateLimiting_WithMetering_SharesTimeProviderAndMetrics()
    {
        var time = new FakeTimeProvider();
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(time);
        services.AddCortensorMetering();
        services.AddCortensorRateLimiting();

        Assert.Single(services, d => d.ServiceType == typeof(TimeProvider));
        using var provider = services.BuildServiceProvider();
        Assert.NotNull(provider.GetRequiredService<IRateLimiter>());
    }

    [Fact]
    public async Task UseSharedStore_ReplacesTheLimiterWithFallbackOverThePrimary()
    {
        var services = new ServiceCollection();
        services.AddCortensorRateLimiting()
            .UseSharedStore(sp => new InProcessRateLimiter(new RateLimitingOptions(), sp.GetRequiredService<TimeProvider>()));

        Assert.Single(services, d => d.ServiceType == typeof(IRateLimiter));
        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
        var limiter = Assert.IsType<FallbackRateLimiter>(provider.GetRequiredService<IRateLimiter>());
        Assert.Same(limiter, provider.GetRequiredService<FallbackRateLimiter>());

        var request = new RateLimitRequest
        {
            RequestId = "r",
            HashTag = "o",
            Partitions = [new RateLimitPartition("key", "k", [new RateLimitRule("rpm", RateLimitClass.Requests, 1, TimeSpan.FromMinutes(1))])],
        };
        var decision = await limiter.AcquireAsync(request);
        Assert.True(decision.IsAllowed);
        Assert.False(decision.Degraded);
    }
}
