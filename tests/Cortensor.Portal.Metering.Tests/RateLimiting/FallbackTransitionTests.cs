using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

/// <summary>
/// <see cref="FallbackRateLimiter"/> at the fail-open transitions (issue 20, item 4): the fallback starts from the
/// shared limiter's last known state, and recovery grants no fresh burst.
/// </summary>
public sealed class FallbackTransitionTests : IDisposable
{
    private const string MeterName = "Cortensor.Portal.Metering";
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    private readonly FakeTimeProvider _time = new();
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly FakeLogger<FallbackRateLimiter> _logger = new();
    private readonly RateLimitingOptions _options = new() { StoreRetryInterval = TimeSpan.FromMilliseconds(200) };
    private readonly SwitchableStore _primary;
    private readonly FallbackRateLimiter _limiter;

    public FallbackTransitionTests()
    {
        _primary = new SwitchableStore(_options, _time);
        _limiter = new FallbackRateLimiter(_primary, new FixedOptionsMonitor(_options), _time, MeterFactory, _logger);
    }

    private IMeterFactory MeterFactory => _services.GetRequiredService<IMeterFactory>();

    public void Dispose() => _services.Dispose();

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task Failover_SharedRuleDrained_FallbackStartsDrained(int replicas)
    {
        _options.FallbackReplicas = replicas;
        var key = NewId();
        for (var i = 0; i < 100; i++)
        {
            Assert.True((await _limiter.AcquireAsync(Rps(key, 100))).IsAllowed);
        }

        _primary.Failing = true;

        // A fresh fallback would admit 100 / replicas at once.
        Assert.Equal(0, await CountAdmittedAsync(key, 100, 50));

        // Then quota / replicas per second: 20 / replicas in 200 ms.
        _time.Advance(TimeSpan.FromMilliseconds(200));
        Assert.Equal(20 / replicas, await CountAdmittedAsync(key, 100, 50));
        Assert.True(_limiter.IsDegraded);
    }

    [Fact]
    public async Task Failover_SharedRuleHalfUsed_FallbackHasHalfLeft()
    {
        _options.FallbackReplicas = 2;
        var key = NewId();
        for (var i = 0; i < 50; i++)
        {
            await _limiter.AcquireAsync(Rps(key, 100));
        }

        _primary.Failing = true;

        Assert.Equal(25, await CountAdmittedAsync(key, 100, 100)); // half of 100 / 2
    }

    /// <summary>
    /// 100 req/s driven at 200 req/s for 9 s of fake time, the store failing from 3 s to 6 s. A correct limiter
    /// admits the one initial burst plus 100 per second of the run: 100 + 100 × elapsed. Without the carry-over each
    /// transition adds about another 100.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task PacedRun_StoreFailsAndRecovers_AdmitsLimitTimesDurationPlusOneBurst(bool storeLosesItsState)
    {
        var key = NewId();
        var step = TimeSpan.FromMilliseconds(5);
        var admitted = 0;
        var start = _time.GetUtcNow();
        var last = start;
        for (var i = 0; i < 1800; i++)
        {
            var at = start + (step * i);
            _time.Advance(at - _time.GetUtcNow());
            last = at;
            if (at - start == TimeSpan.FromSeconds(3))
            {
                _primary.Failing = true;
            }
            else if (at - start == TimeSpan.FromSeconds(6))
            {
                _primary.Failing = false;
                if (storeLosesItsState)
                {
                    _primary.Restart(); // a Redis restarted without persistence
                }
            }

            admitted += (await _limiter.AcquireAsync(Rps(key, 100))).IsAllowed ? 1 : 0;
        }

        var expected = 100 + (100 * (last - start).TotalSeconds);
        Assert.InRange(admitted, expected - 3, expected + 3);
        Assert.False(_limiter.IsDegraded);
        Assert.Equal(0, _limiter.CarryOver.Recovering);
        Assert.Contains(_logger.Collector.GetSnapshot(), r => r.Id.Id == 2104);
    }

