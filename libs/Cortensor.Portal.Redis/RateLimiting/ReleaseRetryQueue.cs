namespace Cortensor.Portal.Redis.RateLimiting;

/// <summary>The back-off of release retries and when they stop.</summary>
internal static class ReleaseRetryPolicy
{
    /// <summary>The wait before the first retry.</summary>
    public static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest wait between two retries: a release lands at most this long after Redis answers again.</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    /// <summary>The most operations one retry script carries (a long outage may queue many releases of one org).</summary>
    public const int MaxOperationsPerScript = 500;

    /// <summary>
    /// The wait before retry round <paramref name="round"/> (1 = the first round after every release had landed):
    /// 100 ms, doubling each round, at most 2 s.
    /// </summary>
    /// <param name="round">The round, from 1.</param>
    /// <returns>The wait.</returns>
    public static TimeSpan DelayBefore(int round)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(round, 1);
        // The shift is capped first: 100 ms << 5 is already past the cap, and a large shift would overflow.
        var ticks = FirstDelay.Ticks << Math.Min(round - 1, 8);
        return ticks >= MaxDelay.Ticks ? MaxDelay : TimeSpan.FromTicks(ticks);
    }

    /// <summary>
    /// Whether a release that first failed at <paramref name="firstFailedAt"/> is given up at <paramref name="now"/>:
    /// after one lease TTL its slot has expired in Redis anyway (its lease was last renewed before the release).
    /// </summary>
    /// <param name="firstFailedAt">When the first send failed (a <see cref="TimeProvider"/> timestamp).</param>
    /// <param name="now">Now (a timestamp of the same provider).</param>
    /// <param name="leaseTtl">The lease TTL.</param>
    /// <param name="time">The provider of both timestamps.</param>
    /// <returns>True when no more retries are due.</returns>
    public static bool IsGivenUp(long firstFailedAt, long now, TimeSpan leaseTtl, TimeProvider time)
        => time.GetElapsedTime(firstFailedAt, now) >= leaseTtl;
}

/// <summary>One request's release that did not reach Redis, waiting for its next try.</summary>
/// <param name="HashTag">The hash tag of its keys.</param>
/// <param name="RequestId">The request.</param>
/// <param name="Operations">Its concurrency operations (idempotent: removing a slot twice is harmless).</param>
/// <param name="FirstFailedAt">When its first send failed (a <see cref="TimeProvider"/> timestamp).</param>
internal sealed record RetriedRelease(string HashTag, string RequestId, ReleaseOperation[] Operations, long FirstFailedAt)
{
    /// <summary>Sends so far, the first one included.</summary>
    public int Attempts { get; set; } = 1;
}

/// <summary>
/// Releases that failed (Redis down, stalled or slow), re-sent in rounds with <see cref="ReleaseRetryPolicy"/>'s
/// back-off until they land or their lease would have expired anyway. A round sends one script per hash tag with every
/// release of it that is due (one script may only touch one hash tag's keys on Redis Cluster). One background loop runs
/// while anything waits; it starts with the first failure and ends when nothing is left.
/// </summary>
/// <remarks>
/// Only concurrency operations are retried: removing a slot twice is harmless, while a token settlement that timed
/// out may still have run, and sending it again could count it twice.
/// </remarks>
internal sealed class ReleaseRetryQueue
{
    private readonly Func<string, List<ReleaseOperation>, Task> _send;
    private readonly TimeProvider _time;
    private readonly Func<TimeSpan> _giveUpAfter;
    private readonly Action<RetriedRelease> _landed;
    private readonly Action<RetriedRelease> _gaveUp;
    private readonly Action<int> _resent;
    private readonly Func<TimeSpan, CancellationToken, Task> _delay;
    private readonly Dictionary<string, List<RetriedRelease>> _byHashTag = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private bool _running;
    private int _count;

    /// <param name="send">Sends one script with the operations of one hash tag; throws when they may not have landed.</param>
    /// <param name="time">Times the back-off and the give-up bound.</param>
    /// <param name="giveUpAfter">How long after its first failure a release is given up (the lease TTL).</param>
    /// <param name="landed">Called once for a release that landed after a retry.</param>
    /// <param name="gaveUp">Called once for a release given up.</param>
    /// <param name="resent">Called with the number of releases re-sent in one script.</param>
    /// <param name="delay">Waits between rounds; <see cref="Task.Delay(TimeSpan, TimeProvider, CancellationToken)"/> on <paramref name="time"/> when null (tests step rounds by hand).</param>
    public ReleaseRetryQueue(
        Func<string, List<ReleaseOperation>, Task> send,
        TimeProvider time,
        Func<TimeSpan> giveUpAfter,
        Action<RetriedRelease> landed,
        Action<RetriedRelease> gaveUp,
        Action<int> resent,
        Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        _delay = delay ?? ((wait, token) => Task.Delay(wait, time, token));
        _send = send;
        _time = time;
        _giveUpAfter = giveUpAfter;
        _landed = landed;
        _gaveUp = gaveUp;
        _resent = resent;
    }

