using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.RateLimiting;
using CsCheck;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

public sealed class FallbackRateLimiterTests : IDisposable
{
    private const string MeterName = "Cortensor.Portal.Metering";
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    private readonly FakeTimeProvider _time = new();
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly FakeLogger<FallbackRateLimiter> _logger = new();
    private readonly RateLimitingOptions _options = new() { StoreRetryInterval = TimeSpan.FromSeconds(5), FallbackReplicas = 4 };
    private readonly FlakyRateLimiter _primary;
    private readonly FallbackRateLimiter _limiter;

    public FallbackRateLimiterTests()
    {
        _primary = new FlakyRateLimiter(new InProcessRateLimiter(_options, _time));
        _limiter = new FallbackRateLimiter(_primary, new FixedOptionsMonitor(_options), _time, MeterFactory, _logger);
    }

    private IMeterFactory MeterFactory => _services.GetRequiredService<IMeterFactory>();

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task Acquire_PrimaryHealthy_DecidedByPrimary()
    {
        var decision = await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));

        Assert.True(decision.IsAllowed);
        Assert.False(decision.Degraded);
        Assert.Same(_primary.Inner, decision.Lease?.Backend);
        Assert.Equal(1, _primary.Acquires);
        Assert.False(_limiter.IsDegraded);
    }

    [Fact]
    public async Task Acquire_PrimaryThrows_FailOpenAtQuotaOverReplicas()
    {
        _primary.Failing = true;
        var tag = NewId();
        var keyId = NewId();

        var decisions = new List<RateLimitDecision>();
        for (var i = 0; i < 6; i++)
        {
            decisions.Add(await _limiter.AcquireAsync(Rpm(tag, keyId, 20)));
        }

        Assert.True(_limiter.IsDegraded);
        Assert.Equal(5, decisions.Count(d => d.IsAllowed)); // 20 / 4 replicas
        Assert.All(decisions, d => Assert.True(d.Degraded));
        Assert.All(decisions, d => Assert.False(d.Unavailable));
        Assert.All(decisions, d => Assert.Equal(5, d.Counters[0].Rule.Quota));
        Assert.Equal("key-rpm", decisions[^1].LimitedBy?.Policy);
        Assert.Same(_limiter.Fallback, decisions[0].Lease?.Backend);
        Assert.Equal(1, _primary.Acquires); // not called again within StoreRetryInterval

        var warning = Assert.Single(_logger.Collector.GetSnapshot(), r => r.Level == LogLevel.Warning);
        Assert.Equal(2100, warning.Id.Id);
        Assert.IsType<InvalidOperationException>(warning.Exception);
    }

    [Fact]
    public async Task Acquire_DividedQuota_NeverBelowOne()
    {
        _primary.Failing = true;
        _options.FallbackReplicas = 50;
        var tag = NewId();
        var keyId = NewId();

        Assert.True((await _limiter.AcquireAsync(Rpm(tag, keyId, 20))).IsAllowed);
        var refused = await _limiter.AcquireAsync(Rpm(tag, keyId, 20));

        Assert.False(refused.IsAllowed);
        Assert.Equal(1, refused.Counters[0].Rule.Quota);
    }

    [Fact]
    public async Task Acquire_DegradedWithFailClosedClass_Unavailable()
    {
        _primary.Failing = true;
        _options.FailureModes.Tokens = RateLimitFailureMode.FailClosed;
        var tag = NewId();
        var keyId = NewId();
        var withTokens = new RateLimitRequest
        {
            RequestId = NewId(),
            HashTag = tag,
            Partitions = [new RateLimitPartition("key", keyId, [new RateLimitRule("tpm", RateLimitClass.Tokens, 1000, Minute)])],
            Tokens = 10,
        };

        var refused = await _limiter.AcquireAsync(withTokens);

        Assert.False(refused.IsAllowed);
        Assert.True(refused.Unavailable);
        Assert.Null(refused.Lease);
        Assert.Equal(TimeSpan.FromSeconds(5), refused.RetryAfter);

        // A request without a fail-closed class still fails open.
        var requestsOnly = await _limiter.AcquireAsync(Rpm(tag, keyId, 20));
        Assert.True(requestsOnly.IsAllowed);
        Assert.True(requestsOnly.Degraded);
        Assert.False(requestsOnly.Unavailable);
    }

    [Fact]
    public async Task Acquire_FailClosedWithShortRetryInterval_RetryAfterAtLeastOneSecond()
    {
        _primary.Failing = true;
        _options.StoreRetryInterval = TimeSpan.FromMilliseconds(200);
        _options.FailureModes.Requests = RateLimitFailureMode.FailClosed;

        var refused = await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));

        Assert.True(refused.Unavailable);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.RetryAfter);
    }

    [Fact]
    public async Task Acquire_AfterStoreRetryInterval_TriesPrimaryAgainAndRecovers()
    {
        _primary.Failing = true;
        await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));
        _primary.Failing = false;

        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.True((await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20))).Degraded);
        Assert.Equal(1, _primary.Acquires);

        _time.Advance(TimeSpan.FromSeconds(0.1));
        var recovered = await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));

        Assert.False(recovered.Degraded);
        Assert.False(_limiter.IsDegraded);
        Assert.Equal(2, _primary.Acquires);
        var info = Assert.Single(_logger.Collector.GetSnapshot(), r => r.Level == LogLevel.Information);
        Assert.Equal(2102, info.Id.Id);
    }

    [Fact]
    public async Task Acquire_ProbeFailsAgain_StaysDegradedWithoutAnotherWarning()
    {
        _primary.Failing = true;
        await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));
        _time.Advance(TimeSpan.FromSeconds(5));

        var decision = await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));
        await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));

        Assert.True(decision.Degraded);
        Assert.True(_limiter.IsDegraded);
        Assert.Equal(2, _primary.Acquires); // the probe, then the next interval starts
        Assert.Single(_logger.Collector.GetSnapshot(), r => r.Level == LogLevel.Warning);
    }

    [Fact]
    public async Task Acquire_CallerCancels_PropagatesWithoutDegrading()
    {
        using var cts = new CancellationTokenSource();
        _primary.OnAcquire = () =>
        {
            cts.Cancel();
            cts.Token.ThrowIfCancellationRequested();
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20), cts.Token));

        Assert.False(_limiter.IsDegraded);
    }

    [Fact]
    public async Task Acquire_PrimaryTimesOut_IsAStoreFailure()
    {
        _primary.OnAcquire = () => throw new TaskCanceledException("store timeout");

        var decision = await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));

        Assert.True(decision.Degraded);
        Assert.True(_limiter.IsDegraded);
    }

    [Fact]
    public async Task Release_GoesToTheLimiterThatAdmitted()
    {
        var tag = NewId();
        var keyId = NewId();
        RateLimitRequest Slot() => new()
        {
            RequestId = NewId(),
            HashTag = tag,
            Partitions = [new RateLimitPartition("key", keyId, [new RateLimitRule("concurrency", RateLimitClass.Concurrency, 8, TimeSpan.Zero)])],
        };

        var shared = await _limiter.AcquireAsync(Slot());
        _primary.Failing = true;
        var local = await _limiter.AcquireAsync(Slot()); // fallback cap: 8 / 4 replicas = 2, one taken by the shared lease still open
        Assert.True(local.Degraded);
        Assert.Same(_limiter.Fallback, local.Lease?.Backend);
        Assert.False((await _limiter.AcquireAsync(Slot())).IsAllowed);

        await _limiter.ReleaseAsync(local.Lease!, 0);

        Assert.Equal(0, _primary.Releases);
        Assert.True((await _limiter.AcquireAsync(Slot())).IsAllowed); // the fallback slot was freed

        await _limiter.ReleaseAsync(shared.Lease!, 0); // primary still failing: logged and swallowed

        Assert.Equal(1, _primary.Releases);
        var failed = Assert.Single(_logger.Collector.GetSnapshot(), r => r.Id.Id == 2103);
        Assert.Equal(LogLevel.Warning, failed.Level);
    }

    [Fact]
    public async Task DegradedGauge_FollowsTheStoreState()
    {
        using var gauge = new MetricCollector<int>(MeterFactory, MeterName, "cortensor.ratelimit.degraded");

        gauge.RecordObservableInstruments();
        Assert.Equal(0, gauge.LastMeasurement?.Value);

        _primary.Failing = true;
        await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));
        gauge.RecordObservableInstruments();
        Assert.Equal(1, gauge.LastMeasurement?.Value);

        _primary.Failing = false;
        _time.Advance(_options.StoreRetryInterval);
        await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 20));
        gauge.RecordObservableInstruments();
        Assert.Equal(0, gauge.LastMeasurement?.Value);
    }

    [Fact]
    public async Task Decisions_CountedByOutcomeAndBackend()
    {
        using var decisions = new MetricCollector<long>(MeterFactory, MeterName, "cortensor.ratelimit.decisions");
        var tag = NewId();
        var keyId = NewId();

        await _limiter.AcquireAsync(Rpm(tag, keyId, 1)); // shared, allowed
        await _limiter.AcquireAsync(Rpm(tag, keyId, 1)); // shared, limited
        _primary.Failing = true;
        await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 4)); // fallback, allowed
        _options.FailureModes.Requests = RateLimitFailureMode.FailClosed;
        await _limiter.AcquireAsync(Rpm(NewId(), NewId(), 4)); // fallback, unavailable

        Assert.Equal(
            ["allowed/shared", "limited/shared", "allowed/fallback", "unavailable/fallback"],
            decisions.GetMeasurementSnapshot().Select(m => $"{m.Tags["outcome"]}/{m.Tags["backend"]}"));
    }

    private static string NewId() => Guid.NewGuid().ToString("N");

    private static RateLimitRequest Rpm(string tag, string keyId, long quota) => new()
    {
        RequestId = NewId(),
        HashTag = tag,
        Partitions = [new RateLimitPartition("key", keyId, [new RateLimitRule("rpm", RateLimitClass.Requests, quota, Minute)])],
    };

    /// <summary>A shared store stand-in that can be made to fail.</summary>
    /// <summary>
    /// The contract's random scenarios through the fallback, with the store failing and recovering between steps, any
    /// number of replicas and either failure mode for tokens: remaining never exceeds the (divided) quota.
    /// </summary>
    [Fact]
    public async Task Acquire_RandomScenariosWhileStoreFlaps_RemainingNeverAboveQuota()
    {
        var cases = Gen.Select(LimitScenario.Generator, Gen.Int[1, 5], Gen.Bool);
        await cases.SampleAsync(
            async (scenario, replicas, tokensFailClosed) =>
            {
                var options = new RateLimitingOptions { StoreRetryInterval = TimeSpan.FromSeconds(1), FallbackReplicas = replicas };
                options.FailureModes.Tokens = tokensFailClosed ? RateLimitFailureMode.FailClosed : RateLimitFailureMode.FailOpen;
                var primary = new FlakyRateLimiter(new InProcessRateLimiter(options, _time)) { Failing = true };
                var limiter = new FallbackRateLimiter(primary, new FixedOptionsMonitor(options), _time, MeterFactory, _logger);
                await RateLimiterContractTests.RunScenarioAsync(limiter, scenario, wait =>
                {
                    _time.Advance(wait);
                    primary.Failing = wait.Ticks % 3 != 0; // mostly down, sometimes back
                    return Task.CompletedTask;
                });
            },
            iter: 200,
            threads: 1);
    }

    private sealed class FlakyRateLimiter(InProcessRateLimiter inner) : IRateLimiter
    {
        public InProcessRateLimiter Inner { get; } = inner;

        public bool Failing { get; set; }

        public Action? OnAcquire { get; set; }

        public int Acquires { get; private set; }

        public int Releases { get; private set; }

        public ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
        {
            Acquires++;
            OnAcquire?.Invoke();
            return Failing ? throw new InvalidOperationException("store down") : Inner.AcquireAsync(request, cancellationToken);
        }

        public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default)
        {
            Releases++;
            return Failing ? throw new InvalidOperationException("store down") : Inner.ReleaseAsync(lease, actualTokens, cancellationToken);
        }
    }
}
