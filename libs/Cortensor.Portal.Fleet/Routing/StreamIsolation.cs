using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;

namespace Cortensor.Portal.Fleet.Routing;

/// <summary>
/// Stream slots per (router, session). In a pool whose routers queue stream tokens in blocking mode
/// (<see cref="RouterQueueMode.Blocking"/>, the router default), concurrent streams on one session can receive each
/// other's text (installer PR #146), so at most one stream is open per (router, session): a further stream takes
/// another free member, or waits in a bounded queue, or is refused. Non-stream requests are not affected (their answer
/// is read from the task's result, not from the session's token queue) and do not take slots.
/// </summary>
public interface IStreamLeases
{
    /// <summary>
    /// Takes a stream slot in <paramref name="pool"/>, trying <paramref name="preferred"/> (the member selection picked)
    /// first, then the pool's other members. Waits up to the pool's <see cref="PoolOptions.StreamQueueWaitSeconds"/> when
    /// every member is busy. Dispose the lease when the stream ends.
    /// </summary>
    /// <exception cref="StreamCapacityException">Every member stayed busy (queue full, or the wait expired).</exception>
    ValueTask<StreamLease> AcquireAsync(string pool, RouterTarget preferred, CancellationToken cancellationToken);

    /// <summary>Open streams, queue and refusals of a pool (zeros for an unknown pool).</summary>
    PoolStreamLoad GetLoad(string pool);
}

/// <summary>Why a stream got no slot.</summary>
public enum StreamRefusal
{
    /// <summary>Every member was busy and the pool's queue was full (or its length is 0).</summary>
    QueueFull,

    /// <summary>The stream waited <see cref="PoolOptions.StreamQueueWaitSeconds"/> without a member coming free.</summary>
    WaitExpired,
}

/// <summary>Stream load of one pool, for health and admin views.</summary>
/// <param name="Mode">The pool's router queue mode.</param>
/// <param name="StreamCapacity">Streams the pool can carry at once: its routable Cortensor (router, session) members in blocking mode; null when unbounded.</param>
/// <param name="OpenStreams">Streams open now.</param>
/// <param name="QueuedStreams">Streams waiting for a free member now.</param>
/// <param name="QueueLength">The queue's bound.</param>
/// <param name="Waits">Streams that had to wait, since start.</param>
/// <param name="Refusals">Streams refused, since start.</param>
public readonly record struct PoolStreamLoad(
    RouterQueueMode Mode, int? StreamCapacity, int OpenStreams, int QueuedStreams, int QueueLength, long Waits, long Refusals);

/// <summary>Every (router, session) of the pool stayed busy with another stream: answer 503 with Retry-After.</summary>
public sealed class StreamCapacityException : Exception
{
    public StreamCapacityException()
    {
    }

    public StreamCapacityException(string message)
        : base(message)
    {
    }

    public StreamCapacityException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public StreamCapacityException(string pool, StreamRefusal reason)
        : base(reason == StreamRefusal.QueueFull
            ? $"Every member of pool {pool} has an open stream and its stream queue is full."
            : $"Every member of pool {pool} stayed busy with another stream for the pool's queue wait.")
    {
        Pool = pool;
        Reason = reason;
    }

    public string Pool { get; } = "";

    public StreamRefusal Reason { get; }
}

/// <summary>A stream slot on <see cref="Target"/>; disposing it frees the slot for the next waiting stream.</summary>
public sealed class StreamLease : IDisposable
{
    private readonly StreamSlots? _owner;
    private readonly TimeProvider _time;
    private int _released;

    internal StreamLease(StreamSlots? owner, string pool, string? slot, RouterTarget target, TimeSpan waited, bool shared, TimeSpan holdAfterEarlyEnd, TimeProvider time)
    {
        _owner = owner;
        Pool = pool;
        Slot = slot;
        Target = target;
        Waited = waited;
        MayMoveToAnotherMember = shared;
        HoldAfterEarlyEnd = holdAfterEarlyEnd;
        _time = time;
    }