    [Fact]
    public async Task Recovery_StoreRestartedEmpty_NoFreshBurst()
    {
        var key = NewId();
        _primary.Failing = true;
        Assert.Equal(100, await CountAdmittedAsync(key, 100, 150)); // the one burst, decided by the fallback

        _time.Advance(_options.StoreRetryInterval);
        _primary.Failing = false;
        _primary.Restart();

        // The store has a full bucket again; the fallback's state says 20 came back in 200 ms.
        Assert.Equal(20, await CountAdmittedAsync(key, 100, 150));
        Assert.False(_limiter.IsDegraded);
    }

    [Fact]
    public async Task Failover_OpenSharedLeasesCountAgainstTheFallbackCap()
    {
        var key = NewId();
        var shared = new List<RateLimitLease>();
        for (var i = 0; i < 3; i++)
        {
            shared.Add((await _limiter.AcquireAsync(Slot(key, 4))).Lease!);
        }

        _primary.Failing = true;

        Assert.True((await _limiter.AcquireAsync(Slot(key, 4))).IsAllowed);
        Assert.False((await _limiter.AcquireAsync(Slot(key, 4))).IsAllowed); // 3 shared + 1 local = the cap

        await _limiter.ReleaseAsync(shared[0], 0); // the store is down, but the request has ended here

        Assert.True((await _limiter.AcquireAsync(Slot(key, 4))).IsAllowed);
    }

    [Fact]
    public async Task Recovery_FallbackLeasesStillOpen_CountAgainstTheSharedCap()
    {
        var key = NewId();
        using var recovering = new MetricCollector<int>(MeterFactory, MeterName, "cortensor.ratelimit.recovering");
        _primary.Failing = true;
        var local = new[] { await _limiter.AcquireAsync(Slot(key, 2)), await _limiter.AcquireAsync(Slot(key, 2)) };
        Assert.All(local, d => Assert.True(d.IsAllowed && d.Degraded));

        _time.Advance(_options.StoreRetryInterval);
        _primary.Failing = false;

        var refused = await _limiter.AcquireAsync(Slot(key, 2)); // the store has room, this replica does not
        Assert.False(refused.IsAllowed);
        Assert.False(refused.Degraded);
        Assert.Equal("key-concurrency", refused.LimitedBy?.Policy);
        Assert.False(_limiter.IsDegraded);
        Assert.Equal(0, _primary.HeldSlots(key)); // the store's slot was given back
        recovering.RecordObservableInstruments();
        Assert.Equal(1, recovering.LastMeasurement?.Value);

        await _limiter.ReleaseAsync(local[0].Lease!, 0);
        var one = await _limiter.AcquireAsync(Slot(key, 2));
        Assert.True(one.IsAllowed);
        Assert.False((await _limiter.AcquireAsync(Slot(key, 2))).IsAllowed);

        await _limiter.ReleaseAsync(local[1].Lease!, 0);
        Assert.True((await _limiter.AcquireAsync(Slot(key, 2))).IsAllowed);
        recovering.RecordObservableInstruments();
        Assert.Equal(0, recovering.LastMeasurement?.Value);
        Assert.Contains(_logger.Collector.GetSnapshot(), r => r.Id.Id == 2104);
    }

    [Fact]
    public async Task Recovery_KeyIdleUntilItsLocalStateIsFull_SweepEndsTheRecovery()
    {
        var key = NewId();
        _primary.Failing = true;
        await CountAdmittedAsync(key, 100, 10);
        _time.Advance(_options.StoreRetryInterval);
        _primary.Failing = false;
        await _limiter.AcquireAsync(Rps(NewId(), 100));
        Assert.Equal(1, _limiter.CarryOver.Recovering);

        _time.Advance(TimeSpan.FromSeconds(11));
        await _limiter.AcquireAsync(Rps(NewId(), 100)); // any shared decision runs the sweep when due

        Assert.Equal(0, _limiter.CarryOver.Recovering);
    }

