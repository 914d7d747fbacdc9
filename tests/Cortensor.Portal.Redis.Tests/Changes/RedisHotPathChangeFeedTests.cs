using System.Collections.Concurrent;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Redis.Changes;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Portal.Redis.Tests.Changes;

public sealed class RedisHotPathChangeFeedTests : IDisposable
{
    private static readonly TimeSpan Delivery = TimeSpan.FromSeconds(1);

    private readonly List<IDisposable> _disposables = [];

    public void Dispose()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
        {
            disposable.Dispose();
        }
    }

    [Fact]
    public async Task Publish_OnOneReplica_ReachesTheOtherWithinOneSecond()
    {
        var scope = Track(new RedisTestScope());
        var a = await CreateFeedAsync(scope);
        var b = await CreateFeedAsync(scope);
        var seenByA = new ConcurrentQueue<HotPathChange>();
        var seenByB = new ConcurrentQueue<HotPathChange>();
        Track(a.Subscribe(seenByA.Enqueue));
        Track(b.Subscribe(seenByB.Enqueue));

        await a.PublishAsync(new HotPathChange(HotPathChangeKind.Key, "key_123"));

        Assert.Contains(new HotPathChange(HotPathChangeKind.Key, "key_123"), seenByA); // local delivery before PublishAsync returns
        await Poll.UntilAsync(() => seenByB.Contains(new HotPathChange(HotPathChangeKind.Key, "key_123")), Delivery);
    }

    [Fact]
    public async Task Publish_EveryKind_RoundTripsThroughThePayload()
    {
        var scope = Track(new RedisTestScope());
        var a = await CreateFeedAsync(scope);
        var b = await CreateFeedAsync(scope);
        var seenByB = new ConcurrentQueue<HotPathChange>();
        Track(b.Subscribe(seenByB.Enqueue));
        HotPathChange[] changes =
        [
            new(HotPathChangeKind.Policy, "plan:pro"), new(HotPathChangeKind.Plan, "org_1"),
            new(HotPathChangeKind.Model, "llama-3:8b"), HotPathChange.Everything,
        ];

        foreach (var change in changes)
        {
            await a.PublishAsync(change);
        }

        await Poll.UntilAsync(() => changes.All(seenByB.Contains), Delivery);
    }

    [Theory]
    [InlineData("Key:key_1", HotPathChangeKind.Key, "key_1")]
    [InlineData("Policy:global:*", HotPathChangeKind.Policy, "global:*")]
    [InlineData("Everything:", HotPathChangeKind.Everything, null)]
    public void TryParse_ValidPayload_ReadsKindAndId(string payload, HotPathChangeKind kind, string? id)
    {
        Assert.True(RedisHotPathChangeFeed.TryParse(payload, out var change));
        Assert.Equal(new HotPathChange(kind, id), change);
        Assert.Equal(payload, RedisHotPathChangeFeed.Format(change));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Key")]
    [InlineData(":x")]
    [InlineData("Nope:x")]
    [InlineData("7:x")]
    public void TryParse_Garbage_Refused(string? payload)
    {
        Assert.False(RedisHotPathChangeFeed.TryParse(payload, out _));
    }

    [Fact]
    public async Task Restart_SubscriberReceivesEverything_AndNoticesFlowAgain()
    {
        using var server = RedisServerProcess.StartNew();
        var scope = Track(new RedisTestScope(server.ConnectionString));
        var a = await CreateFeedAsync(scope);
        var b = await CreateFeedAsync(scope);
        var seenByB = new ConcurrentQueue<HotPathChange>();
        Track(b.Subscribe(seenByB.Enqueue));

        server.Stop();
        await a.PublishAsync(new HotPathChange(HotPathChangeKind.Key, "lost")); // Redis down: local only, no throw
        server.Start();

        await Poll.UntilAsync(() => seenByB.Contains(HotPathChange.Everything), TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(new HotPathChange(HotPathChangeKind.Key, "lost"), seenByB);

        // Resubscribed: notices reach B again.
        await Poll.UntilAsync(
            async () =>
            {
                await a.PublishAsync(new HotPathChange(HotPathChangeKind.Key, "after"));
                return seenByB.Contains(new HotPathChange(HotPathChangeKind.Key, "after"));
            },
            TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Publish_RedisDown_DeliversLocallyWithoutThrowing()
    {
        using var server = RedisServerProcess.StartNew();
        var scope = Track(new RedisTestScope(server.ConnectionString));
        var feed = await CreateFeedAsync(scope);
        var seen = new ConcurrentQueue<HotPathChange>();
        Track(feed.Subscribe(seen.Enqueue));
        server.Stop();

        var started = System.Diagnostics.Stopwatch.StartNew();
        await feed.PublishAsync(new HotPathChange(HotPathChangeKind.Key, "key_9"));

        Assert.Contains(new HotPathChange(HotPathChangeKind.Key, "key_9"), seen);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(2), $"took {started.Elapsed}");
    }

    [Fact]
    public async Task Feed_CreatedWhileRedisDown_SubscribesOnceItIsUp()
    {
        using var server = RedisServerProcess.StartNew();
        server.Stop();
        var scope = Track(new RedisTestScope(server.ConnectionString));
        var late = await CreateFeedAsync(scope); // Redis is down: the subscribe fails and is logged
        var seen = new ConcurrentQueue<HotPathChange>();
        Track(late.Subscribe(seen.Enqueue));

        server.Start();
        var other = await CreateFeedAsync(scope);

        await Poll.UntilAsync(
            async () =>
            {
                await other.PublishAsync(new HotPathChange(HotPathChangeKind.Model, "m"));
                return seen.Contains(new HotPathChange(HotPathChangeKind.Model, "m"));
            },
            TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Subscriber_Throws_OthersStillCalled_AndPublishStillReachesRedis()
    {
        var scope = Track(new RedisTestScope());
        var a = await CreateFeedAsync(scope);
        var b = await CreateFeedAsync(scope);
        var seenByA = new ConcurrentQueue<HotPathChange>();
        var seenByB = new ConcurrentQueue<HotPathChange>();
        Track(a.Subscribe(_ => throw new InvalidOperationException("broken cache")));
        Track(a.Subscribe(seenByA.Enqueue));
        Track(b.Subscribe(seenByB.Enqueue));

        await Assert.ThrowsAsync<AggregateException>(async () => await a.PublishAsync(new HotPathChange(HotPathChangeKind.Key, "k")));

        Assert.Contains(new HotPathChange(HotPathChangeKind.Key, "k"), seenByA);
        await Poll.UntilAsync(() => seenByB.Contains(new HotPathChange(HotPathChangeKind.Key, "k")), Delivery);
    }

    private async Task<RedisHotPathChangeFeed> CreateFeedAsync(RedisTestScope scope)
    {
        var feed = Track(new RedisHotPathChangeFeed(scope.Connect(), scope.OptionsWrapper, NullLogger<RedisHotPathChangeFeed>.Instance));
        await feed.Subscription;
        return feed;
    }

    private T Track<T>(T disposable)
        where T : IDisposable
    {
        _disposables.Add(disposable);
        return disposable;
    }
}
