using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.Configuration;
using Cortensor.Portal.Redis.Internal;
using Cortensor.Portal.Redis.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.RateLimiting;

/// <summary>
/// An <see cref="IRateLimiter"/> whose state lives in Redis and is shared by every replica. Each
/// <see cref="AcquireAsync"/> is one round trip: one <c>EVALSHA</c> of a Lua script that reads Redis's clock
/// (<c>TIME</c>), decides every rule of every partition (<see cref="Gcra"/> for requests and tokens, a sorted set of
/// in-flight request ids scored by expiry for concurrency) and writes the new state only when all of them admit.
/// </summary>
/// <remarks>
/// <para>Keys: <c>{KeyPrefix}rl:{hashTag}:{scope}:{id}:{rule}</c>. The braces make the org id (the request's
/// <see cref="RateLimitRequest.HashTag"/>) the Redis Cluster hash tag, so one script touches one slot. <c>%</c>,
/// <c>{</c>, <c>}</c> and <c>:</c> inside ids are percent-escaped. A TAT key expires when its rule is back to its full
/// quota.</para>
/// <para>Concurrency slots are leases: each expires <see cref="RedisOptions.ConcurrencyLeaseTtl"/> after it was taken
/// or last renewed, and this replica renews the slots of its requests in flight every
/// <see cref="RedisOptions.ConcurrencyLeaseRenewInterval"/> (one script per hash tag, whatever the request rate), for at
/// most <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> per request. A replica that crashed stops renewing, so its
/// slots free themselves within one lease TTL.</para>
/// <para>Failures: <see cref="AcquireAsync"/> throws when Redis is unreachable, answers with an error, or takes longer
/// than <see cref="RedisOptions.OperationTimeout"/> (commands fail fast while disconnected), so that
/// <see cref="FallbackRateLimiter"/> decides locally. Such an acquire may still run when Redis wakes up (it was on the
/// socket), so a release of its concurrency slots is sent right after it on the same connection (and retried like any
/// release); its token and request charges, if it ran, stay counted (a small over-count). <see cref="ReleaseAsync"/>
/// never throws for Redis failures: a concurrency release that failed is retried in the background (back-off from
/// 100 ms doubling to 2 s) until it lands or one lease TTL has passed, when the slot has expired anyway. A token
/// settlement is sent once (it is not idempotent).</para>
/// </remarks>
public sealed partial class RedisRateLimiter : IRateLimiter, IAsyncDisposable, IDisposable
{
    private readonly IConnectionMultiplexer _redis;
    private readonly IOptionsMonitor<RateLimitingOptions> _rateLimits;
    private readonly ILogger<RedisRateLimiter> _logger;
    private readonly string _prefix;
    private readonly TimeSpan _timeout;
    private readonly ConcurrentDictionary<(string HashTag, string Scope, string Id), PartitionKeys> _partitionKeys = new();
    private readonly PendingReleases _pendingReleases = new();
    private readonly TimeSpan _releaseDelay;
    private readonly TimeProvider _time;
    private readonly TimeSpan _leaseTtl;
    private readonly InFlightLeases _leases = new();
    private readonly ReleaseRetryQueue _retries;
    private readonly RedisMetrics _metrics;
    private readonly ITimer _heartbeat;
    private int _flushScheduled;
    private int _renewing;
    private volatile bool _disposed;

    /// <summary>Partitions whose keys are kept: about one per active key plus one per org.</summary>
    internal const int MaxCachedPartitions = 10_000;

