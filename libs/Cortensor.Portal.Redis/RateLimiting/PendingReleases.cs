using StackExchange.Redis;

namespace Cortensor.Portal.Redis.RateLimiting;

/// <summary>One rule's part of a release: free a concurrency slot, or settle a token rule by <see cref="Delta"/>.</summary>
/// <param name="Key">The rule's Redis key.</param>
/// <param name="ClassCode">The rule's class code in the scripts.</param>
/// <param name="Quota">The rule's quota.</param>
/// <param name="WindowMicroseconds">The rule's window.</param>
/// <param name="RequestId">The request whose slot is freed (the member of the slot set).</param>
/// <param name="Delta">Actual minus charged tokens.</param>
internal readonly record struct ReleaseOperation(RedisKey Key, string ClassCode, long Quota, long WindowMicroseconds, string RequestId, long Delta)
{
    /// <summary>ARGV values per operation, in the order <c>release_ops</c> reads them.</summary>
    public const int ArgumentCount = 5;

    /// <summary>Writes the operations' keys from <paramref name="firstKey"/> and their arguments from <paramref name="firstArg"/>.</summary>
    public static void Write(List<ReleaseOperation> operations, RedisKey[] keys, int firstKey, RedisValue[] args, int firstArg)
    {
        for (var j = 0; j < operations.Count; j++)
        {
            var operation = operations[j];
            var a = firstArg + (ArgumentCount * j);
            keys[firstKey + j] = operation.Key;
            args[a] = operation.ClassCode;
            args[a + 1] = operation.Quota;
            args[a + 2] = operation.WindowMicroseconds;
            args[a + 3] = operation.RequestId;
            args[a + 4] = operation.Delta;
        }
    }
}

/// <summary>Releases sent together, and the task their callers wait on.</summary>
/// <param name="HashTag">The hash tag every operation's key is under.</param>
/// <param name="Operations">In the order they were released; only added to while the batch waits (under its queue's lock).</param>
/// <param name="Completion">Completed once the script that carried them answered or failed (a failed release is then retried in the background).</param>
internal sealed record ReleaseBatch(string HashTag, List<ReleaseOperation> Operations, TaskCompletionSource Completion);

/// <summary>
/// Releases waiting to be sent, per hash tag (one script may only touch one hash tag's keys on Redis Cluster). A
/// batch is taken whole, exactly once: by the next acquire of its hash tag or by the delayed flush.
/// </summary>
internal sealed class PendingReleases
{
    private readonly Dictionary<string, ReleaseBatch> _byHashTag = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <summary>How many hash tags have releases waiting; read without the lock so an idle org's acquire skips it.</summary>
    private volatile int _waitingHashTags;

    /// <summary>Adds a request's operations under <paramref name="hashTag"/>.</summary>
    /// <returns>Completes when the batch they join has been sent and answered (or failed).</returns>
    public Task Add(string hashTag, ReleaseOperation[] operations)
    {
        lock (_gate)
        {
            if (!_byHashTag.TryGetValue(hashTag, out var waiting))
            {
                // Continuations run inline: the gateway only observes the task, and tests only await it.
                waiting = new ReleaseBatch(hashTag, [], new TaskCompletionSource());
                _byHashTag.Add(hashTag, waiting);
                _waitingHashTags = _byHashTag.Count;
            }

            waiting.Operations.AddRange(operations);
            return waiting.Completion.Task;
        }
    }

    /// <summary>Takes <paramref name="hashTag"/>'s waiting releases, or null when there are none.</summary>
    public ReleaseBatch? Take(string hashTag)
    {
        if (_waitingHashTags == 0)
        {
            return null;
        }

        lock (_gate)
        {
            if (!_byHashTag.Remove(hashTag, out var waiting))
            {
                return null;
            }

            _waitingHashTags = _byHashTag.Count;
            return waiting;
        }
    }

    /// <summary>Takes every hash tag's waiting releases.</summary>
    public List<ReleaseBatch> TakeAll()
    {
        lock (_gate)
        {
            var batches = new List<ReleaseBatch>(_byHashTag.Values);
            _byHashTag.Clear();
            _waitingHashTags = 0;
            return batches;
        }
    }
}
