using System.Collections.Concurrent;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.Internal;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.RateLimiting;

/// <summary>The slot leases of this replica's requests in flight: tracking, the heartbeat that renews them, and the release of an abandoned acquire.</summary>
public sealed partial class RedisRateLimiter
{
    /// <summary>The most slots one renewal script renews (a busy org may have many requests in flight).</summary>
    internal const int MaxSlotsPerRenewal = 500;

    /// <summary>Remembers an admitted request's concurrency slots, so the heartbeat renews them until it is released.</summary>
    private void TrackLease(RateLimitRequest request, PartitionKeys[] keySets)
    {
        var slots = ConcurrencyKeys(request, keySets);
        if (slots.Length > 0 && !_disposed)
        {
            _leases.Add(request, new InFlightLease(request, slots, _time.GetTimestamp()));
        }
    }

    /// <summary>
    /// The acquire failed after its script may have reached Redis (a timeout, a lost connection, the caller gone): if
    /// it ever runs, it takes slots nobody would release. A release of them goes right behind it on the same
    /// connection (so it runs after it) and is retried like any release; removing a slot never taken is harmless.
    /// </summary>
    private void CompensateAbandonedAcquire(RateLimitRequest request, PartitionKeys[] keySets, Exception exception)
    {
        var slots = ConcurrencyKeys(request, keySets);
        if (slots.Length == 0)
        {
            return;
        }

        var operations = new List<ReleaseOperation>(slots.Length);
        foreach (var key in slots)
        {
            operations.Add(new ReleaseOperation(key, RedisRateLimitScripts.ConcurrencyCode, 0, 0, request.RequestId, 0));
        }

        _metrics.AcquireCompensated();
        Log.AcquireAbandoned(_logger, request.RequestId, exception.GetType().Name);
        _ = SendReleasesAsync(new ReleaseBatch(request.HashTag, operations, new TaskCompletionSource()));
    }

    private static RedisKey[] ConcurrencyKeys(RateLimitRequest request, PartitionKeys[] keySets)
    {
        List<RedisKey>? slots = null;
        for (var p = 0; p < request.Partitions.Count; p++)
        {
            var rules = request.Partitions[p].Rules;
            for (var r = 0; r < rules.Count; r++)
            {
                if (rules[r].Class == RateLimitClass.Concurrency)
                {
                    (slots ??= []).Add(keySets[p].Keys[r]);
                }
            }
        }

        return slots is null ? [] : [.. slots];
    }

    private void OnHeartbeat()
    {
        // One renewal at a time: a round still waiting on a slow Redis is not doubled by the next tick.
        if (_disposed || Interlocked.Exchange(ref _renewing, 1) == 1)
        {
            return;
        }

        _ = RenewLeasesAsync();
    }