    /// <summary>
    /// Two replicas configured, one serving the key at 80 req/s (under the 100 limit, over its fallback share of 50):
    /// the recovery ends once the store was charged one window's worth of requests the local state refused.
    /// </summary>
    [Fact]
    public async Task Recovery_LocalShareBelowTraffic_EndsAfterOneWindowOfRefusals()
    {
        _options.FallbackReplicas = 2;
        var key = NewId();
        _primary.Failing = true;
        await CountAdmittedAsync(key, 100, 60);
        _time.Advance(_options.StoreRetryInterval);
        _primary.Failing = false;

        var admitted = new List<int>();
        for (var second = 0; second < 6; second++)
        {
            var count = 0;
            for (var i = 0; i < 80; i++)
            {
                _time.Advance(Second / 80);
                count += (await _limiter.AcquireAsync(Rps(key, 100))).IsAllowed ? 1 : 0;
            }

            admitted.Add(count);
        }

        Assert.InRange(admitted[0], 55, 62); // held to the fallback's share at first: 10 left from the outage + 50
        Assert.Equal(80, admitted[^1]); // then shared alone
        Assert.Equal(0, _limiter.CarryOver.Recovering);
    }

    [Fact]
    public void CarryOver_AtCapacity_RemembersNoMoreRulesUntilTheyCarryNothing()
    {
        var carryOver = new FallbackCarryOver(new InProcessRateLimiter(_options, _time), _time, capacity: 10, caughtUp: () => { });
        var store = new InProcessRateLimiter(_options, _time);
        for (var i = 0; i < 25; i++)
        {
            var request = Rps(NewId(), 100);
            carryOver.ObserveShared(request, store.Acquire(request));
        }

        Assert.Equal(10, carryOver.Count);

        _time.Advance(Second); // every remembered rule is full again: nothing to carry
        var next = Rps(NewId(), 100);
        carryOver.ObserveShared(next, store.Acquire(next));

        Assert.Equal(1, carryOver.Count);
    }

    [Fact]
    public async Task EphemeralRequests_LeaveNothingInTheCarryOver_SoAFloodOfAddressesCannotEvictKeys()
    {
        var customer = NewId();
        await _limiter.AcquireAsync(Rps(customer, 10));
        Assert.Equal(1, _limiter.CarryOver.Count);

        // One partition per client address, as failed authentications are counted.
        for (var i = 0; i < 100; i++)
        {
            var lease = (await _limiter.AcquireAsync(Rps(NewId(), 10) with { Ephemeral = true })).Lease;
            await _limiter.ReleaseAsync(lease!, 0);
        }

        Assert.Equal(1, _limiter.CarryOver.Count);
    }

    private async Task<int> CountAdmittedAsync(string key, long quota, int requests)
    {
        var admitted = 0;
        for (var i = 0; i < requests; i++)
        {
            admitted += (await _limiter.AcquireAsync(Rps(key, quota))).IsAllowed ? 1 : 0;
        }

        return admitted;
    }

    private static string NewId() => Guid.NewGuid().ToString("N");

    private static RateLimitRequest Rps(string keyId, long quota) => new()
    {
        RequestId = NewId(),
        HashTag = "org_" + keyId[..8],
        Partitions = [new RateLimitPartition("key", keyId, [new RateLimitRule("rps", RateLimitClass.Requests, quota, Second)])],
    };

    private static RateLimitRequest Slot(string keyId, long cap) => new()
    {
        RequestId = NewId(),
        HashTag = "org_" + keyId[..8],
        Partitions = [new RateLimitPartition("key", keyId, [new RateLimitRule("concurrency", RateLimitClass.Concurrency, cap, TimeSpan.Zero)])],
    };

    /// <summary>A shared store stand-in that fails on demand, keeping its state (a paused Redis) or losing it (<see cref="Restart"/>).</summary>
    private sealed class SwitchableStore(RateLimitingOptions options, TimeProvider time) : IRateLimiter
    {
        private InProcessRateLimiter _inner = new(options, time);

        public bool Failing { get; set; }

        public void Restart() => _inner = new InProcessRateLimiter(options, time);

        public int HeldSlots(string keyId) => _inner.HeldSlots("org_" + keyId[..8], "key", keyId);

        public ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default) =>
            Failing ? throw new InvalidOperationException("store down") : _inner.AcquireAsync(request, cancellationToken);

        public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default) =>
            Failing ? throw new InvalidOperationException("store down") : _inner.ReleaseAsync(lease, actualTokens, cancellationToken);
    }
}
