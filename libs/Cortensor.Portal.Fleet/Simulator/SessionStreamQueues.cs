using System.Threading.Channels;

namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>
/// The token queues of the simulated router's streams. With blocking stream queues (the router default,
/// <c>ENABLE_STREAM_QUEUE_NON_BLOCKING=0</c>), every stream open on one session reads from one shared queue, so two
/// concurrent streams take each other's chunks (installer PR #146). With non-blocking queues each stream has its own.
/// </summary>
/// <remarks>
/// Each stream's producer writes its task's chunks (paced) into the queue it joined; each reader writes whatever
/// chunk comes next to its own response, and stops after as many finish chunks as its own task produces. With one
/// stream per session that is exactly that stream's chunks. Whether a real router stamps a collided chunk with the
/// producing task's <c>task_id</c> (as here) or the reader's is not known.
/// </remarks>
internal sealed class SessionStreamQueues
{
    private readonly Lock _gate = new();
    private readonly Dictionary<long, SessionStreamQueue> _shared = [];

    /// <summary>Joins the session's shared queue (blocking) or a private one (non-blocking).</summary>
    public SessionStreamQueue Join(long sessionId, bool nonBlocking)
    {
        if (nonBlocking)
        {
            return new SessionStreamQueue(this, sessionId, shared: false) { Readers = 1 };
        }

        lock (_gate)
        {
            if (!_shared.TryGetValue(sessionId, out var queue))
            {
                queue = new SessionStreamQueue(this, sessionId, shared: true);
                _shared[sessionId] = queue;
            }

            queue.Readers++;
            return queue;
        }
    }

    /// <summary>Leaves; the last reader out drops the queue (and whatever no stream read).</summary>
    public void Leave(SessionStreamQueue queue)
    {
        lock (_gate)
        {
            if (--queue.Readers > 0)
            {
                return;
            }

            if (queue.Shared && _shared.TryGetValue(queue.SessionId, out var current) && ReferenceEquals(current, queue))
            {
                _shared.Remove(queue.SessionId);
            }
        }

        queue.Channel.Writer.TryComplete();
    }
}

internal sealed class SessionStreamQueue(SessionStreamQueues owner, long sessionId, bool shared)
{
    public long SessionId { get; } = sessionId;

    public bool Shared { get; } = shared;

    /// <summary>Guarded by the owner's lock.</summary>
    public int Readers { get; set; }

    public Channel<SimCompletion> Channel { get; } = System.Threading.Channels.Channel.CreateUnbounded<SimCompletion>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });

    public void Leave() => owner.Leave(this);
}