    /// <param name="redis">The shared connection.</param>
    /// <param name="options">Key prefix and operation timeout.</param>
    /// <param name="rateLimits">Read for <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> at each admission and renewal.</param>
    /// <param name="logger">Logs failed releases and renewals.</param>
    /// <param name="time">Times <see cref="RedisOptions.ReleaseDelay"/>, the lease heartbeat and release retries; the system clock when null.</param>
    /// <param name="meterFactory">Creates the <see cref="RedisMetrics.MeterName"/> meter; a private meter when null.</param>
    public RedisRateLimiter(
        IConnectionMultiplexer redis,
        IOptions<RedisOptions> options,
        IOptionsMonitor<RateLimitingOptions> rateLimits,
        ILogger<RedisRateLimiter> logger,
        TimeProvider? time = null,
        IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(rateLimits);
        ArgumentNullException.ThrowIfNull(logger);
        _redis = redis;
        _rateLimits = rateLimits;
        _logger = logger;
        _prefix = options.Value.KeyPrefix;
        _timeout = options.Value.OperationTimeout;
        _releaseDelay = options.Value.ReleaseDelay;
        _leaseTtl = options.Value.ConcurrencyLeaseTtl;
        _time = time ?? TimeProvider.System;
        _metrics = new RedisMetrics(meterFactory, () => _leases.Count, () => _retries!.Count);
        _retries = new ReleaseRetryQueue(
            SendRetryAsync,
            _time,
            () => LeaseTtl,
            release =>
            {
                Log.ReleaseLanded(_logger, release.RequestId, release.Attempts, _time.GetElapsedTime(release.FirstFailedAt));
            },
            release =>
            {
                _metrics.ReleaseAbandoned();
                Log.ReleaseAbandoned(_logger, release.RequestId, release.Attempts, _time.GetElapsedTime(release.FirstFailedAt));
            },
            _metrics.ReleasesResent);
        var renewEvery = options.Value.ConcurrencyLeaseRenewInterval;
        _heartbeat = _time.CreateTimer(static self => ((RedisRateLimiter)self!).OnHeartbeat(), this, renewEvery, renewEvery);
    }

    /// <summary>The TTL of a slot lease: <see cref="RedisOptions.ConcurrencyLeaseTtl"/>, at most <see cref="RateLimitingOptions.ConcurrencySlotTtl"/>.</summary>
    private TimeSpan LeaseTtl
    {
        get
        {
            var cap = _rateLimits.CurrentValue.ConcurrencySlotTtl;
            return cap < _leaseTtl ? cap : _leaseTtl;
        }
    }

    /// <summary>Concurrency leases of requests in flight that this replica renews.</summary>
    internal int LeasesInFlight => _leases.Count;

    /// <summary>Releases waiting for a retry.</summary>
    internal ReleaseRetryQueue Retries => _retries;

    /// <inheritdoc/>
    /// <exception cref="RedisException">Redis is unreachable or failed the script.</exception>
    /// <exception cref="TimeoutException">Redis did not answer within <see cref="RedisOptions.OperationTimeout"/>.</exception>
    public async ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        RateLimitConventions.ThrowIfInvalid(request);
        cancellationToken.ThrowIfCancellationRequested();
        var count = RateLimitConventions.CountRules(request);
        var outcomes = new RateLimitRuleOutcome[count];
        if (count == 0)
        {
            return RateLimitConventions.CreateDecision(request, outcomes, this);
        }

        // Releases of this org's earlier requests that are still waiting ride along (they run first in the script).
        var carried = _pendingReleases.Take(request.HashTag);
        var carriedCount = carried?.Operations.Count ?? 0;
        var keys = new RedisKey[count + carriedCount];
        var args = new RedisValue[4 + (3 * count) + (ReleaseOperation.ArgumentCount * carriedCount)];
        args[0] = request.RequestId;
        args[1] = request.Tokens;
        args[2] = Math.Max(1, RateLimitConventions.ToMicroseconds(LeaseTtl));
        args[3] = carriedCount;
        var i = 0;
        var keySets = new PartitionKeys[request.Partitions.Count];
        for (var p = 0; p < request.Partitions.Count; p++)
        {
            var partition = request.Partitions[p];
            var partitionKeys = keySets[p] = KeysOf(request.HashTag, partition, request.Ephemeral);
            for (var r = 0; r < partition.Rules.Count; r++)
            {
                var rule = partition.Rules[r];
                keys[i] = partitionKeys.Keys[r];
                args[4 + (3 * i)] = ClassCode(rule.Class);
                args[5 + (3 * i)] = rule.Quota;
                args[6 + (3 * i)] = RateLimitConventions.ToMicroseconds(rule.Window);
                i++;
            }
        }

        if (carried is not null)
        {
            ReleaseOperation.Write(carried.Operations, keys, count, args, 4 + (3 * count));
        }

