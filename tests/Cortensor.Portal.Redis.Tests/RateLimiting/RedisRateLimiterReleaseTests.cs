using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.RateLimiting;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.RateLimiting;

/// <summary>
/// Releases wait up to <c>ReleaseDelay</c> to ride on the next acquire of their org, or go together after it. The
/// delay runs on a fake clock here, so nothing is flushed unless a test advances it.
/// </summary>
public sealed class RedisRateLimiterReleaseTests : IDisposable
{
    private static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(5);
    // Far from its cap, so releases may wait (near the cap they go at once: see the tests at the end).
    private static readonly RateLimitRule KeyCap = new("concurrency", RateLimitClass.Concurrency, 100, TimeSpan.Zero);

    private readonly RedisServerProcess _server = RedisServerProcess.StartNew();
    private readonly RedisTestScope _scope;
    private readonly IConnectionMultiplexer _admin;
    private readonly FakeTimeProvider _time = new();

    public RedisRateLimiterReleaseTests()
    {
        _scope = new RedisTestScope(_server.ConnectionString);
        _scope.Options.ReleaseDelay = Delay;
        _admin = _scope.ConnectAdmin();
    }

    public void Dispose()
    {
        _scope.Dispose();
        _server.Dispose();
    }

    [Fact]
    public async Task A_release_rides_on_the_next_acquire_of_its_org_and_runs_before_its_decision()
    {
        var limiter = CreateLimiter();
        var tag = NewId();
        var held = await limiter.AcquireAsync(Request(tag, KeyCap));
        Assert.True(held.IsAllowed);
        var before = await CommandStats.ReadAsync(_admin);

        var release = limiter.ReleaseAsync(held.Lease!, 0).AsTask();

        // Not sent yet: the slot is still taken in Redis.
        Assert.False(release.IsCompleted);
        Assert.Equal(1, await _admin.GetDatabase().SortedSetLengthAsync(limiter.GetKey(tag, "key", "k", "concurrency")));

        // 99 left, not 98: the carried release freed the first slot before this decision counted.
        var next = await limiter.AcquireAsync(Request(tag, KeyCap));
        Assert.True(next.IsAllowed);
        Assert.Equal(99, next.Counters[0].Remaining);
        await release.WaitAsync(TimeSpan.FromSeconds(5));

        var delta = CommandStats.Delta(before, await CommandStats.ReadAsync(_admin));
        // One round trip for the release and the acquire (the release's effect is the 99 above).
        Assert.Equal(CommandStats.Expected(_server, sent: new() { ["evalsha"] = 1 }, insideScripts: new() { ["zrem"] = 1 }), CommandStats.Only(delta, "evalsha", "zrem"));
    }