    /// <summary>
    /// True only in a pool whose routers keep streams apart (<see cref="RouterQueueMode.NonBlocking"/>): there a stream
    /// may fail over to another member. In a blocking pool another member's session may carry another customer's stream.
    /// </summary>
    public bool MayMoveToAnotherMember { get; }

    /// <summary>
    /// How long the slot stays taken after a stream that ended before the router finished (the pool's task timeout):
    /// the router's task goes on, and on a blocking-queue router its remaining tokens could reach the next stream
    /// on that session.
    /// </summary>
    public TimeSpan HoldAfterEarlyEnd { get; }

    /// <summary>Where the stream goes.</summary>
    public RouterTarget Target { get; }

    /// <summary>How long the stream waited for the slot.</summary>
    public TimeSpan Waited { get; }

    internal string Pool { get; }

    /// <summary>The exclusive (router, session) key; null when the stream shares its member (non-blocking routers).</summary>
    internal string? Slot { get; }

    /// <summary>Frees the slot now: the router finished this stream's task (or never started one).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _owner?.Release(this);
        }
    }

    /// <summary>
    /// Frees the slot of a stream that ended before its router finished (client gone, stop string, failure): after
    /// <see cref="HoldAfterEarlyEnd"/> when it holds its session alone, else now.
    /// </summary>
    public void ReleaseAfterEarlyEnd()
    {
        if (Slot is null || HoldAfterEarlyEnd <= TimeSpan.Zero)
        {
            Dispose();
            return;
        }

        if (Volatile.Read(ref _released) != 0)
        {
            return;
        }

        ITimer? timer = null;
        timer = _time.CreateTimer(_ => { Dispose(); timer?.Dispose(); }, null, HoldAfterEarlyEnd, Timeout.InfiniteTimeSpan);
    }
}

/// <summary>One member a stream may take: its exclusive key (null: shared) and where it goes.</summary>
internal readonly record struct StreamCandidate(string? Slot, RouterTarget Target);

/// <summary>What <see cref="StreamSlots"/> needs to know about a pool for one stream.</summary>
internal sealed record StreamPlan(RouterQueueMode Mode, int QueueLength, TimeSpan QueueWait, IReadOnlyList<StreamCandidate> Candidates, TimeSpan HoldAfterEarlyEnd);

/// <summary>
/// The slots and the wait queue. One lock guards everything: it is taken only when a stream opens or closes, and a
/// (router, session) may belong to several pools, so the slots are global.
/// </summary>
internal sealed class StreamSlots(TimeProvider timeProvider, FleetTelemetry telemetry)
{
    private readonly Lock _gate = new();
    private readonly HashSet<string> _busy = new(StringComparer.Ordinal);
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly Dictionary<string, Counters> _pools = new(StringComparer.OrdinalIgnoreCase);

    public ValueTask<StreamLease> AcquireAsync(string pool, StreamPlan plan, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Waiter waiter;
        lock (_gate)
        {
            var counters = CountersOf(pool);
            counters.QueueLength = plan.QueueLength;
            if (plan.Mode == RouterQueueMode.NonBlocking)
            {
                return ValueTask.FromResult(Grant(pool, counters, plan.Candidates[0] with { Slot = null }, TimeSpan.Zero, plan));
            }

            foreach (var candidate in plan.Candidates)
            {
                if (candidate.Slot is null || !_busy.Contains(candidate.Slot))
                {
                    return ValueTask.FromResult(Grant(pool, counters, candidate, TimeSpan.Zero, plan));
                }
            }

            if (counters.Queued >= plan.QueueLength || plan.QueueWait <= TimeSpan.Zero)
            {
                counters.Refusals++;
                telemetry.Refused(pool, StreamRefusal.QueueFull);
                throw new StreamCapacityException(pool, StreamRefusal.QueueFull);
            }

            waiter = new Waiter(pool, plan, timeProvider.GetTimestamp());
            waiter.Node = _waiters.AddLast(waiter);
            counters.Queued++;
            counters.Waits++;
            telemetry.Queued(pool);
        }

        return new ValueTask<StreamLease>(WaitAsync(waiter, plan.QueueWait, cancellationToken));
    }