    /// <summary>Releases waiting for a retry.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>The loop running now (a completed task when idle); tests wait on it.</summary>
    internal Task Loop
    {
        get
        {
            lock (_gate)
            {
                return _loop;
            }
        }
    }

    /// <summary>Queues a failed release; its first retry comes within <see cref="ReleaseRetryPolicy.MaxDelay"/>.</summary>
    /// <returns>False when the queue was stopped (the caller gives the release up).</returns>
    public bool Add(RetriedRelease release)
    {
        lock (_gate)
        {
            if (_stopping.IsCancellationRequested)
            {
                return false;
            }

            AddLocked(release);
            if (!_running)
            {
                _running = true;
                _loop = Task.Run(RunAsync);
            }

            return true;
        }
    }

    /// <summary>Stops the loop and tries every waiting release once more; what still fails is given up. Never throws.</summary>
    public async Task StopAsync()
    {
        Task loop;
        lock (_gate)
        {
            if (_stopping.IsCancellationRequested)
            {
                return;
            }

            _stopping.Cancel();
            loop = _loop;
        }

        await loop.ConfigureAwait(false);
        await RoundAsync(giveUpFailures: true).ConfigureAwait(false);
    }

    private async Task RunAsync()
    {
        var round = 0;
        while (true)
        {
            try
            {
                await _delay(ReleaseRetryPolicy.DelayBefore(++round), _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopped: StopAsync makes the last round.
                MarkStopped();
                return;
            }

            bool landed;
            try
            {
                landed = await RoundAsync(giveUpFailures: false).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Sends never throw; only a callback (a log sink) could. The loop must live on, or no retry would
                // run again and Add would never restart it.
                landed = false;
            }

            if (landed)
            {
                // Everything due landed: Redis answers, so the next failure starts from the shortest wait again.
                round = 0;
            }

            lock (_gate)
            {
                if (_byHashTag.Count == 0 || _stopping.IsCancellationRequested)
                {
                    _running = false;
                    return;
                }
            }
        }
    }

    private void MarkStopped()
    {
        lock (_gate)
        {
            _running = false;
        }
    }

    /// <summary>Gives up what is past its bound, sends the rest (one script per hash tag and chunk), requeues failures.</summary>
    /// <returns>True when every send of the round landed.</returns>
    private async Task<bool> RoundAsync(bool giveUpFailures)
    {
        List<RetriedRelease> due;
        lock (_gate)
        {
            due = [.. _byHashTag.Values.SelectMany(static list => list)];
            _byHashTag.Clear();
            Interlocked.Add(ref _count, -due.Count);
        }

        var now = _time.GetTimestamp();
        var giveUpAfter = _giveUpAfter();
        var sends = new List<Task<bool>>();
        foreach (var group in due.GroupBy(static r => r.HashTag, StringComparer.Ordinal))
        {
            var chunk = new List<RetriedRelease>();
            var operations = 0;
            foreach (var release in group)
            {
                if (ReleaseRetryPolicy.IsGivenUp(release.FirstFailedAt, now, giveUpAfter, _time))
                {
                    _gaveUp(release);
                    continue;
                }

                if (operations + release.Operations.Length > ReleaseRetryPolicy.MaxOperationsPerScript && chunk.Count > 0)
                {
                    sends.Add(SendAsync(group.Key, chunk, giveUpFailures));
                    chunk = [];
                    operations = 0;
                }

                chunk.Add(release);
                operations += release.Operations.Length;
            }

            if (chunk.Count > 0)
            {
                sends.Add(SendAsync(group.Key, chunk, giveUpFailures));
            }
        }

        var results = await Task.WhenAll(sends).ConfigureAwait(false);
        return Array.TrueForAll(results, static landed => landed);
    }

    private async Task<bool> SendAsync(string hashTag, List<RetriedRelease> releases, bool giveUpFailures)
    {
        var operations = new List<ReleaseOperation>();
        foreach (var release in releases)
        {
            release.Attempts++;
            operations.AddRange(release.Operations);
        }

        _resent(releases.Count);
        try
        {
            await _send(hashTag, operations).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Still failing: each waits for the next round (its own failure was logged when it first failed), unless
            // this is the last round at shutdown.
            if (giveUpFailures)
            {
                releases.ForEach(_gaveUp);
                return false;
            }

            lock (_gate)
            {
                releases.ForEach(AddLocked);
            }

            return false;
        }

        foreach (var release in releases)
        {
            _landed(release);
        }

        return true;
    }

    private void AddLocked(RetriedRelease release)
    {
        if (!_byHashTag.TryGetValue(release.HashTag, out var list))
        {
            _byHashTag.Add(release.HashTag, list = []);
        }

        list.Add(release);
        Interlocked.Increment(ref _count);
    }
}