    [Fact]
    public async Task A_carried_token_refund_counts_in_the_decision_it_rides_with()
    {
        var limiter = CreateLimiter();
        var tag = NewId();
        var tpm = new RateLimitRule("tpm", RateLimitClass.Tokens, 1000, TimeSpan.FromMinutes(1));
        var held = await limiter.AcquireAsync(Request(tag, tpm) with { Tokens = 1000 });
        Assert.True(held.IsAllowed);
        Assert.False((await limiter.AcquireAsync(Request(tag, tpm) with { Tokens = 1000 })).IsAllowed);

        // Charged 1,000, used 100: the 900 refunded ride on the next acquire and admit it.
        var release = limiter.ReleaseAsync(held.Lease!, 100).AsTask();
        var next = await limiter.AcquireAsync(Request(tag, tpm) with { Tokens = 900 });

        Assert.True(next.IsAllowed);
        Assert.Equal(0, next.Counters[0].Remaining);
        await release.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Releases_no_acquire_picks_up_go_together_after_the_delay_and_other_replicas_see_them()
    {
        var limiter = CreateLimiter();
        var otherReplica = CreateLimiter(_scope.Connect());
        var tag = NewId();
        var slots = limiter.GetKey(tag, "key", "k", "concurrency");
        var held = new List<RateLimitDecision>();
        for (var i = 0; i < 3; i++)
        {
            held.Add(await limiter.AcquireAsync(Request(tag, KeyCap)));
        }

        Assert.All(held, static d => Assert.True(d.IsAllowed));
        var before = await CommandStats.ReadAsync(_admin);
        var releases = held.Select(d => limiter.ReleaseAsync(d.Lease!, 0).AsTask()).ToArray();

        _time.Advance(Delay - TimeSpan.FromMilliseconds(1));
        Assert.DoesNotContain(releases, static r => r.IsCompleted);
        Assert.Equal(3, await _admin.GetDatabase().SortedSetLengthAsync(slots));

        _time.Advance(TimeSpan.FromMilliseconds(1));
        await Task.WhenAll(releases).WaitAsync(TimeSpan.FromSeconds(5));

        var delta = CommandStats.Delta(before, await CommandStats.ReadAsync(_admin));
        // One release script for all three.
        Assert.Equal(CommandStats.Expected(_server, sent: new() { ["evalsha"] = 1 }, insideScripts: new() { ["zrem"] = 3 }), CommandStats.Only(delta, "evalsha", "zrem"));
        Assert.Equal(0, await _admin.GetDatabase().SortedSetLengthAsync(slots));
        Assert.Equal(99, (await otherReplica.AcquireAsync(Request(tag, KeyCap))).Counters[0].Remaining);
    }

    [Fact]
    public async Task Another_orgs_acquire_does_not_carry_a_release()
    {
        // One script may only touch one hash tag's keys (Redis Cluster), so releases ride only with their own org.
        var limiter = CreateLimiter();
        var first = NewId();
        var second = NewId();
        var held = await limiter.AcquireAsync(Request(first, KeyCap));
        var release = limiter.ReleaseAsync(held.Lease!, 0).AsTask();

        Assert.True((await limiter.AcquireAsync(Request(second, KeyCap))).IsAllowed);

        Assert.False(release.IsCompleted);
        Assert.Equal(1, await _admin.GetDatabase().SortedSetLengthAsync(limiter.GetKey(first, "key", "k", "concurrency")));
        _time.Advance(Delay);
        await release.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, await _admin.GetDatabase().SortedSetLengthAsync(limiter.GetKey(first, "key", "k", "concurrency")));
    }

    [Fact]
    public async Task With_a_zero_delay_each_release_is_its_own_script_at_once()
    {
        _scope.Options.ReleaseDelay = TimeSpan.Zero;
        var limiter = CreateLimiter();
        var tag = NewId();
        var cap = new RateLimitRule("concurrency", RateLimitClass.Concurrency, 2, TimeSpan.Zero);
        var a = await limiter.AcquireAsync(Request(tag, cap));
        var b = await limiter.AcquireAsync(Request(tag, cap));
        var before = await CommandStats.ReadAsync(_admin);

        // The fake clock never moves: nothing waits for it.
        await limiter.ReleaseAsync(a.Lease!, 0).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        await limiter.ReleaseAsync(b.Lease!, 0).AsTask().WaitAsync(TimeSpan.FromSeconds(5));

        var delta = CommandStats.Delta(before, await CommandStats.ReadAsync(_admin));
        Assert.Equal(CommandStats.Expected(_server, sent: new() { ["evalsha"] = 2 }, insideScripts: new() { ["zrem"] = 2 }), CommandStats.Only(delta, "evalsha", "zrem"));
        Assert.Equal(0, await _admin.GetDatabase().SortedSetLengthAsync(limiter.GetKey(tag, "key", "k", "concurrency")));
    }

