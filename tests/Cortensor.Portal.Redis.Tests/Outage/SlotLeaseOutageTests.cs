using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.RateLimiting;
using Cortensor.Portal.Redis.Telemetry;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Cortensor.Portal.Redis.Tests.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.Outage;

/// <summary>
/// Concurrency slots under faults (issue 20): a Redis stall with streams open and requests arriving must not leak
/// slots, and a replica that dies without releasing must not hold its slots longer than one lease TTL. A throwaway
/// server per test, frozen with SIGSTOP and thawed with SIGCONT.
/// </summary>
public sealed class SlotLeaseOutageTests : IDisposable
{
    private const int Cap = 10;
    private static readonly RateLimitRule Concurrency = new("concurrency", RateLimitClass.Concurrency, Cap, TimeSpan.Zero);

    private readonly RedisServerProcess _server = RedisServerProcess.StartNew();
    private readonly RedisTestScope _scope;
    private readonly IConnectionMultiplexer _admin;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly List<IAsyncDisposable> _limiters = [];

    public SlotLeaseOutageTests()
    {
        _scope = new RedisTestScope(_server.ConnectionString, TimeSpan.FromMilliseconds(250));
        _admin = _scope.ConnectAdmin();
    }

    public void Dispose()
    {
        foreach (var limiter in _limiters)
        {
            limiter.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
        }

        _scope.Dispose();
        _services.Dispose();
        _server.Dispose();
    }