    public PoolStreamLoad GetLoad(string pool, RouterQueueMode mode, int? capacity)
    {
        lock (_gate)
        {
            return _pools.TryGetValue(pool, out var c)
                ? new PoolStreamLoad(mode, capacity, c.Open, c.Queued, c.QueueLength, c.Waits, c.Refusals)
                : new PoolStreamLoad(mode, capacity, 0, 0, 0, 0, 0);
        }
    }

    public void Release(StreamLease lease)
    {
        Waiter? next = null;
        StreamLease? handedOver = null;
        lock (_gate)
        {
            var counters = CountersOf(lease.Pool);
            counters.Open--;
            telemetry.StreamClosed(lease.Pool);
            if (lease.Slot is null)
            {
                return;
            }

            _busy.Remove(lease.Slot);

            // The oldest waiter that may use the freed member gets it (waiters of several pools can share it).
            for (var node = _waiters.First; node is not null; node = node.Next)
            {
                var candidate = node.Value.Plan.Candidates.FirstOrDefault(c => c.Slot == lease.Slot);
                if (candidate.Target is null)
                {
                    continue;
                }

                next = node.Value;
                _waiters.Remove(node);
                var waited = timeProvider.GetElapsedTime(next.Started);
                var nextCounters = CountersOf(next.Pool);
                nextCounters.Queued--;
                telemetry.Dequeued(next.Pool, waited);
                handedOver = Grant(next.Pool, nextCounters, candidate, waited, next.Plan);
                break;
            }
        }

        if (next is not null && !next.Completion.TrySetResult(handedOver!))
        {
            handedOver!.Dispose(); // cannot happen (removal and completion share the lock), but never leak a slot
        }
    }

    private async Task<StreamLease> WaitAsync(Waiter waiter, TimeSpan wait, CancellationToken cancellationToken)
    {
        using var expiry = new CancellationTokenSource(wait, timeProvider);
        await using (expiry.Token.Register(() => Abandon(waiter, StreamRefusal.WaitExpired, default)))
        await using (cancellationToken.Register(() => Abandon(waiter, null, cancellationToken)))
        {
            return await waiter.Completion.Task.ConfigureAwait(false);
        }
    }

    /// <summary>Takes a waiter out of the queue, if it is still there, and fails it.</summary>
    private void Abandon(Waiter waiter, StreamRefusal? reason, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (waiter.Node?.List is null)
            {
                return; // already granted
            }

            _waiters.Remove(waiter.Node);
            var counters = CountersOf(waiter.Pool);
            counters.Queued--;
            telemetry.Dequeued(waiter.Pool, timeProvider.GetElapsedTime(waiter.Started));
            if (reason is { } refusal)
            {
                counters.Refusals++;
                telemetry.Refused(waiter.Pool, refusal);
            }
        }

        if (reason is { } r)
        {
            waiter.Completion.TrySetException(new StreamCapacityException(waiter.Pool, r));
        }
        else
        {
            waiter.Completion.TrySetCanceled(cancellationToken);
        }
    }

    private StreamLease Grant(string pool, Counters counters, StreamCandidate candidate, TimeSpan waited, StreamPlan plan)
    {
        if (candidate.Slot is not null)
        {
            _busy.Add(candidate.Slot);
        }

        counters.Open++;
        telemetry.StreamOpened(pool);
        return new StreamLease(this, pool, candidate.Slot, candidate.Target, waited, plan.Mode == RouterQueueMode.NonBlocking, plan.HoldAfterEarlyEnd, timeProvider);
    }

    private Counters CountersOf(string pool)
    {
        if (!_pools.TryGetValue(pool, out var counters))
        {
            counters = new Counters();
            _pools[pool] = counters;
        }

        return counters;
    }

    private sealed class Counters
    {
        public int Open;
        public int Queued;
        public int QueueLength;
        public long Waits;
        public long Refusals;
    }

    private sealed class Waiter(string pool, StreamPlan plan, long started)
    {
        public string Pool { get; } = pool;

        public StreamPlan Plan { get; } = plan;

        public long Started { get; } = started;

        public LinkedListNode<Waiter>? Node { get; set; }

        public TaskCompletionSource<StreamLease> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
