using System.Collections.Concurrent;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.Configuration;
using Cortensor.Portal.Redis.Internal;
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
/// quota; a slot set expires <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> after its last admission, and each
/// slot in it after that TTL too (the backstop for a replica that died mid-request).</para>
/// <para>Failures: <see cref="AcquireAsync"/> throws when Redis is unreachable, answers with an error, or takes longer
/// than <see cref="RedisOptions.OperationTimeout"/> (commands fail fast while disconnected), so that
/// <see cref="FallbackRateLimiter"/> decides locally. <see cref="ReleaseAsync"/> never throws for Redis failures: it logs
/// them, and the slot expires by its TTL.</para>
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
    private int _flushScheduled;
    private volatile bool _disposed;

    /// <summary>Partitions whose keys are kept: about one per active key plus one per org.</summary>
    internal const int MaxCachedPartitions = 10_000;

    /// <param name="redis">The shared connection.</param>
    /// <param name="options">Key prefix and operation timeout.</param>
    /// <param name="rateLimits">Read for <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> at each admission.</param>
    /// <param name="logger">Logs failed releases.</param>
    /// <param name="time">Times <see cref="RedisOptions.ReleaseDelay"/>; the system clock when null.</param>
    public RedisRateLimiter(
        IConnectionMultiplexer redis,
        IOptions<RedisOptions> options,
        IOptionsMonitor<RateLimitingOptions> rateLimits,
        ILogger<RedisRateLimiter> logger,
        TimeProvider? time = null)
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
        _time = time ?? TimeProvider.System;
    }

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
        args[2] = Math.Max(1, RateLimitConventions.ToMicroseconds(_rateLimits.CurrentValue.ConcurrencySlotTtl));
        args[3] = carriedCount;
        var i = 0;
        var keySets = new PartitionKeys[request.Partitions.Count];
        for (var p = 0; p < request.Partitions.Count; p++)
        {
            var partition = request.Partitions[p];
            var partitionKeys = keySets[p] = KeysOf(request.HashTag, partition);
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

        RedisResult result;
        if (carried is null)
        {
            result = await RedisCalls.WithTimeout(
                EvaluateAsync(RedisRateLimitScripts.AcquireSha1, RedisRateLimitScripts.Acquire, keys, args),
                _timeout,
                cancellationToken).ConfigureAwait(false);
        }
        else
        {
            ReleaseOperation.Write(carried.Operations, keys, count, args, 4 + (3 * count));
            try
            {
                result = await RedisCalls.WithTimeout(
                    EvaluateAsync(RedisRateLimitScripts.AcquireSha1, RedisRateLimitScripts.Acquire, keys, args),
                    _timeout,
                    cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                LogLostReleases(carried, ex);
                throw;
            }
            finally
            {
                // Applied, or lost to a Redis failure (logged): either way nothing more will be done for them.
                carried.Completion.TrySetResult();
            }
        }

        var values = (RedisResult[])result!;
        if (values.Length != 1 + (4 * count))
        {
            throw new RedisException($"The rate limit script returned {values.Length} values for {count} rules.");
        }

        i = 0;
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
    /// <para>The returned task completes once the operations ran in Redis (or were lost to a Redis failure, which is
    /// logged); it never faults. It does not wait for <paramref name="cancellationToken"/>: a client that hung up must
    /// still free its slot.</para>
    /// </remarks>
    public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        var request = lease.Request;
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
            var partitionKeys = KeysOf(request.HashTag, partition);
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
            return new ValueTask(SendReleasesAsync(new ReleaseBatch([.. operations], new TaskCompletionSource())));
        }

        var applied = _pendingReleases.Add(request.HashTag, operations);
        ScheduleFlush();
        return new ValueTask(applied);
    }

    /// <summary>Sends every waiting release now; releases after this go at once. Bounded by <see cref="RedisOptions.OperationTimeout"/>.</summary>
    /// <returns>A task that completes when the releases were applied or given up.</returns>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await FlushAsync().ConfigureAwait(false);
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        // Bounded: every send gives up after the operation timeout.
        FlushAsync().GetAwaiter().GetResult();
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
            // Any failure (Redis down or slow, the connection already disposed at shutdown) only costs the slots'
            // TTL; this runs unobserved from the flush, so nothing may escape.
            LogLostReleases(batch, ex);
        }
        finally
        {
            batch.Completion.TrySetResult();
        }
    }

    /// <summary>One warning per request whose release may not have reached Redis (its slots then expire by their TTL).</summary>
    private void LogLostReleases(ReleaseBatch batch, Exception exception)
    {
        string? last = null;
        foreach (var operation in batch.Operations)
        {
            if (!string.Equals(last, operation.RequestId, StringComparison.Ordinal))
            {
                last = operation.RequestId;
                Log.ReleaseFailed(_logger, operation.RequestId, exception);
            }
        }
    }

    /// <summary>
    /// The keys of <paramref name="partition"/>'s rules, in rule order. Every request of a key names the same keys,
    /// so they are built once per partition and rule names (12 strings per request otherwise), in a table that is
    /// emptied when it reaches <see cref="MaxCachedPartitions"/> entries.
    /// </summary>
    private PartitionKeys KeysOf(string hashTag, RateLimitPartition partition)
    {
        var subject = (hashTag, partition.Scope, partition.Id);
        if (_partitionKeys.TryGetValue(subject, out var cached) && SameNames(cached.Names, partition.Rules))
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

        if (_partitionKeys.Count >= MaxCachedPartitions)
        {
            _partitionKeys.Clear();
        }

        var created = new PartitionKeys(names, keys);
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
