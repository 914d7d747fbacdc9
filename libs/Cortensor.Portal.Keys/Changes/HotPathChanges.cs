namespace Cortensor.Portal.Keys.Changes;

/// <summary>What changed in the durable store that hot-path caches must forget.</summary>
public enum HotPathChangeKind
{
    /// <summary>A key was revoked, disabled or changed; <see cref="HotPathChange.Id"/> is its key id.</summary>
    Key,

    /// <summary>Model access policies of a subject changed; the id is <c>plan:…</c>, <c>org:…</c>, <c>key:…</c> or <c>global:*</c>.</summary>
    Policy,

    /// <summary>An org's plan or subscription changed; the id is the org id (or a plan id prefixed <c>plan:</c>).</summary>
    Plan,

    /// <summary>A model alias was enabled or disabled; the id is the alias.</summary>
    Model,

    /// <summary>Forget everything (for example after a lost connection, when changes may have been missed).</summary>
    Everything,
}

/// <summary>One change notice. Notices carry ids only, never secrets.</summary>
public readonly record struct HotPathChange(HotPathChangeKind Kind, string? Id)
{
    public static HotPathChange Everything { get; } = new(HotPathChangeKind.Everything, null);
}

/// <summary>
/// Pushes change notices to every replica's hot-path caches, so a revocation or a policy change takes effect
/// everywhere at once instead of when a TTL runs out. In-process by default (one replica); Redis pub/sub when
/// several replicas share Redis. Delivery to this replica's own subscribers happens before
/// <see cref="PublishAsync"/> returns; other replicas get it as soon as the transport delivers it.
/// </summary>
public interface IHotPathChangeFeed
{
    ValueTask PublishAsync(HotPathChange change, CancellationToken cancellationToken = default);

    /// <summary>Calls <paramref name="handler"/> for every notice (its own and other replicas'); dispose to stop.</summary>
    IDisposable Subscribe(Action<HotPathChange> handler);
}

/// <summary>The single-replica feed: publishing calls this process's subscribers directly.</summary>
public sealed class InProcessHotPathChangeFeed : IHotPathChangeFeed
{
    private readonly Lock _gate = new();
    private Action<HotPathChange>[] _handlers = [];

    public ValueTask PublishAsync(HotPathChange change, CancellationToken cancellationToken = default)
    {
        Deliver(change);
        return ValueTask.CompletedTask;
    }

    public IDisposable Subscribe(Action<HotPathChange> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        lock (_gate)
        {
            _handlers = [.. _handlers, handler];
        }

        return new Subscription(this, handler);
    }

    /// <summary>Calls every subscriber; a throwing subscriber does not stop the others.</summary>
    public void Deliver(HotPathChange change)
    {
        List<Exception>? errors = null;
        foreach (var handler in Volatile.Read(ref _handlers))
        {
            try
            {
                handler(change);
            }
#pragma warning disable CA1031 // one broken cache must not keep the others stale
            catch (Exception ex)
#pragma warning restore CA1031
            {
                (errors ??= []).Add(ex);
            }
        }

        if (errors is not null)
        {
            throw new AggregateException("A hot-path change subscriber failed.", errors);
        }
    }

    private void Unsubscribe(Action<HotPathChange> handler)
    {
        lock (_gate)
        {
            _handlers = [.. _handlers.Where(h => h != handler)];
        }
    }

    private sealed class Subscription(InProcessHotPathChangeFeed feed, Action<HotPathChange> handler) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                feed.Unsubscribe(handler);
            }
        }
    }
}