    [Fact]
    public async Task Redis_frozen_with_streams_open_and_requests_arriving_leaks_no_slot_and_the_key_admits_its_cap_right_after()
    {
        // The default lease TTL (30 s): within the few seconds this test allows, only releases can empty the set.
        var (limiter, redis) = CreateReplica();
        using var compensated = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), RedisMetrics.MeterName, RedisMetrics.AcquiresCompensatedName);
        var tag = NewId();
        var slots = redis.GetKey(tag, "key", "k", Concurrency.Name);

        // A replica that has run a while: Redis knows both scripts by their SHA-1 (on a fresh server the first
        // release would come back NOSCRIPT after the freeze and be sent again behind the acquires).
        var warmUp = await limiter.AcquireAsync(Request(NewId()));
        await limiter.ReleaseAsync(warmUp.Lease!, 0);

        // Ten slow streams hold the key's cap.
        var streams = new List<RateLimitDecision>();
        for (var i = 0; i < Cap; i++)
        {
            streams.Add(await limiter.AcquireAsync(Request(tag)));
        }

        Assert.All(streams, static d => Assert.True(d.IsAllowed && !d.Degraded));
        Assert.Equal(Cap, await _admin.GetDatabase().SortedSetLengthAsync(slots));

        _server.Pause();
        var during = new List<RateLimitDecision>();
        try
        {
            // The streams end while Redis is frozen: their releases time out.
            await Task.WhenAll(streams.Select(s => limiter.ReleaseAsync(s.Lease!, 0).AsTask()));

            // Ten more requests, spread over the freeze so each one probes Redis (the store retry interval is 200 ms):
            // each acquire script reaches the frozen server's socket, times out, and the fallback decides.
            for (var i = 0; i < Cap; i++)
            {
                await Task.Delay(210);
                during.Add(await limiter.AcquireAsync(Request(tag)));
            }

            Assert.All(during, static d => Assert.True(d.Degraded));
            foreach (var decision in during.Where(static d => d.IsAllowed))
            {
                await limiter.ReleaseAsync(decision.Lease!, 0);
            }
        }
        finally
        {
            _server.Resume();
        }

        Assert.True(compensated.GetMeasurementSnapshot().Sum(static m => m.Value) >= 1, "no acquire reached Redis during the freeze");

        // Redis runs what was on its socket (the releases, the abandoned acquires, their compensating releases),
        // then the retries land: within seconds no slot is left, though each lease would live 30 s.
        await Poll.UntilAsync(async () => await _admin.GetDatabase().SortedSetLengthAsync(slots) == 0, TimeSpan.FromSeconds(5), "every slot released");
        await Poll.UntilAsync(async () => await ReleasedIfSharedAsync(limiter, tag), TimeSpan.FromSeconds(5), "shared limiting back");

        // The key admits its full cap again, on Redis, and not one more.
        var wave = new List<RateLimitDecision>();
        for (var i = 0; i < Cap; i++)
        {
            wave.Add(await limiter.AcquireAsync(Request(tag)));
        }

        Assert.All(wave, static d => Assert.True(d.IsAllowed && !d.Degraded));
        var over = await limiter.AcquireAsync(Request(tag));
        Assert.False(over.IsAllowed);
        Assert.False(over.Degraded);
    }

    [Fact]
    public async Task A_crashed_replicas_slots_expire_within_the_lease_ttl_while_a_live_replicas_long_request_keeps_its_slot()
    {
        var leaseTtl = TimeSpan.FromSeconds(1);
        _scope.Options.ConcurrencyLeaseTtl = leaseTtl;
        _scope.Options.ConcurrencyLeaseRenewInterval = TimeSpan.FromMilliseconds(300);

        // The crashed replica's clock never moves: its heartbeat never fires, as if the process were gone.
        var crashed = CreateRedisLimiter(new FakeTimeProvider());
        var live = CreateRedisLimiter(TimeProvider.System);
        var tag = NewId();
        var slots = live.GetKey(tag, "key", "k", Concurrency.Name);

        var longRequest = await live.AcquireAsync(Request(tag));
        Assert.True(longRequest.IsAllowed);
        for (var i = 0; i < 4; i++)
        {
            Assert.True((await crashed.AcquireAsync(Request(tag))).IsAllowed);
        }

        Assert.Equal(5, await InFlightAsync(slots));
        Assert.Equal(1, live.LeasesInFlight);

        // Within one lease TTL (plus slack for a slow machine) the crashed replica's four slots are gone...
        await Poll.UntilAsync(async () => await InFlightAsync(slots) == 1, leaseTtl + TimeSpan.FromSeconds(2), "the crashed replica's slots expired");

        // ...while the live request, renewed by its heartbeat, keeps its slot through several TTLs.
        await Task.Delay(3 * leaseTtl);
        Assert.Equal(1, await InFlightAsync(slots));
        Assert.NotNull(await _admin.GetDatabase().SortedSetScoreAsync(slots, longRequest.Lease!.Request.RequestId));

        // The key admits its cap minus the live request.
        var admitted = 0;
        for (var i = 0; i < Cap; i++)
        {
            admitted += (await live.AcquireAsync(Request(tag))).IsAllowed ? 1 : 0;
        }

        Assert.Equal(Cap - 1, admitted);

        // Released, the live request is no longer renewed and its slot is gone.
        await live.ReleaseAsync(longRequest.Lease!, 0);
        Assert.Null(await _admin.GetDatabase().SortedSetScoreAsync(slots, longRequest.Lease!.Request.RequestId));
        Assert.Equal(Cap - 1, live.LeasesInFlight);
    }

    [Fact]
    public async Task A_running_requests_slot_that_expired_while_Redis_was_out_of_reach_is_put_back_by_the_next_renewal()
    {
        _scope.Options.ConcurrencyLeaseTtl = TimeSpan.FromSeconds(1);
        _scope.Options.ConcurrencyLeaseRenewInterval = TimeSpan.FromMilliseconds(300);
        using var lost = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), RedisMetrics.MeterName, RedisMetrics.LeasesLostName);
        var live = CreateRedisLimiter(TimeProvider.System);
        var tag = NewId();
        var slots = live.GetKey(tag, "key", "k", Concurrency.Name);
        var running = await live.AcquireAsync(Request(tag));
        Assert.True(running.IsAllowed);

        // As after an outage longer than the TTL: the slot has expired, and an admitting acquire purged it.
        Assert.True(await _admin.GetDatabase().SortedSetRemoveAsync(slots, running.Lease!.Request.RequestId));
        Assert.Equal(0, await InFlightAsync(slots));

        // The request still runs, so the next renewal puts its slot back and says so.
        await Poll.UntilAsync(async () => await InFlightAsync(slots) == 1, TimeSpan.FromSeconds(3), "the running request's slot is back");
        await Poll.UntilAsync(() => lost.GetMeasurementSnapshot().Sum(static m => m.Value) >= 1, TimeSpan.FromSeconds(2));

        // Ended, it is released and no renewal brings it back.
        await live.ReleaseAsync(running.Lease!, 0);
        await Task.Delay(TimeSpan.FromMilliseconds(700));
        Assert.Null(await _admin.GetDatabase().SortedSetScoreAsync(slots, running.Lease!.Request.RequestId));
    }

    [Fact]
    public async Task A_release_that_never_reached_Redis_is_retried_until_it_lands()
    {
        // The limiter's clock is fake: its retries run only when the test moves it, so the slot is surely back in
        // Redis before any retry can land.
        _scope.Options.ReleaseDelay = TimeSpan.Zero;
        var time = new FakeTimeProvider();
        var limiter = CreateRedisLimiter(time);
        var tag = NewId();
        var slots = limiter.GetKey(tag, "key", "k", Concurrency.Name);
        var held = await limiter.AcquireAsync(Request(tag));
        Assert.True(held.IsAllowed);

        // Redis is down when the request ends: the release fails without being sent.
        _server.Stop();
        await limiter.ReleaseAsync(held.Lease!, 0);
        Assert.Equal(1, limiter.Retries.Count);

        // Redis is back. This test server keeps nothing across a restart, so the slot is written back as a Redis
        // with persistence (or a promoted replica) would still hold it, with a far expiry.
        _server.Start();
        var farFuture = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeMilliseconds() * 1000;
        // A new connection: the old ones reconnect in their own time.
        var db = _scope.ConnectAdmin().GetDatabase();
        Assert.True(await db.SortedSetAddAsync(slots, held.Lease!.Request.RequestId, farFuture));

        // 50 ms of the limiter's time per 20 ms poll: the back-off (at most 2 s) passes many times before the lease
        // TTL (30 s) would end the retries.
        await Poll.UntilAsync(
            async () =>
            {
                time.Advance(TimeSpan.FromMilliseconds(50));
                return await db.SortedSetLengthAsync(slots) == 0;
            },
            TimeSpan.FromSeconds(10),
            "the retried release landed");
        await Poll.UntilAsync(() => limiter.Retries.Count == 0, TimeSpan.FromSeconds(2));
    }

    private async Task<bool> ReleasedIfSharedAsync(FallbackRateLimiter limiter, string tag)
    {
        var probe = await limiter.AcquireAsync(Request(tag));
        await limiter.ReleaseAsync(probe.Lease!, 0);
        return !probe.Degraded;
    }

    /// <summary>Slots of the set that have not expired, by Redis's clock.</summary>
    private async Task<long> InFlightAsync(RedisKey slots)
    {
        var db = _admin.GetDatabase();
        var time = (RedisResult[])(await db.ExecuteAsync("TIME"))!;
        var now = ((long)time[0] * 1_000_000) + (long)time[1];
        return await db.SortedSetLengthAsync(slots, now, double.PositiveInfinity, Exclude.Start);
    }

    private (FallbackRateLimiter Fallback, RedisRateLimiter Redis) CreateReplica()
    {
        var monitor = new StaticOptionsMonitor<RateLimitingOptions>(new RateLimitingOptions { StoreRetryInterval = TimeSpan.FromMilliseconds(200) });
        var redis = CreateRedisLimiter(TimeProvider.System, monitor);
        var fallback = new FallbackRateLimiter(redis, monitor, TimeProvider.System, _services.GetRequiredService<IMeterFactory>(), NullLogger<FallbackRateLimiter>.Instance);
        return (fallback, redis);
    }

    private RedisRateLimiter CreateRedisLimiter(TimeProvider time, StaticOptionsMonitor<RateLimitingOptions>? monitor = null)
    {
        var limiter = new RedisRateLimiter(
            _scope.Connect(),
            _scope.OptionsWrapper,
            monitor ?? new StaticOptionsMonitor<RateLimitingOptions>(new RateLimitingOptions()),
            NullLogger<RedisRateLimiter>.Instance,
            time,
            _services.GetRequiredService<IMeterFactory>());
        _limiters.Add(limiter);
        return limiter;
    }

    private static RateLimitRequest Request(string tag) => new()
    {
        RequestId = NewId(),
        HashTag = tag,
        Partitions = [new RateLimitPartition("key", "k", [Concurrency])],
    };

    private static string NewId() => Guid.NewGuid().ToString("N");
}