    /// <summary>
    /// Renews every tracked slot: one script per hash tag (and per <see cref="MaxSlotsPerRenewal"/> slots), all at
    /// once. A request held longer than <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> is no longer renewed.
    /// Never throws.
    /// </summary>
    internal async Task RenewLeasesAsync()
    {
        try
        {
            var ttl = LeaseTtl;
            var maxAge = _rateLimits.CurrentValue.ConcurrencySlotTtl;
            var (byHashTag, tooOld) = _leases.Snapshot(_time.GetTimestamp(), maxAge, _time);
            if (tooOld > 0)
            {
                Log.LeasesHeldTooLong(_logger, tooOld, maxAge);
            }

            var sends = new List<Task>();
            foreach (var (hashTag, leases) in byHashTag)
            {
                var keys = new List<RedisKey>();
                var owners = new List<InFlightLease>();
                foreach (var lease in leases)
                {
                    if (keys.Count + lease.Slots.Length > MaxSlotsPerRenewal && keys.Count > 0)
                    {
                        sends.Add(RenewAsync(keys, owners, ttl));
                        keys = [];
                        owners = [];
                    }

                    foreach (var key in lease.Slots)
                    {
                        keys.Add(key);
                        owners.Add(lease);
                    }
                }

                if (keys.Count > 0)
                {
                    sends.Add(RenewAsync(keys, owners, ttl));
                }
            }

            await Task.WhenAll(sends).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _renewing, 0);
        }
    }

    /// <param name="keys">Slot sets of one hash tag.</param>
    /// <param name="owners">The lease whose slot is in <paramref name="keys"/> at the same index.</param>
    /// <param name="ttl">The lease TTL.</param>
    private async Task RenewAsync(List<RedisKey> keys, List<InFlightLease> owners, TimeSpan ttl)
    {
        var args = new RedisValue[owners.Count + 1];
        args[0] = Math.Max(1, RateLimitConventions.ToMicroseconds(ttl));
        for (var j = 0; j < owners.Count; j++)
        {
            args[j + 1] = owners[j].Request.RequestId;
        }

        try
        {
            var missing = (RedisResult[])(await RedisCalls.WithTimeout(
                EvaluateAsync(RedisRateLimitScripts.RenewSha1, RedisRateLimitScripts.Renew, [.. keys], args),
                _timeout,
                CancellationToken.None).ConfigureAwait(false))!;
            var lost = 0;
            List<ReleaseOperation>? ended = null;
            foreach (var index in missing)
            {
                // The script put the slot back. A request still tracked had lost it (Redis out of reach for longer
                // than the TTL) and now counts again; one that ended since the snapshot must not hold it, so its
                // slot is released again, behind this script.
                var owner = owners[(int)index - 1];
                if (_leases.Contains(owner.Request))
                {
                    lost++;
                }
                else
                {
                    (ended ??= []).Add(new ReleaseOperation(keys[(int)index - 1], RedisRateLimitScripts.ConcurrencyCode, 0, 0, owner.Request.RequestId, 0));
                }
            }

            if (ended is not null)
            {
                _ = SendReleasesAsync(new ReleaseBatch(owners[0].Request.HashTag, ended, new TaskCompletionSource()));
            }

            if (lost > 0)
            {
                _metrics.LeasesLost(lost);
                Log.LeasesLost(_logger, lost, keys.Count);
            }
        }
        catch (Exception ex)
        {
            _metrics.LeaseRenewalFailed();
            Log.LeaseRenewalFailed(_logger, keys.Count, ttl, ex);
        }
    }
}

/// <summary>One admitted request's concurrency slots in Redis.</summary>
/// <param name="Request">The request (its id is the slot sets' member, its hash tag that of the keys).</param>
/// <param name="Slots">The keys of its concurrency rules.</param>
/// <param name="AdmittedAt">When it was admitted (a <see cref="TimeProvider"/> timestamp).</param>
internal sealed record InFlightLease(RateLimitRequest Request, RedisKey[] Slots, long AdmittedAt);

/// <summary>The leases this replica renews, by request (by reference: two requests could carry the same id).</summary>
internal sealed class InFlightLeases
{
    private readonly ConcurrentDictionary<RateLimitRequest, InFlightLease> _leases = new(ReferenceEqualityComparer.Instance);

    public int Count => _leases.Count;

    public void Add(RateLimitRequest request, InFlightLease lease) => _leases[request] = lease;

    /// <returns>True when it was tracked.</returns>
    public bool Remove(RateLimitRequest request) => _leases.TryRemove(request, out _);

    public bool Contains(RateLimitRequest request) => _leases.ContainsKey(request);

    /// <summary>The leases to renew by hash tag; leases admitted <paramref name="maxAge"/> or more ago are dropped (counted, not returned).</summary>
    public (Dictionary<string, List<InFlightLease>> ByHashTag, int TooOld) Snapshot(long now, TimeSpan maxAge, TimeProvider time)
    {
        var byHashTag = new Dictionary<string, List<InFlightLease>>(StringComparer.Ordinal);
        var tooOld = 0;
        foreach (var (request, lease) in _leases)
        {
            if (time.GetElapsedTime(lease.AdmittedAt, now) >= maxAge)
            {
                if (_leases.TryRemove(request, out _))
                {
                    tooOld++;
                }

                continue;
            }

            if (!byHashTag.TryGetValue(request.HashTag, out var list))
            {
                byHashTag.Add(request.HashTag, list = []);
            }

            list.Add(lease);
        }

        return (byHashTag, tooOld);
    }
}
