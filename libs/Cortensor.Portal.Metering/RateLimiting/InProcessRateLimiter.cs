using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// An <see cref="IRateLimiter"/> that keeps its state in this process: exact for one replica, and the per-replica
/// fallback of <see cref="FallbackRateLimiter"/> while the shared store is down.
/// </summary>
/// <remarks>
/// <para>Requests and tokens rules use <see cref="Gcra"/>; concurrency rules keep one slot per request id per
/// partition, dropped on <see cref="ReleaseAsync"/> or after <see cref="RateLimitingOptions.ConcurrencySlotTtl"/>.
/// Every rule of every partition is decided together under one lock per <see cref="RateLimitRequest.HashTag"/>: if
/// any rule refuses, nothing is charged.</para>
/// <para>Memory is bounded: a rule's state is dropped once it is back to its full quota, a partition's slots once none
/// is held. A sweep of all state runs at most every 10 seconds (of the <see cref="TimeProvider"/>), inline in the
/// call that finds it due.</para>
/// <para>Time is the <see cref="TimeProvider"/>'s monotonic timestamp, so wall-clock jumps do not affect limits.</para>
/// </remarks>
public sealed class InProcessRateLimiter : IRateLimiter
{
    private static readonly long SweepInterval = RateLimitConventions.ToMicroseconds(TimeSpan.FromSeconds(10));

    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private readonly IOptionsMonitor<RateLimitingOptions> _options;
    private readonly TimeProvider _timeProvider;
    private readonly long _origin;
    private readonly RateLimitingMetrics? _metrics;
    private long _nextSweep;

    /// <summary>Creates a limiter.</summary>
    /// <param name="options">Read for <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> at each admission.</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="meterFactory">
    /// When given, decisions are counted on <c>cortensor.ratelimit.decisions</c> with backend <c>local</c>; leave it
    /// null for a limiter used inside another (the fallback of <see cref="FallbackRateLimiter"/>).
    /// </param>
    public InProcessRateLimiter(IOptionsMonitor<RateLimitingOptions> options, TimeProvider timeProvider, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _options = options;
        _timeProvider = timeProvider;
        _origin = timeProvider.GetTimestamp();
        _metrics = meterFactory is null ? null : new RateLimitingMetrics(meterFactory);
    }

    /// <summary>Creates a limiter with fixed options, for tests and tools.</summary>
    /// <param name="options">The options (only <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> is used).</param>
    /// <param name="timeProvider">The clock; <see cref="TimeProvider.System"/> when null.</param>
    public InProcessRateLimiter(RateLimitingOptions options, TimeProvider? timeProvider = null)
        : this(new FixedOptionsMonitor(options ?? throw new ArgumentNullException(nameof(options))), timeProvider ?? TimeProvider.System)
    {
    }

    /// <summary>Rule states and concurrency slots held now (before the next sweep drops expired ones).</summary>
    internal int TrackedEntries
    {
        get
        {
            var count = 0;
            foreach (var bucket in _buckets.Values)
            {
                lock (bucket.Gate)
                {
                    count += bucket.Count;
                }
            }

            return count;
        }
    }

