using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.RateLimiting;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Cortensor.Portal.Redis.Tests.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.Outage;

/// <summary>
/// <see cref="FallbackRateLimiter"/> over <see cref="RedisRateLimiter"/> while the Redis server is killed, frozen and
/// restarted (a throwaway server per test).
/// </summary>
public sealed class RedisOutageTests : IDisposable
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan RetryInterval = TimeSpan.FromMilliseconds(200);

    private readonly RedisServerProcess _server = RedisServerProcess.StartNew();
    private readonly RedisTestScope _scope;
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();

    public RedisOutageTests()
    {
        _scope = new RedisTestScope(_server.ConnectionString, TimeSpan.FromMilliseconds(250));
    }

    public void Dispose()
    {
        _scope.Dispose();
        _metrics.Dispose();
        _server.Dispose();
    }

    [Fact]
    public async Task RedisKilledAndRestarted_FailOpenKeepsDeciding_ThenSharedLimitingResumes()
    {
        var options = new RateLimitingOptions { StoreRetryInterval = RetryInterval };
        var (a, redisA) = CreateReplica(options);
        var (b, _) = CreateReplica(options);
        var rule = new RateLimitRule("rpm", RateLimitClass.Requests, 10, Minute);
        var key = NewId();

        var held = await a.AcquireAsync(Request(key, rule));
        Assert.False(held.Degraded);
        var shared = await b.AcquireAsync(Request(key, rule));
        Assert.False(shared.Degraded);
        Assert.Equal(8, shared.Counters[0].Remaining); // B saw A's admission: the state is in Redis

        _server.Stop();

        var stopwatch = Stopwatch.StartNew();
        var decisions = new List<RateLimitDecision>();
        for (var i = 0; i < 20; i++)
        {
            decisions.Add(await a.AcquireAsync(Request(key, rule)));
        }

        Assert.All(decisions, d => Assert.True(d.Degraded));
        Assert.All(decisions, d => Assert.False(d.Unavailable));
        // The local fallback still enforces the quota, starting from A's last view of Redis (9 left after its own
        // admission; B's later one it never saw) rather than from a full quota.
        Assert.Equal(9, decisions.Count(d => d.IsAllowed));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"20 degraded decisions took {stopwatch.Elapsed}");
        Assert.True(a.IsDegraded);

        // Releasing a lease Redis granted does not throw while Redis is down.
        await a.ReleaseAsync(held.Lease!, 0);
        await redisA.ReleaseAsync(held.Lease!, 0);

        _server.Start();
        var restarted = Stopwatch.StartNew();
        var fresh = NewId();
        await Poll.UntilAsync(async () => !(await a.AcquireAsync(Request(fresh, rule))).Degraded, TimeSpan.FromSeconds(5), "replica A back on Redis");
        await Poll.UntilAsync(async () => !(await b.AcquireAsync(Request(NewId(), rule))).Degraded, TimeSpan.FromSeconds(5), "replica B back on Redis");
        var resumedAfter = restarted.Elapsed;

        // Shared again: B sees what A charged (on a key the fallback did not decide, which stays held to that local
        // state until Redis catches up).
        var untouched = NewId();
        var onA = await a.AcquireAsync(Request(untouched, rule));
        var onB = await b.AcquireAsync(Request(untouched, rule));
        Assert.False(onA.Degraded);
        Assert.False(onB.Degraded);
        Assert.Equal(onA.Counters[0].Remaining - 1, onB.Counters[0].Remaining);
        Assert.True(resumedAfter < TimeSpan.FromSeconds(5), $"resumed after {resumedAfter}");
    }

    [Fact]
    public async Task RedisDown_FailClosed_Unavailable()
    {
        var options = new RateLimitingOptions
        {
            StoreRetryInterval = RetryInterval,
            FailureModes = new RateLimitFailureModes { Concurrency = RateLimitFailureMode.FailClosed },
        };
        var (limiter, _) = CreateReplica(options);
        var cap = new RateLimitRule("concurrency", RateLimitClass.Concurrency, 5, TimeSpan.Zero);
        var rpm = new RateLimitRule("rpm", RateLimitClass.Requests, 10, Minute);
        Assert.True((await limiter.AcquireAsync(Request(NewId(), cap))).IsAllowed);

        _server.Stop();

        for (var i = 0; i < 3; i++)
        {
            var refused = await limiter.AcquireAsync(Request(NewId(), cap));
            Assert.False(refused.IsAllowed);
            Assert.True(refused.Unavailable);
            Assert.True(refused.RetryAfter >= TimeSpan.FromSeconds(1));
        }

        // Request-rate rules still fail open.
        var open = await limiter.AcquireAsync(Request(NewId(), rpm));
        Assert.True(open.IsAllowed);
        Assert.True(open.Degraded);
    }

    [Fact]
    public async Task RedisHung_AcquireGivesUpAfterTheOperationTimeout()
    {
        var (limiter, redis) = CreateReplica(new RateLimitingOptions { StoreRetryInterval = RetryInterval });
        var rule = new RateLimitRule("rpm", RateLimitClass.Requests, 10, Minute);
        Assert.False((await limiter.AcquireAsync(Request(NewId(), rule))).Degraded);

        _server.Pause();
        try
        {
            var stopwatch = Stopwatch.StartNew();
            await Assert.ThrowsAsync<TimeoutException>(async () => await redis.AcquireAsync(Request(NewId(), rule)));
            Assert.InRange(stopwatch.Elapsed, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(2));

            stopwatch.Restart();
            var degraded = await limiter.AcquireAsync(Request(NewId(), rule));
            Assert.True(degraded.Degraded);
            Assert.True(degraded.IsAllowed);
            Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"took {stopwatch.Elapsed}");

            stopwatch.Restart();
            var lease = new RateLimitLease(Request(NewId(), new RateLimitRule("concurrency", RateLimitClass.Concurrency, 1, TimeSpan.Zero)), redis);
            await redis.ReleaseAsync(lease, 0); // logged, not thrown
            Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"release took {stopwatch.Elapsed}");
        }
        finally
        {
            _server.Resume();
        }

        await Poll.UntilAsync(async () => !(await limiter.AcquireAsync(Request(NewId(), rule))).Degraded, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task RedisDown_AcquireFailsFast()
    {
        // A generous operation timeout: only the fail-fast backlog policy can make the call return quickly.
        using var patient = new RedisTestScope(_server.ConnectionString, TimeSpan.FromSeconds(5));
        var redis = new RedisRateLimiter(patient.Connect(), patient.OptionsWrapper, new StaticOptionsMonitor<RateLimitingOptions>(new RateLimitingOptions()), NullLogger<RedisRateLimiter>.Instance);
        var rule = new RateLimitRule("rpm", RateLimitClass.Requests, 10, Minute);
        await redis.AcquireAsync(Request(NewId(), rule));
        _server.Stop();

        // The first call may still be written to the dying socket; after that the client knows and fails at once
        // (well under the 5 s it would wait for a reply if commands were queued while disconnected).
        await Assert.ThrowsAnyAsync<Exception>(async () => await redis.AcquireAsync(Request(NewId(), rule)));
        var stopwatch = Stopwatch.StartNew();
        var failure = await Assert.ThrowsAnyAsync<Exception>(async () => await redis.AcquireAsync(Request(NewId(), rule)));

        Assert.IsType<RedisConnectionException>(failure, exactMatch: false);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(1), $"took {stopwatch.Elapsed}");
    }

    private (FallbackRateLimiter Fallback, RedisRateLimiter Redis) CreateReplica(RateLimitingOptions options)
    {
        var monitor = new StaticOptionsMonitor<RateLimitingOptions>(options);
        var redis = new RedisRateLimiter(_scope.Connect(), _scope.OptionsWrapper, monitor, NullLogger<RedisRateLimiter>.Instance);
        var fallback = new FallbackRateLimiter(redis, monitor, TimeProvider.System, _metrics.GetRequiredService<IMeterFactory>(), NullLogger<FallbackRateLimiter>.Instance);
        return (fallback, redis);
    }

    private static RateLimitRequest Request(string keyId, params RateLimitRule[] rules) => new()
    {
        RequestId = NewId(),
        HashTag = "org_" + keyId[..8],
        Partitions = [new RateLimitPartition("key", keyId, rules)],
    };

    private static string NewId() => Guid.NewGuid().ToString("N");
}
