using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Fleet.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Fleet.Tests.Routing;

public sealed class StreamIsolationTests : IDisposable
{
    private readonly FakeTimeProvider _time = new();
    private ServiceProvider? _services;

    public void Dispose() => _services?.Dispose();

    private IStreamLeases Build(RouterQueueMode mode, int sessions = 1, int queueLength = 2, int waitSeconds = 10, string? secondPoolOnSameSession = null)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddSingleton<TimeProvider>(_time);
        services.AddCortensorFleet().Configure(o =>
        {
            o.Routers["r"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.1:5010"), ApiKey = "k" };
            o.Pools["p"] = new PoolOptions
            {
                RouterQueues = mode,
                StreamQueueLength = queueLength,
                StreamQueueWaitSeconds = waitSeconds,
                Members = [.. Enumerable.Range(1, sessions).Select(s => new PoolMemberOptions { Router = "r", SessionId = s })],
            };
            o.Models["m"] = new ModelOptions { Pool = "p" };
            if (secondPoolOnSameSession is not null)
            {
                o.Pools[secondPoolOnSameSession] = new PoolOptions { Members = [new PoolMemberOptions { Router = "r", SessionId = 1 }] };
                o.Models["m2"] = new ModelOptions { Pool = secondPoolOnSameSession };
            }
        });
        _services = services.BuildServiceProvider();
        return _services.GetRequiredService<IStreamLeases>();
    }

    private RouterTarget Select(string pool = "p")
    {
        Assert.True(_services!.GetRequiredService<IRouterSelector>().TrySelect(pool, out var target));
        return target;
    }

