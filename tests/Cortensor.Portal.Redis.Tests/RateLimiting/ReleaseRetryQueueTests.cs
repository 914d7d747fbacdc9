using System.Threading.Channels;
using Cortensor.Portal.Redis.RateLimiting;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.RateLimiting;

/// <summary>
/// The retry loop of failed releases, without Redis: a fake sender that fails as told, a fake clock for the give-up
/// bound, and each wait between rounds handed to the test, which checks it and lets the round run.
/// </summary>
public sealed class ReleaseRetryQueueTests
{
    private static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider _time = new();
    private readonly Channel<(TimeSpan Wait, TaskCompletionSource Go)> _waits = Channel.CreateUnbounded<(TimeSpan, TaskCompletionSource)>();
    private readonly List<(string HashTag, int Operations)> _sends = [];
    private readonly List<RetriedRelease> _landed = [];
    private readonly List<RetriedRelease> _gaveUp = [];
    private int _resent;
    private int _failuresLeft = int.MaxValue;

    [Fact]
    public void DelayBefore_DoublesFrom100msAndStaysAt2s()
    {
        var delays = Enumerable.Range(1, 8).Select(ReleaseRetryPolicy.DelayBefore).Select(static d => (int)d.TotalMilliseconds);

        Assert.Equal([100, 200, 400, 800, 1600, 2000, 2000, 2000], delays);
        Assert.Equal(TimeSpan.FromSeconds(2), ReleaseRetryPolicy.DelayBefore(int.MaxValue));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReleaseRetryPolicy.DelayBefore(0));
    }

    [Fact]
    public void IsGivenUp_FromOneLeaseTtlAfterTheFirstFailure()
    {
        var failedAt = _time.GetTimestamp();
        _time.Advance(LeaseTtl - TimeSpan.FromMilliseconds(1));
        Assert.False(ReleaseRetryPolicy.IsGivenUp(failedAt, _time.GetTimestamp(), LeaseTtl, _time));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(ReleaseRetryPolicy.IsGivenUp(failedAt, _time.GetTimestamp(), LeaseTtl, _time));
    }

    [Fact]
    public async Task A_release_that_never_lands_is_retried_with_back_off_then_given_up_once_after_the_lease_ttl()
    {
        var queue = CreateQueue();
        Assert.True(queue.Add(Release("org", "r1")));

        // Sends at 0.1, 0.3, 0.7, 1.5 and 3.1 s; at 5.1 s the lease (5 s) has run out, so nothing more is sent.
        foreach (var expected in new[] { 100, 200, 400, 800, 1600, 2000 })
        {
            await NextRoundAsync(TimeSpan.FromMilliseconds(expected));
        }

        await queue.Loop.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(5, _sends.Count);
        Assert.Equal(5, _resent);
        var gaveUp = Assert.Single(_gaveUp);
        Assert.Equal("r1", gaveUp.RequestId);
        Assert.Equal(6, gaveUp.Attempts); // the first send and five retries
        Assert.Empty(_landed);
        Assert.Equal(0, queue.Count);
        Assert.False(_waits.Reader.TryRead(out _)); // the loop ended: no more rounds
    }

    [Fact]
    public async Task A_release_that_lands_on_its_third_retry_is_reported_once_and_not_sent_again()
    {
        _failuresLeft = 2;
        var queue = CreateQueue();
        queue.Add(Release("org", "r1"));

        await NextRoundAsync(TimeSpan.FromMilliseconds(100));
        await NextRoundAsync(TimeSpan.FromMilliseconds(200));
        await NextRoundAsync(TimeSpan.FromMilliseconds(400));

        await queue.Loop.WaitAsync(TimeSpan.FromSeconds(5));
        var landed = Assert.Single(_landed);
        Assert.Equal(4, landed.Attempts);
        Assert.Empty(_gaveUp);
        Assert.Equal(3, _sends.Count);
        Assert.Equal(0, queue.Count);

        // Redis answers again, so the next failure starts from the shortest wait.
        queue.Add(Release("org", "r2"));
        await NextRoundAsync(TimeSpan.FromMilliseconds(100));
        await queue.Loop.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, _landed.Count);
    }

    [Fact]
    public async Task A_round_sends_one_script_per_hash_tag_with_every_release_of_it()
    {
        _failuresLeft = 0;
        var queue = CreateQueue();
        queue.Add(Release("a", "r1"));
        queue.Add(Release("b", "r2"));
        queue.Add(Release("a", "r3", slots: 2));
        Assert.Equal(3, queue.Count);

        await NextRoundAsync(TimeSpan.FromMilliseconds(100));
        await queue.Loop.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal([("a", 3), ("b", 1)], _sends.OrderBy(static s => s.HashTag, StringComparer.Ordinal));
        Assert.Equal(3, _landed.Count);
    }

    [Fact]
    public async Task Stopping_tries_each_waiting_release_once_more_then_gives_up_and_refuses_new_ones()
    {
        var queue = CreateQueue();
        queue.Add(Release("org", "r1"));
        var (_, go) = await _waits.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));

        // Stop while the loop waits: the wait is cancelled, and the last round runs at once.
        await queue.StopAsync().WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Single(_sends);
        Assert.Single(_gaveUp);
        Assert.False(queue.Add(Release("org", "r2")));
        Assert.Equal(0, queue.Count);
        GC.KeepAlive(go);
    }

    /// <summary>Waits for the loop's next wait, checks its length, moves the clock by it and lets the round run.</summary>
    private async Task NextRoundAsync(TimeSpan expected)
    {
        var (wait, go) = await _waits.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(expected, wait);
        _time.Advance(wait);
        go.SetResult();
    }

    private ReleaseRetryQueue CreateQueue() => new(
        (hashTag, operations) =>
        {
            lock (_sends)
            {
                _sends.Add((hashTag, operations.Count));
            }

            return Interlocked.Decrement(ref _failuresLeft) >= 0
                ? Task.FromException(new TimeoutException("stalled"))
                : Task.CompletedTask;
        },
        _time,
        () => LeaseTtl,
        r => _landed.Add(r),
        r => _gaveUp.Add(r),
        n => Interlocked.Add(ref _resent, n),
        (wait, token) =>
        {
            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            token.Register(() => go.TrySetCanceled(token));
            _waits.Writer.TryWrite((wait, go));
            return go.Task;
        });

    private RetriedRelease Release(string hashTag, string requestId, int slots = 1)
        => new(
            hashTag,
            requestId,
            [.. Enumerable.Range(0, slots).Select(i => new ReleaseOperation($"{hashTag}:slots{i}", RedisRateLimitScripts.ConcurrencyCode, 0, 0, requestId, 0))],
            _time.GetTimestamp());
}