    [Fact]
    public async Task Disposing_sends_the_waiting_releases_and_later_ones_go_at_once()
    {
        var limiter = CreateLimiter();
        var tag = NewId();
        var first = await limiter.AcquireAsync(Request(tag, KeyCap));
        var second = await limiter.AcquireAsync(Request(tag, KeyCap));
        var waiting = limiter.ReleaseAsync(first.Lease!, 0).AsTask();
        Assert.False(waiting.IsCompleted);

        await limiter.DisposeAsync();

        Assert.True(waiting.IsCompletedSuccessfully);
        var slots = limiter.GetKey(tag, "key", "k", "concurrency");
        Assert.Equal(1, await _admin.GetDatabase().SortedSetLengthAsync(slots));

        // A request that finishes during shutdown, after the limiter was disposed, still frees its slot.
        await limiter.ReleaseAsync(second.Lease!, 0).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, await _admin.GetDatabase().SortedSetLengthAsync(slots));
    }

    [Fact]
    public async Task Carried_releases_lost_to_a_failed_acquire_complete_without_faulting()
    {
        var limiter = CreateLimiter();
        var tag = NewId();
        var held = await limiter.AcquireAsync(Request(tag, KeyCap));
        var release = limiter.ReleaseAsync(held.Lease!, 0).AsTask();

        _server.Stop();

        var failure = await Record.ExceptionAsync(async () => await limiter.AcquireAsync(Request(tag, KeyCap)));
        Assert.True(failure is RedisException or TimeoutException, failure?.ToString());
        await release.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(release.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task A_release_after_the_connection_was_disposed_completes_without_faulting()
    {
        // At shutdown the container may dispose the connection while the last requests still finish; a release is
        // never an error the request sees. Zero delay: the release's own task is the send's.
        _scope.Options.ReleaseDelay = TimeSpan.Zero;
        var connection = _scope.Connect();
        var limiter = CreateLimiter(connection);
        var held = await limiter.AcquireAsync(Request(NewId(), KeyCap));
        connection.Dispose();

        var release = limiter.ReleaseAsync(held.Lease!, 0).AsTask();
        await release.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True(release.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Near_the_cap_a_release_goes_at_once_so_another_replica_finds_the_slot_free()
    {
        // A client at its cap of 2 whose next request reaches the other replica right after one ends.
        var limiter = CreateLimiter();
        var otherReplica = CreateLimiter(_scope.Connect());
        var tag = NewId();
        var cap = new RateLimitRule("concurrency", RateLimitClass.Concurrency, 2, TimeSpan.Zero);
        var first = await limiter.AcquireAsync(Request(tag, cap));
        Assert.True((await otherReplica.AcquireAsync(Request(tag, cap))).IsAllowed);

        // The fake clock never moves: the release does not wait for it.
        await limiter.ReleaseAsync(first.Lease!, 0).AsTask().WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True((await otherReplica.AcquireAsync(Request(tag, cap))).IsAllowed);
    }

    [Fact]
    public async Task Without_a_decision_in_the_last_second_a_release_goes_at_once()
    {
        var limiter = CreateLimiter();
        var tag = NewId();
        var held = await limiter.AcquireAsync(Request(tag, KeyCap));

        // A long request: the replica's last word on the slots is too old to bet on.
        _time.Advance(TimeSpan.FromSeconds(2));
        var release = limiter.ReleaseAsync(held.Lease!, 0).AsTask();

        await release.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, await _admin.GetDatabase().SortedSetLengthAsync(limiter.GetKey(tag, "key", "k", "concurrency")));
    }

    private RedisRateLimiter CreateLimiter(IConnectionMultiplexer? connection = null)
        => new(
            connection ?? _scope.Connect(),
            _scope.OptionsWrapper,
            new StaticOptionsMonitor<RateLimitingOptions>(new RateLimitingOptions()),
            NullLogger<RedisRateLimiter>.Instance,
            _time);

    private static RateLimitRequest Request(string tag, RateLimitRule rule) => new()
    {
        RequestId = NewId(),
        HashTag = tag,
        Partitions = [new RateLimitPartition("key", "k", [rule])],
    };

    private static string NewId() => Guid.NewGuid().ToString("N");
}