    /// <inheritdoc/>
    public ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        RateLimitConventions.ThrowIfInvalid(request);
        cancellationToken.ThrowIfCancellationRequested();
        var decision = Acquire(request);
        _metrics?.Decision(decision, RateLimitingMetrics.LocalBackend);
        return new ValueTask<RateLimitDecision>(decision);
    }

    /// <inheritdoc/>
    public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        Release(lease.Request, actualTokens);
        return ValueTask.CompletedTask;
    }

    /// <summary>Decides a valid request (no metrics).</summary>
    internal RateLimitDecision Acquire(RateLimitRequest request) => Acquire(request, []);

    /// <summary>
    /// Decides a valid request (no metrics), counting <paramref name="heldElsewhere"/>[i] extra slots against the i-th
    /// rule (request order) when it is a concurrency rule: requests of this replica that another limiter admitted and
    /// that are still in flight.
    /// </summary>
    internal RateLimitDecision Acquire(RateLimitRequest request, ReadOnlySpan<int> heldElsewhere)
    {
        var now = Now();
        MaybeSweep(now);
        var outcomes = new RateLimitRuleOutcome[RateLimitConventions.CountRules(request)];
        var slotExpiry = now + Math.Max(1, RateLimitConventions.ToMicroseconds(_options.CurrentValue.ConcurrencySlotTtl));
        while (true)
        {
            var bucket = _buckets.GetOrAdd(request.HashTag, static _ => new Bucket());
            lock (bucket.Gate)
            {
                if (bucket.Dead)
                {
                    continue;
                }

                Decide(bucket, request, now, slotExpiry, outcomes, heldElsewhere);
                break;
            }
        }

        return RateLimitConventions.CreateDecision(request, outcomes, this);
    }

    /// <summary>Frees the request's slots and settles its token rules.</summary>
    internal void Release(RateLimitRequest request, int actualTokens)
    {
        var now = Now();
        var delta = (long)actualTokens - request.Tokens;
        while (true)
        {
            var bucket = _buckets.GetOrAdd(request.HashTag, static _ => new Bucket());
            lock (bucket.Gate)
            {
                if (bucket.Dead)
                {
                    continue;
                }

                foreach (var (partition, rule) in request.EnumerateRules())
                {
                    if (rule.Class == RateLimitClass.Concurrency)
                    {
                        var slotsKey = new SlotsKey(partition.Scope, partition.Id);
                        if (bucket.Slots.TryGetValue(slotsKey, out var slots) && slots.Remove(request.RequestId) && slots.Count == 0)
                        {
                            bucket.Slots.Remove(slotsKey);
                        }
                    }
                    else if (rule.Class == RateLimitClass.Tokens && delta != 0)
                    {
                        var key = new RuleKey(partition.Scope, partition.Id, rule.Name);
                        var stored = bucket.Tats.GetValueOrDefault(key);
                        var tat = Gcra.Settle(stored, now, rule.Quota, RateLimitConventions.ToMicroseconds(rule.Window), delta);
                        Store(bucket, key, tat, now);
                    }
                }

                return;
            }
        }
    }

    /// <summary>
    /// Raises one rule's state to "full again in <paramref name="untilFull"/>" unless it is already further from full:
    /// the fallback starts from what the shared limiter last said instead of a full quota.
    /// </summary>
    internal void Seed(string hashTag, string scope, string id, string rule, TimeSpan untilFull)
    {
        var now = Now();
        var seeded = GcraTat.At(now + RateLimitConventions.ToMicroseconds(untilFull));
        if (!seeded.IsAfter(now))
        {
            return;
        }

        while (true)
        {
            var bucket = _buckets.GetOrAdd(hashTag, static _ => new Bucket());
            lock (bucket.Gate)
            {
                if (bucket.Dead)
                {
                    continue;
                }

                var key = new RuleKey(scope, id, rule);
                if (!bucket.Tats.GetValueOrDefault(key).IsAfter(seeded.Microseconds))
                {
                    bucket.Tats[key] = seeded;
                }

                return;
            }
        }
    }

    /// <summary>Whether a requests or tokens rule is at its full quota (no state).</summary>
    internal bool IsFull(string hashTag, string scope, string id, string rule)
    {
        if (!_buckets.TryGetValue(hashTag, out var bucket))
        {
            return true;
        }

        lock (bucket.Gate)
        {
            return !bucket.Tats.TryGetValue(new RuleKey(scope, id, rule), out var tat) || !tat.IsAfter(Now());
        }
    }

    /// <summary>Concurrency slots of a partition held now.</summary>
    internal int HeldSlots(string hashTag, string scope, string id)
    {
        if (!_buckets.TryGetValue(hashTag, out var bucket))
        {
            return 0;
        }

        lock (bucket.Gate)
        {
            return bucket.Slots.TryGetValue(new SlotsKey(scope, id), out var slots) ? Prune(slots, Now()) : 0;
        }
    }

    private static void Decide(Bucket bucket, RateLimitRequest request, long now, long slotExpiry, RateLimitRuleOutcome[] outcomes, ReadOnlySpan<int> heldElsewhere)
    {
        var allowed = true;
        var i = 0;
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            if (rule.Class == RateLimitClass.Concurrency)
            {
                var inFlight = bucket.Slots.TryGetValue(new SlotsKey(partition.Scope, partition.Id), out var slots) ? Prune(slots, now) : 0;
                if (i < heldElsewhere.Length)
                {
                    inFlight += heldElsewhere[i];
                }

                outcomes[i] = inFlight < rule.Quota
                    ? new RateLimitRuleOutcome(true, rule.Quota - inFlight - 1, TimeSpan.Zero, TimeSpan.Zero)
                    : new RateLimitRuleOutcome(false, 0, TimeSpan.Zero, RateLimitConventions.ConcurrencyRetryAfter);
            }
            else
            {
                var stored = bucket.Tats.GetValueOrDefault(new RuleKey(partition.Scope, partition.Id, rule.Name));
                var cost = rule.Class == RateLimitClass.Tokens ? request.Tokens : 1;
                outcomes[i] = RateLimitRuleOutcome.FromGcra(Gcra.Evaluate(stored, now, rule.Quota, RateLimitConventions.ToMicroseconds(rule.Window), cost));
            }

            allowed &= outcomes[i].IsAllowed;
            i++;
        }

        i = 0;
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            if (allowed)
            {
                Charge(bucket, request, partition, rule, now, slotExpiry);
            }
            else if (outcomes[i].IsAllowed)
            {
                // Refused elsewhere: this rule reports its unchanged state.
                outcomes[i] = rule.Class == RateLimitClass.Concurrency
                    ? outcomes[i] with { Remaining = outcomes[i].Remaining + 1 }
                    : RateLimitRuleOutcome.FromGcra(Gcra.Peek(
                        bucket.Tats.GetValueOrDefault(new RuleKey(partition.Scope, partition.Id, rule.Name)),
                        now,
                        rule.Quota,
                        RateLimitConventions.ToMicroseconds(rule.Window)));
            }

            i++;
        }
    }

    private static void Charge(Bucket bucket, RateLimitRequest request, RateLimitPartition partition, RateLimitRule rule, long now, long slotExpiry)
    {
        if (rule.Class == RateLimitClass.Concurrency)
        {
            var slotsKey = new SlotsKey(partition.Scope, partition.Id);
            if (!bucket.Slots.TryGetValue(slotsKey, out var slots))
            {
                slots = new Dictionary<string, long>(StringComparer.Ordinal);
                bucket.Slots.Add(slotsKey, slots);
            }

            slots[request.RequestId] = slotExpiry;
            return;
        }

        // Evaluated again rather than kept from the first pass: the same state cannot change in between (we hold the
        // lock), and this keeps the first pass free of writes.
        var key = new RuleKey(partition.Scope, partition.Id, rule.Name);
        var cost = rule.Class == RateLimitClass.Tokens ? request.Tokens : 1;
        var result = Gcra.Evaluate(bucket.Tats.GetValueOrDefault(key), now, rule.Quota, RateLimitConventions.ToMicroseconds(rule.Window), cost);
        Store(bucket, key, result.Tat, now);
    }

    private static void Store(Bucket bucket, RuleKey key, GcraTat tat, long now)
    {
        if (tat.IsAfter(now))
        {
            bucket.Tats[key] = tat;
        }
        else
        {
            bucket.Tats.Remove(key);
        }
    }

    /// <summary>Drops expired slots; returns the slots still held.</summary>
    private static int Prune(Dictionary<string, long> slots, long now)
    {
        foreach (var (requestId, expiry) in slots)
        {
            if (expiry <= now)
            {
                slots.Remove(requestId);
            }
        }

        return slots.Count;
    }

    private long Now() => RateLimitConventions.ToMicroseconds(_timeProvider.GetElapsedTime(_origin));

    private void MaybeSweep(long now)
    {
        var due = Volatile.Read(ref _nextSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + SweepInterval, due) != due)
        {
            return;
        }

        foreach (var (hashTag, bucket) in _buckets)
        {
            lock (bucket.Gate)
            {
                bucket.Prune(now);
                if (bucket.Count == 0)
                {
                    bucket.Dead = true;
                    _buckets.TryRemove(new KeyValuePair<string, Bucket>(hashTag, bucket));
                }
            }
        }
    }

    private readonly record struct RuleKey(string Scope, string Id, string Rule);

    private readonly record struct SlotsKey(string Scope, string Id);

    /// <summary>The state under one hash tag; read and written only under <see cref="Gate"/>.</summary>
    private sealed class Bucket
    {
        public Lock Gate { get; } = new();

        /// <summary>Set (under the lock) when the sweep removed this bucket from the map; a caller that finds it looks again.</summary>
        public bool Dead { get; set; }

        public Dictionary<RuleKey, GcraTat> Tats { get; } = [];

        public Dictionary<SlotsKey, Dictionary<string, long>> Slots { get; } = [];

        public int Count
        {
            get
            {
                var count = Tats.Count;
                foreach (var slots in Slots.Values)
                {
                    count += slots.Count;
                }

                return count;
            }
        }

        public void Prune(long now)
        {
            foreach (var (key, tat) in Tats)
            {
                if (!tat.IsAfter(now))
                {
                    Tats.Remove(key);
                }
            }

            foreach (var (key, slots) in Slots)
            {
                if (InProcessRateLimiter.Prune(slots, now) == 0)
                {
                    Slots.Remove(key);
                }
            }
        }
    }
}

/// <summary>An <see cref="IOptionsMonitor{TOptions}"/> over one fixed value.</summary>
internal sealed class FixedOptionsMonitor(RateLimitingOptions value) : IOptionsMonitor<RateLimitingOptions>
{
    public RateLimitingOptions CurrentValue => value;

    public RateLimitingOptions Get(string? name) => value;

    public IDisposable? OnChange(Action<RateLimitingOptions, string?> listener) => null;
}
