using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

/// <summary>The contract suite on a fake clock (exact values), plus what only the in-process limiter promises.</summary>
public sealed class InProcessRateLimiterTests : RateLimiterContractTests
{
    private readonly FakeTimeProvider _time = new();

    protected override bool UsesRealClock => false;

    protected override IRateLimiter CreateLimiter(RateLimitingOptions options) => new InProcessRateLimiter(options, _time);

    protected override Task WaitAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Acquire_EveryAdmission_ChargesOneEmissionInterval()
    {
        var limiter = new InProcessRateLimiter(new RateLimitingOptions(), _time);
        var tag = NewId();
        var keyId = NewId();
        var rule = Rule("rpm", RateLimitClass.Requests, 20, TimeSpan.FromMinutes(1));

        for (var i = 1; i <= 20; i++)
        {
            var decision = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
            Assert.Equal(20 - i, decision.Counters[0].Remaining);
            Assert.Equal(TimeSpan.FromSeconds(3 * i), decision.Counters[0].Reset);
        }

        _time.Advance(TimeSpan.FromSeconds(2.999999));
        Assert.False((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)))).IsAllowed);
        _time.Advance(TimeSpan.FromTicks(10)); // 1 µs: exactly one T after the burst
        Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)))).IsAllowed);
    }

    [Fact]
    public async Task Acquire_StateBackToFullQuota_IsDroppedBySweep()
    {
        var limiter = new InProcessRateLimiter(new RateLimitingOptions { ConcurrencySlotTtl = TimeSpan.FromSeconds(30) }, _time);
        for (var i = 0; i < 50; i++)
        {
            await limiter.AcquireAsync(Request(NewId(), 10, Key(NewId(),
                Rule("rph", RateLimitClass.Requests, 1, TimeSpan.FromHours(1)),
                Rule("tpm", RateLimitClass.Tokens, 1000, TimeSpan.FromMinutes(1)),
                Rule("concurrency", RateLimitClass.Concurrency, 2, TimeSpan.Zero))));
        }

        Assert.Equal(150, limiter.TrackedEntries);

        _time.Advance(TimeSpan.FromSeconds(31)); // slots expired and tpm back to full; rph not yet
        await limiter.AcquireAsync(Request(NewId(), 0, Key(NewId(), Rule("rps", RateLimitClass.Requests, 1, TimeSpan.FromSeconds(1)))));
        Assert.Equal(51, limiter.TrackedEntries);

        _time.Advance(TimeSpan.FromHours(1)); // everything back to its full quota
        await limiter.AcquireAsync(Request(NewId(), 0, Key(NewId(), Rule("concurrency", RateLimitClass.Concurrency, 1, TimeSpan.Zero))));
        Assert.Equal(1, limiter.TrackedEntries);
    }

    [Fact]
    public async Task Release_TokensSettledToNow_DropsTheState()
    {
        var limiter = new InProcessRateLimiter(new RateLimitingOptions(), _time);
        var tag = NewId();
        var admitted = await limiter.AcquireAsync(Request(tag, 100, Key(NewId(), Rule("tpm", RateLimitClass.Tokens, 1000, TimeSpan.FromMinutes(1)))));
        Assert.Equal(1, limiter.TrackedEntries);

        await limiter.ReleaseAsync(admitted.Lease!, 0);

        Assert.Equal(0, limiter.TrackedEntries);
    }

    [Fact]
    public async Task Acquire_Lease_NamesThisLimiterAsBackend()
    {
        var limiter = new InProcessRateLimiter(new RateLimitingOptions(), _time);
        var request = Request(NewId(), 0, Key(NewId(), Rule("rpm", RateLimitClass.Requests, 1, TimeSpan.FromMinutes(1))));

        var decision = await limiter.AcquireAsync(request);

        Assert.Same(limiter, decision.Lease?.Backend);
        Assert.Same(request, decision.Lease?.Request);
    }

    [Fact]
    public async Task Acquire_NoPartitions_AllowedWithoutCounters()
    {
        var limiter = new InProcessRateLimiter(new RateLimitingOptions(), _time);

        var decision = await limiter.AcquireAsync(Request(NewId(), 0));

        Assert.True(decision.IsAllowed);
        Assert.Empty(decision.Counters);
        Assert.NotNull(decision.Lease);
    }

    [Fact]
    public async Task Acquire_InvalidRequest_Throws()
    {
        var limiter = new InProcessRateLimiter(new RateLimitingOptions(), _time);

        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await limiter.AcquireAsync(Request(NewId(), -1, Key(NewId(), Rule("rpm", RateLimitClass.Requests, 1, TimeSpan.FromMinutes(1))))));
        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await limiter.AcquireAsync(Request(NewId(), 0, Key(NewId(), Rule("rpm", RateLimitClass.Requests, 0, TimeSpan.FromMinutes(1))))));
        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await limiter.AcquireAsync(Request(NewId(), 0, Key(NewId(), Rule("rpm", RateLimitClass.Requests, 1, TimeSpan.Zero)))));
        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await limiter.AcquireAsync(Request("", 0, Key(NewId(), Rule("rpm", RateLimitClass.Requests, 1, TimeSpan.FromMinutes(1))))));
    }

    [Fact]
    public async Task Acquire_WithMeterFactory_CountsLocalDecisions()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meterFactory = services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var decisions = new MetricCollector<long>(meterFactory, "Cortensor.Portal.Metering", "cortensor.ratelimit.decisions");
        var limiter = new InProcessRateLimiter(new FixedOptionsMonitor(new RateLimitingOptions()), _time, meterFactory);
        var tag = NewId();
        var keyId = NewId();
        var rule = Rule("rpm", RateLimitClass.Requests, 1, TimeSpan.FromMinutes(1));

        await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
        await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));

        var measurements = decisions.GetMeasurementSnapshot();
        Assert.Equal(2, measurements.Count);
        Assert.Equal("allowed", measurements[0].Tags["outcome"]);
        Assert.Equal("limited", measurements[1].Tags["outcome"]);
        Assert.All(measurements, m => Assert.Equal("local", m.Tags["backend"]));
    }
}