        RateLimitDecision decision;
        try
        {
            var result = await RedisCalls.WithTimeout(
                EvaluateAsync(RedisRateLimitScripts.AcquireSha1, RedisRateLimitScripts.Acquire, keys, args),
                _timeout,
                cancellationToken).ConfigureAwait(false);
            decision = Decide(request, result, outcomes, keySets);
        }
        catch (Exception ex)
        {
            // The script may have run, or may still run when Redis wakes up (it was on the socket): free the slots it
            // may take after it, and retry the releases it carried.
            CompensateAbandonedAcquire(request, keySets, ex);
            if (carried is not null)
            {
                OnReleaseFailed(carried, ex);
            }

            throw;
        }
        finally
        {
            // Applied, or queued for retry: either way their callers need not wait any longer.
            carried?.Completion.TrySetResult();
        }

        if (decision.IsAllowed)
        {
            TrackLease(request, keySets);
        }

        return decision;
    }

    /// <summary>Reads the acquire script's answer into a decision.</summary>
    private RateLimitDecision Decide(RateLimitRequest request, RedisResult result, RateLimitRuleOutcome[] outcomes, PartitionKeys[] keySets)
    {
        var count = outcomes.Length;
        var values = (RedisResult[])result!;
        if (values.Length != 1 + (4 * count))
        {
            throw new RedisException($"The rate limit script returned {values.Length} values for {count} rules.");
        }

        var i = 0;
        var observedAt = _time.GetTimestamp();
        for (var p = 0; p < request.Partitions.Count; p++)
        {
            var partition = request.Partitions[p];
            for (var r = 0; r < partition.Rules.Count; r++)
            {
                var rule = partition.Rules[r];
                var o = 1 + (4 * i);
                var allowed = (long)values[o] == 1;
                var remaining = (long)values[o + 1];
                var retryAfter = !allowed && rule.Class == RateLimitClass.Concurrency
                    ? RateLimitConventions.ConcurrencyRetryAfter
                    : RateLimitConventions.FromMicroseconds((long)values[o + 3]);
                outcomes[i] = new RateLimitRuleOutcome(allowed, remaining, RateLimitConventions.FromMicroseconds((long)values[o + 2]), retryAfter);
                if (rule.Class == RateLimitClass.Concurrency)
                {
                    keySets[p].ObserveSlotsLeft(r, allowed ? remaining : 0, observedAt);
                }

                i++;
            }
        }

        return RateLimitConventions.CreateDecision(request, outcomes, this);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// <para>The release's operations (free the request's slots, settle its token rules) wait up to
    /// <see cref="RedisOptions.ReleaseDelay"/>: the next acquire of the same hash tag on this replica carries them in
    /// its own script, where they run before its decision; if none comes in time, every waiting release of that hash
    /// tag goes in one script of its own. A release goes at once when the delay is zero, and when it frees a
    /// concurrency slot of a rule that this replica last saw near its cap (or not in the last second).</para>
    /// <para>The returned task completes once the operations ran in Redis, or failed (logged; the concurrency ones are
    /// then retried in the background until they land or one lease TTL has passed); it never faults. It does not wait for <paramref name="cancellationToken"/>: a client that hung up must
    /// still free its slot.</para>
    /// </remarks>
    public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        var request = lease.Request;
        // No more renewals: from now on the slot lives at most one lease TTL, whatever happens to this release.
        _leases.Remove(request);
        var delta = (long)actualTokens - request.Tokens;
        var count = 0;
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            count += Settles(rule, delta) ? 1 : 0;
        }

        if (count == 0)
        {
            return ValueTask.CompletedTask;
        }

        var operations = new ReleaseOperation[count];
        var i = 0;
        var mayWait = _releaseDelay > TimeSpan.Zero && !_disposed;
        var now = _time.GetTimestamp();
        for (var p = 0; p < request.Partitions.Count; p++)
        {
            var partition = request.Partitions[p];
            var partitionKeys = KeysOf(request.HashTag, partition, request.Ephemeral);
            for (var r = 0; r < partition.Rules.Count; r++)
            {
                var rule = partition.Rules[r];
                if (Settles(rule, delta))
                {
                    if (rule.Class == RateLimitClass.Concurrency && !partitionKeys.HasSlotsToSpare(r, rule.Quota, now, _time))
                    {
                        mayWait = false;
                    }

                    operations[i++] = new ReleaseOperation(
                        partitionKeys.Keys[r],
                        ClassCode(rule.Class),
                        rule.Quota,
                        RateLimitConventions.ToMicroseconds(rule.Window),
                        request.RequestId,
                        delta);
                }
            }
        }

        // At once: when configured so; after disposal (requests still finishing during shutdown nothing would flush
        // a waiting release); and when a slot it frees may be what another replica's next request needs.
        if (!mayWait)
        {
            return new ValueTask(SendReleasesAsync(new ReleaseBatch(request.HashTag, [.. operations], new TaskCompletionSource())));
        }

        var applied = _pendingReleases.Add(request.HashTag, operations);
        ScheduleFlush();
        return new ValueTask(applied);
    }

    /// <summary>
    /// Stops the lease heartbeat, sends every waiting release now and tries every release waiting for a retry once
    /// more; releases after this go at once (and are not retried). Bounded by about twice
    /// <see cref="RedisOptions.OperationTimeout"/>.
    /// </summary>
    /// <returns>A task that completes when the releases were applied or given up.</returns>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _heartbeat.DisposeAsync().ConfigureAwait(false);
        await FlushAsync().ConfigureAwait(false);
        await _retries.StopAsync().ConfigureAwait(false);
        _metrics.Dispose();
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _heartbeat.Dispose();
        // Bounded: every send gives up after the operation timeout.
        FlushAsync().GetAwaiter().GetResult();
        _retries.StopAsync().GetAwaiter().GetResult();
        _metrics.Dispose();
    }

    /// <summary>Starts one delayed flush unless one is already on its way.</summary>
    private void ScheduleFlush()
    {
        if (Volatile.Read(ref _flushScheduled) == 0 && Interlocked.Exchange(ref _flushScheduled, 1) == 0)
        {
            _ = FlushLaterAsync();
        }
    }

    private async Task FlushLaterAsync()
    {
        try
        {
            await Task.Delay(_releaseDelay, _time).ConfigureAwait(false);
        }
        finally
        {
            // Cleared before the flush takes anything: a release added from now on schedules the next flush.
            Volatile.Write(ref _flushScheduled, 0);
        }

        await FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Sends every hash tag's waiting releases, one script per hash tag, all at once.</summary>
    private Task FlushAsync()
    {
        List<Task>? sends = null;
        foreach (var batch in _pendingReleases.TakeAll())
        {
            (sends ??= []).Add(SendReleasesAsync(batch));
        }

        return sends is null ? Task.CompletedTask : Task.WhenAll(sends);
    }

    /// <summary>One release script for <paramref name="batch"/>'s operations; completes the batch whatever happens. Never throws.</summary>
    private async Task SendReleasesAsync(ReleaseBatch batch)
    {
        var operations = batch.Operations;
        var keys = new RedisKey[operations.Count];
        var args = new RedisValue[ReleaseOperation.ArgumentCount * operations.Count];
        ReleaseOperation.Write(operations, keys, 0, args, 0);
        try
        {
            await RedisCalls.WithTimeout(
                EvaluateAsync(RedisRateLimitScripts.ReleaseSha1, RedisRateLimitScripts.Release, keys, args),
                _timeout,
                CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Any failure (Redis down or slow, the connection already disposed at shutdown) queues a retry; this runs
            // unobserved from the flush, so nothing may escape.
            OnReleaseFailed(batch, ex);
        }
        finally
        {
            batch.Completion.TrySetResult();
        }
    }

    /// <summary>Sends one retry script (one hash tag's concurrency operations); throws when it did not land.</summary>
    private Task SendRetryAsync(string hashTag, List<ReleaseOperation> operations)
    {
        var keys = new RedisKey[operations.Count];
        var args = new RedisValue[ReleaseOperation.ArgumentCount * operations.Count];
        ReleaseOperation.Write(operations, keys, 0, args, 0);
        return RedisCalls.WithTimeout(
            EvaluateAsync(RedisRateLimitScripts.ReleaseSha1, RedisRateLimitScripts.Release, keys, args),
            _timeout,
            CancellationToken.None);
    }

    /// <summary>
    /// A release that may not have reached Redis: one warning per request, and its concurrency operations queued for
    /// retry (after disposal, or when the queue has stopped, they are given up: the slots expire with their lease).
    /// </summary>
    private void OnReleaseFailed(ReleaseBatch batch, Exception exception)
    {
        var failedAt = _time.GetTimestamp();
        foreach (var (requestId, slots) in SlotOperationsByRequest(batch.Operations))
        {
            Log.ReleaseFailed(_logger, requestId, LeaseTtl, exception);
            if (slots.Length == 0)
            {
                continue;
            }

            _metrics.ReleaseFailed();
            if (_disposed || !_retries.Add(new RetriedRelease(batch.HashTag, requestId, slots, failedAt)))
            {
                _metrics.ReleaseAbandoned();
                Log.ReleaseAbandoned(_logger, requestId, 1, TimeSpan.Zero);
            }
        }
    }

    /// <summary>Each request's concurrency operations, in the order the requests come (a request's operations are adjacent).</summary>
    private static List<(string RequestId, ReleaseOperation[] Slots)> SlotOperationsByRequest(List<ReleaseOperation> operations)
    {
        var byRequest = new List<(string, ReleaseOperation[])>();
        var start = 0;
        for (var j = 1; j <= operations.Count; j++)
        {
            if (j == operations.Count || !string.Equals(operations[j].RequestId, operations[start].RequestId, StringComparison.Ordinal))
            {
                var slots = operations.GetRange(start, j - start).Where(static o => o.ClassCode == RedisRateLimitScripts.ConcurrencyCode).ToArray();
                byRequest.Add((operations[start].RequestId, slots));
                start = j;
            }
        }

        return byRequest;
    }

    /// <summary>
    /// The keys of <paramref name="partition"/>'s rules, in rule order. Every request of a key names the same keys,
    /// so they are built once per partition and rule names (12 strings per request otherwise), in a table that is
    /// emptied when it reaches <see cref="MaxCachedPartitions"/> entries. An <paramref name="ephemeral"/> partition's
    /// keys are built each time and never cached: a flood of them must not empty the table customers' keys use.
    /// </summary>
    private PartitionKeys KeysOf(string hashTag, RateLimitPartition partition, bool ephemeral)
    {
        var subject = (hashTag, partition.Scope, partition.Id);
        if (!ephemeral && _partitionKeys.TryGetValue(subject, out var cached) && SameNames(cached.Names, partition.Rules))
        {
            return cached;
        }

        var names = new string[partition.Rules.Count];
        var keys = new RedisKey[names.Length];
        for (var r = 0; r < names.Length; r++)
        {
            names[r] = partition.Rules[r].Name;
            keys[r] = GetKey(hashTag, partition.Scope, partition.Id, names[r]);
        }

        var created = new PartitionKeys(names, keys);
        if (ephemeral)
        {
            return created;
        }

        if (_partitionKeys.Count >= MaxCachedPartitions)
        {
            _partitionKeys.Clear();
        }

        _partitionKeys[subject] = created;
        return created;

        static bool SameNames(string[] names, IReadOnlyList<RateLimitRule> rules)
        {
            if (names.Length != rules.Count)
            {
                return false;
            }

            for (var r = 0; r < names.Length; r++)
            {
                if (!string.Equals(names[r], rules[r].Name, StringComparison.Ordinal))
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>The Redis key of one rule's state: <c>{prefix}rl:{hashTag}:{scope}:{id}:{rule}</c> with each part escaped.</summary>
    /// <param name="hashTag">The request's hash tag (the org id).</param>
    /// <param name="scope">The partition's scope.</param>
    /// <param name="id">The partition's id.</param>
    /// <param name="rule">The rule's name.</param>
    /// <returns>The key.</returns>
    public RedisKey GetKey(string hashTag, string scope, string id, string rule)
    {
        // One exact-size string per key (no StringBuilder): this runs for every rule of every request.
        var length = _prefix.Length + 4 + EscapedLength(hashTag) + 2 + EscapedLength(scope) + 1 + EscapedLength(id) + 1 + EscapedLength(rule);
        return string.Create(length, (_prefix, hashTag, scope, id, rule), static (span, parts) =>
        {
            var at = Append(span, 0, parts._prefix);
            at = Append(span, at, "rl:{");
            at = AppendEscaped(span, at, parts.hashTag);
            at = Append(span, at, "}:");
            at = AppendEscaped(span, at, parts.scope);
            span[at++] = ':';
            at = AppendEscaped(span, at, parts.id);
            span[at++] = ':';
            AppendEscaped(span, at, parts.rule);
        });
    }

    /// <summary>Runs a script by its SHA-1 (EVALSHA); when Redis does not know it (a restart or SCRIPT FLUSH), by its text once.</summary>
    private async Task<RedisResult> EvaluateAsync(byte[] sha1, string script, RedisKey[] keys, RedisValue[] args)
    {
        var db = _redis.GetDatabase();
        try
        {
            return await db.ScriptEvaluateAsync(sha1, keys, args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            // EVAL also caches the script in Redis, so the next call is an EVALSHA again.
            return await db.ScriptEvaluateAsync(script, keys, args, CommandFlags.NoScriptCache).ConfigureAwait(false);
        }
    }

    private static int EscapedLength(string value)
    {
        var length = value.Length;
        foreach (var c in value)
        {
            if (c is '%' or ':' or '{' or '}')
            {
                length += 2;
            }
        }

        return length;
    }

    private static int Append(Span<char> span, int at, string value)
    {
        value.CopyTo(span[at..]);
        return at + value.Length;
    }

    private static int AppendEscaped(Span<char> span, int at, string value)
    {
        foreach (var c in value)
        {
            var escape = c switch
            {
                '%' => "%25",
                ':' => "%3A",
                '{' => "%7B",
                '}' => "%7D",
                _ => null,
            };
            if (escape is null)
            {
                span[at++] = c;
            }
            else
            {
                at = Append(span, at, escape);
            }
        }

        return at;
    }

    /// <summary>Whether releasing touches this rule: concurrency slots always, token rules when the actual count differs from the charge.</summary>
    private static bool Settles(RateLimitRule rule, long delta) =>
        rule.Class == RateLimitClass.Concurrency || (rule.Class == RateLimitClass.Tokens && delta != 0);

    /// <summary>
    /// One partition's rule names and keys, and for its concurrency rules what this replica last heard from Redis:
    /// how many slots were left after its latest decision, and when.
    /// </summary>
    private sealed class PartitionKeys(string[] names, RedisKey[] keys)
    {
        /// <summary>How recent the last decision must be for a release to wait on it.</summary>
        private static readonly TimeSpan MaxObservationAge = TimeSpan.FromSeconds(1);

        private readonly long[] _slotsLeft = new long[keys.Length];
        private readonly long[] _observedAt = new long[keys.Length];

        public string[] Names { get; } = names;

        public RedisKey[] Keys { get; } = keys;

        public void ObserveSlotsLeft(int rule, long slotsLeft, long timestamp)
        {
            Volatile.Write(ref _slotsLeft[rule], slotsLeft);
            Volatile.Write(ref _observedAt[rule], timestamp);
        }

        /// <summary>
        /// Whether freeing a slot of this rule a few milliseconds late is very unlikely to refuse anyone (other
        /// replicas would have to fill the spare slots within those milliseconds): this replica's latest
        /// decision, under a second old, left at least max(2, a tenth of the cap) slots free. Near the cap (or with no
        /// recent decision) the release goes at once, so a client at its cap whose next request reaches another
        /// replica finds the slot free.
        /// </summary>
        public bool HasSlotsToSpare(int rule, long quota, long now, TimeProvider time)
        {
            var observedAt = Volatile.Read(ref _observedAt[rule]);
            return observedAt != 0
                && time.GetElapsedTime(observedAt, now) <= MaxObservationAge
                && Volatile.Read(ref _slotsLeft[rule]) >= Math.Max(2, quota / 10);
        }
    }

    private static string ClassCode(RateLimitClass value) => value switch
    {
        RateLimitClass.Requests => RedisRateLimitScripts.RequestsCode,
        RateLimitClass.Tokens => RedisRateLimitScripts.TokensCode,
        _ => RedisRateLimitScripts.ConcurrencyCode,
    };
}