    [Fact]
    public async Task Blocking_SecondStreamOnTheOnlySession_WaitsUntilTheFirstEnds()
    {
        var leases = Build(RouterQueueMode.Blocking);
        using var first = await leases.AcquireAsync("p", Select(), CancellationToken.None);

        var second = leases.AcquireAsync("p", Select(), CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(second.IsCompleted);
        Assert.Equal(new PoolStreamLoad(RouterQueueMode.Blocking, 1, 1, 1, 2, 1, 0), leases.GetLoad("p"));

        _time.Advance(TimeSpan.FromSeconds(3));
        first.Dispose();
        using var granted = await second.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("r/1", granted.Target.ToString());
        Assert.Equal(TimeSpan.FromSeconds(3), granted.Waited);
        Assert.Equal(new PoolStreamLoad(RouterQueueMode.Blocking, 1, 1, 0, 2, 1, 0), leases.GetLoad("p"));
    }

    [Fact]
    public async Task Blocking_TwoSessions_SecondStreamTakesTheFreeOneAtOnce()
    {
        var leases = Build(RouterQueueMode.Blocking, sessions: 2);
        var preferred = Select();
        using var first = await leases.AcquireAsync("p", preferred, CancellationToken.None);

        // Selection may pick the busy member again: the lease moves the stream to the free one.
        using var second = await leases.AcquireAsync("p", preferred, CancellationToken.None);

        Assert.NotEqual(first.Target.SessionId, second.Target.SessionId);
        Assert.Equal(0, leases.GetLoad("p").Waits);
        Assert.Equal(2, leases.GetLoad("p").StreamCapacity);
    }

    [Fact]
    public async Task Blocking_QueueFull_RefusesAtOnce()
    {
        var leases = Build(RouterQueueMode.Blocking, queueLength: 1);
        using var open = await leases.AcquireAsync("p", Select(), CancellationToken.None);
        var waiting = leases.AcquireAsync("p", Select(), CancellationToken.None).AsTask();

        var refused = await Assert.ThrowsAsync<StreamCapacityException>(async () => await leases.AcquireAsync("p", Select(), CancellationToken.None));

        Assert.Equal(StreamRefusal.QueueFull, refused.Reason);
        Assert.False(waiting.IsCompleted);
        Assert.Equal(1, leases.GetLoad("p").Refusals);
        open.Dispose();
        (await waiting).Dispose();
    }

    [Fact]
    public async Task Blocking_WaitExpires_RefusesAndLeavesTheQueue()
    {
        var leases = Build(RouterQueueMode.Blocking, waitSeconds: 5);
        using var open = await leases.AcquireAsync("p", Select(), CancellationToken.None);
        var waiting = leases.AcquireAsync("p", Select(), CancellationToken.None).AsTask();

        _time.Advance(TimeSpan.FromSeconds(5));
        var refused = await Assert.ThrowsAsync<StreamCapacityException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.Equal(StreamRefusal.WaitExpired, refused.Reason);
        Assert.Equal(new PoolStreamLoad(RouterQueueMode.Blocking, 1, 1, 0, 2, 1, 1), leases.GetLoad("p"));
        open.Dispose();
        using var next = await leases.AcquireAsync("p", Select(), CancellationToken.None); // the slot is free again
    }

    [Fact]
    public async Task Blocking_CallerCancelsWhileWaiting_LeavesTheQueueWithoutARefusal()
    {
        var leases = Build(RouterQueueMode.Blocking);
        using var open = await leases.AcquireAsync("p", Select(), CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var waiting = leases.AcquireAsync("p", Select(), cancel.Token).AsTask();

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, leases.GetLoad("p").QueuedStreams);
        Assert.Equal(0, leases.GetLoad("p").Refusals);
    }

    [Fact]
    public async Task Blocking_ZeroQueueLength_RefusesWhenBusy()
    {
        var leases = Build(RouterQueueMode.Blocking, queueLength: 0);
        using var open = await leases.AcquireAsync("p", Select(), CancellationToken.None);

        await Assert.ThrowsAsync<StreamCapacityException>(async () => await leases.AcquireAsync("p", Select(), CancellationToken.None));
    }

    [Fact]
    public async Task Blocking_SessionSharedByTwoPools_IsExclusiveAcrossPools()
    {
        var leases = Build(RouterQueueMode.Blocking, secondPoolOnSameSession: "p2");
        using var open = await leases.AcquireAsync("p", Select(), CancellationToken.None);

        var waiting = leases.AcquireAsync("p2", Select("p2"), CancellationToken.None).AsTask();
        await Task.Delay(50);

        Assert.False(waiting.IsCompleted);
        open.Dispose();
        (await waiting.WaitAsync(TimeSpan.FromSeconds(10))).Dispose();
    }

    [Fact]
    public async Task NonBlocking_ManyStreamsOnOneSession_AllOpenAtOnce()
    {
        var leases = Build(RouterQueueMode.NonBlocking, queueLength: 0);

        var all = new List<StreamLease>();
        for (var i = 0; i < 5; i++)
        {
            all.Add(await leases.AcquireAsync("p", Select(), CancellationToken.None));
        }

        Assert.All(all, l => Assert.Equal("r/1", l.Target.ToString()));
        Assert.Equal(new PoolStreamLoad(RouterQueueMode.NonBlocking, null, 5, 0, 0, 0, 0), leases.GetLoad("p"));
        all.ForEach(l => l.Dispose());
        Assert.Equal(0, leases.GetLoad("p").OpenStreams);
    }

    [Fact]
    public async Task Lease_DisposedTwice_FreesOnce()
    {
        var leases = Build(RouterQueueMode.Blocking);
        var first = await leases.AcquireAsync("p", Select(), CancellationToken.None);
        first.Dispose();
        using var second = await leases.AcquireAsync("p", Select(), CancellationToken.None);

        first.Dispose(); // must not free the slot the second stream now holds

        await Assert.ThrowsAsync<StreamCapacityException>(async () =>
        {
            var third = leases.AcquireAsync("p", Select(), CancellationToken.None).AsTask();
            _time.Advance(TimeSpan.FromSeconds(10));
            await third.WaitAsync(TimeSpan.FromSeconds(10));
        });
    }

    [Fact]
    public async Task Metrics_RecordOpenQueuedWaitsAndRefusals()
    {
        var leases = Build(RouterQueueMode.Blocking, queueLength: 1, waitSeconds: 2);
        var scope = _services!.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var open = new MetricCollector<long>(scope, FleetTelemetry.Name, "cortensor.fleet.streams.open");
        using var waits = new MetricCollector<long>(scope, FleetTelemetry.Name, "cortensor.fleet.streams.queue_waits");
        using var refused = new MetricCollector<long>(scope, FleetTelemetry.Name, "cortensor.fleet.streams.refused");

        using var first = await leases.AcquireAsync("p", Select(), CancellationToken.None);
        var waiting = leases.AcquireAsync("p", Select(), CancellationToken.None).AsTask();
        await Assert.ThrowsAsync<StreamCapacityException>(async () => await leases.AcquireAsync("p", Select(), CancellationToken.None));
        _time.Advance(TimeSpan.FromSeconds(2));
        await Assert.ThrowsAsync<StreamCapacityException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.Equal(1, open.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(1, waits.GetMeasurementSnapshot().Sum(m => m.Value));
        var reasons = refused.GetMeasurementSnapshot().Select(m => m.Tags["reason"]).ToList();
        Assert.Equal(["queue_full", "wait_expired"], reasons);
        Assert.All(refused.GetMeasurementSnapshot(), m => Assert.Equal("p", m.Tags["pool"]));
    }
}
