using System.Collections.Concurrent;

namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// What <see cref="FallbackRateLimiter"/> carries across the fail-open transitions, per partition and rule, so that
/// neither entering nor leaving degraded mode grants a fresh burst.
/// </summary>
/// <remarks>
/// <para><b>Healthy.</b> Each shared decision writes, for each rule, when the shared rule is full again (observed
/// time + <see cref="RateLimitCounter.Reset"/>), and for concurrency rules counts this replica's shared leases still
/// open. A lookup and a write per rule; nothing is allocated once a partition is known.</para>
/// <para><b>Failover.</b> The first fallback decision of a rule in an outage seeds the fallback's state so that it is
/// full again at the same instant as the shared rule last said. The time to full is the fraction of the quota in use,
/// so the seed is right whatever <see cref="RateLimitingOptions.FallbackReplicas"/> divides the quota by. Concurrency
/// counts this replica's requests the shared limiter admitted and that are still in flight against the local cap:
/// exact for this replica, where the last shared in-flight count (all replicas) divided by the replicas would be a
/// guess that no release ever corrects.</para>
/// <para><b>Recovery.</b> The shared store did not see what the fallback admitted (a restarted Redis even forgot
/// everything), so every rule the fallback decided stays <i>recovering</i>: a request the shared limiter admits must
/// also pass the fallback's state for it (quota divided as in the outage, charged when it passes). A refusal there
/// stands even though the shared store was charged: that charge stands in for the admissions it never saw. A
/// requests/tokens rule recovers when the shared rule is as far from full as the local one, when the local one is
/// full, or once the shared store was charged one window's worth for requests the local state refused (the most the
/// outage can owe). A concurrency rule checks that the shared store has room for this replica's fallback leases
/// still open, and recovers when none is.</para>
/// <para>Memory: at most <c>capacity</c> rules. A sweep at most every 10 s (and when full) drops rules that carry
/// nothing (shared full, no open lease, not recovering) and ends recoveries whose local state is gone. When every
/// remembered rule still matters, new rules are not remembered: they fail over from a full quota, as before.</para>
/// </remarks>
internal sealed class FallbackCarryOver
{
    /// <summary>Rules remembered at most: about 6,000 keys with four rules each plus their orgs.</summary>
    public const int DefaultCapacity = 50_000;

    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(10);

    /// <summary>When full, a sweep at most this often, so that a flood of new keys does not sweep on every request.</summary>
    private static readonly TimeSpan FullSweepInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<RuleKey, RuleMemory> _rules = new();
    private readonly InProcessRateLimiter _fallback;
    private readonly TimeProvider _time;
    private readonly int _capacity;
    private readonly Action _caughtUp;
    private int _count;
    private int _recovering;
    private int _outage;
    private long _nextSweep;
    private long _nextFullSweep;

    /// <param name="fallback">The fallback whose state is seeded and checked.</param>
    /// <param name="time">The clock.</param>
    /// <param name="capacity">Rules remembered at most.</param>
    /// <param name="caughtUp">Called when the last recovering rule has caught up.</param>
    public FallbackCarryOver(InProcessRateLimiter fallback, TimeProvider time, int capacity, Action caughtUp)
    {
        _fallback = fallback;
        _time = time;
        _capacity = capacity;
        _caughtUp = caughtUp;
        _nextSweep = time.GetTimestamp() + Ticks(SweepInterval);
    }

    /// <summary>Rules remembered now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Rules the fallback decided that the shared store has not caught up with yet.</summary>
    public int Recovering => Volatile.Read(ref _recovering);

    /// <summary>Degraded mode starts: each rule is seeded again at its first fallback decision.</summary>
    public void BeginOutage() => Interlocked.Increment(ref _outage);

    /// <summary>
    /// Records a shared decision. Returns true when it admitted the request and a rule of it is still recovering
    /// (then call <see cref="CheckRecovering"/>).
    /// </summary>
    public bool ObserveShared(RateLimitRequest request, RateLimitDecision decision)
    {
        if (decision.Counters.Count != RateLimitConventions.CountRules(request))
        {
            return false;
        }

        var now = _time.GetTimestamp();
        MaybeSweep(now);
        var recovering = false;
        var i = 0;
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            var memory = GetOrAdd(request.HashTag, partition, rule);
            var counter = decision.Counters[i++];
            if (memory is null)
            {
                continue;
            }

            if (rule.Class == RateLimitClass.Concurrency)
            {
                if (decision.IsAllowed)
                {
                    Interlocked.Increment(ref memory.OpenSharedLeases);
                }
            }
            else
            {
                Volatile.Write(ref memory.SharedFullAt, now + Ticks(counter.Reset));
            }

            recovering |= Volatile.Read(ref memory.Recovering) != 0;
        }

        return recovering && decision.IsAllowed;
    }

    /// <summary>A lease the shared limiter admitted has ended (released, or refused after all by <see cref="CheckRecovering"/>).</summary>
    public void ReleasedShared(RateLimitRequest request)
    {
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            if (rule.Class == RateLimitClass.Concurrency && _rules.TryGetValue(new RuleKey(partition.Scope, partition.Id, rule.Name), out var memory))
            {
                var open = Volatile.Read(ref memory.OpenSharedLeases);
                while (open > 0)
                {
                    var seen = Interlocked.CompareExchange(ref memory.OpenSharedLeases, open - 1, open);
                    if (seen == open)
                    {
                        break;
                    }

                    open = seen;
                }
            }
        }
    }

    /// <summary>
    /// Before a fallback decision: seeds each requests/tokens rule once per outage from the last shared state, marks
    /// every rule recovering, and fills <paramref name="held"/> with this replica's open shared leases per
    /// concurrency rule (request order).
    /// </summary>
    public void PrepareFallback(RateLimitRequest request, Span<int> held)
    {
        var outage = Volatile.Read(ref _outage);
        var now = _time.GetTimestamp();
        var i = 0;
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            var memory = GetOrAdd(request.HashTag, partition, rule);
            if (memory is not null)
            {
                if (rule.Class == RateLimitClass.Concurrency)
                {
                    held[i] = (int)Math.Min(int.MaxValue, Volatile.Read(ref memory.OpenSharedLeases));
                }
                else if (Volatile.Read(ref memory.SeededOutage) != outage)
                {
                    // Seeding twice is harmless (it only raises the state), so the flag is set without a race check.
                    var untilFull = Volatile.Read(ref memory.SharedFullAt) - now;
                    if (untilFull > 0)
                    {
                        _fallback.Seed(request.HashTag, partition.Scope, partition.Id, rule.Name, _time.GetElapsedTime(now, now + untilFull));
                    }

                    Volatile.Write(ref memory.SeededOutage, outage);
                }

                if (Interlocked.Exchange(ref memory.Recovering, 1) == 0)
                {
                    Interlocked.Exchange(ref memory.PushedMicroseconds, 0);
                    Interlocked.Increment(ref _recovering);
                }
            }

            i++;
        }
    }

    /// <summary>
    /// After the shared limiter admitted a request with recovering rules: checks (and charges) the fallback's state
    /// for them. Returns null when the request stays admitted, else the refusal (the shared lease must then be
    /// released). <paramref name="divided"/> is the request with the quotas the fallback used.
    /// </summary>
    public RateLimitDecision? CheckRecovering(RateLimitRequest request, RateLimitRequest divided, RateLimitDecision shared)
    {
        var count = shared.Counters.Count;
        var outcomes = new RateLimitRuleOutcome[count];
        var memories = new RuleMemory?[count];
        var local = new List<(int Index, RateLimitPartition Partition, RateLimitRule Rule)>();
        var refused = false;
        var i = 0;
        foreach (var (partition, rule) in divided.EnumerateRules())
        {
            var counter = shared.Counters[i];
            outcomes[i] = new RateLimitRuleOutcome(true, counter.Remaining, counter.Reset, TimeSpan.Zero);
            if (_rules.TryGetValue(new RuleKey(partition.Scope, partition.Id, rule.Name), out var memory) && Volatile.Read(ref memory.Recovering) != 0)
            {
                memories[i] = memory;
                if (rule.Class == RateLimitClass.Concurrency)
                {
                    // Shared in flight is quota − remaining; this replica's fallback leases come on top of it.
                    var held = _fallback.HeldSlots(request.HashTag, partition.Scope, partition.Id);
                    if (held == 0)
                    {
                        EndRecovery(memory);
                    }
                    else if (counter.Remaining < held)
                    {
                        outcomes[i] = new RateLimitRuleOutcome(false, 0, TimeSpan.Zero, RateLimitConventions.ConcurrencyRetryAfter);
                        refused = true;
                    }
                }
                else if (_fallback.IsFull(request.HashTag, partition.Scope, partition.Id, rule.Name))
                {
                    EndRecovery(memory);
                }
                else
                {
                    local.Add((i, partition, rule));
                }
            }

            i++;
        }

        if (!refused && local.Count > 0)
        {
            var partitions = new List<RateLimitPartition>();
            foreach (var (_, partition, rule) in local)
            {
                if (partitions.Count > 0 && partitions[^1].Scope == partition.Scope && partitions[^1].Id == partition.Id)
                {
                    ((List<RateLimitRule>)partitions[^1].Rules).Add(rule);
                }
                else
                {
                    partitions.Add(partition with { Rules = new List<RateLimitRule> { rule } });
                }
            }

            var decision = _fallback.Acquire(divided with { Partitions = partitions });
            for (var l = 0; l < local.Count; l++)
            {
                var (index, _, rule) = local[l];
                var localCounter = decision.Counters[l];
                var memory = memories[index]!;
                if (!decision.IsAllowed)
                {
                    var limitedBy = ReferenceEquals(decision.LimitedBy, localCounter);
                    outcomes[index] = new RateLimitRuleOutcome(!limitedBy, localCounter.Remaining, localCounter.Reset, limitedBy ? decision.RetryAfter : TimeSpan.Zero);

                    // The shared store was charged for a request the outage's state refuses: that pays back part of
                    // what the shared store missed; one window's worth is the most it can have missed.
                    var cost = rule.Class == RateLimitClass.Tokens ? request.Tokens : 1;
                    var window = RateLimitConventions.ToMicroseconds(rule.Window);
                    var pushed = Interlocked.Add(ref memory.PushedMicroseconds, window * cost / shared.Counters[index].Rule.Quota);
                    if (pushed >= window)
                    {
                        EndRecovery(memory);
                    }
                }

                if (shared.Counters[index].Reset >= localCounter.Reset)
                {
                    EndRecovery(memory);
                }
            }

            refused = !decision.IsAllowed;
        }

        return refused ? RateLimitConventions.CreateDecision(request, outcomes, null) : null;
    }

    private void EndRecovery(RuleMemory memory)
    {
        if (Interlocked.Exchange(ref memory.Recovering, 0) != 0 && Interlocked.Decrement(ref _recovering) == 0)
        {
            _caughtUp();
        }
    }

    private RuleMemory? GetOrAdd(string hashTag, RateLimitPartition partition, RateLimitRule rule)
    {
        var key = new RuleKey(partition.Scope, partition.Id, rule.Name);
        if (_rules.TryGetValue(key, out var memory))
        {
            return memory;
        }

        if (Volatile.Read(ref _count) >= _capacity)
        {
            var now = _time.GetTimestamp();
            var due = Volatile.Read(ref _nextFullSweep);
            if (now >= due && Interlocked.CompareExchange(ref _nextFullSweep, now + Ticks(FullSweepInterval), due) == due)
            {
                Sweep(now);
            }

            if (Volatile.Read(ref _count) >= _capacity)
            {
                return null;
            }
        }

        memory = new RuleMemory(hashTag, rule.Class == RateLimitClass.Concurrency);
        if (_rules.TryAdd(key, memory))
        {
            Interlocked.Increment(ref _count);
            return memory;
        }

        return _rules.TryGetValue(key, out var existing) ? existing : null;
    }

    private void MaybeSweep(long now)
    {
        var due = Volatile.Read(ref _nextSweep);
        if (now >= due && Interlocked.CompareExchange(ref _nextSweep, now + Ticks(SweepInterval), due) == due)
        {
            Sweep(now);
        }
    }

    private void Sweep(long now)
    {
        Volatile.Write(ref _nextSweep, now + Ticks(SweepInterval));
        foreach (var (key, memory) in _rules)
        {
            if (Volatile.Read(ref memory.Recovering) != 0)
            {
                var localGone = memory.IsConcurrency
                    ? _fallback.HeldSlots(memory.HashTag, key.Scope, key.Id) == 0
                    : _fallback.IsFull(memory.HashTag, key.Scope, key.Id, key.Rule);
                if (!localGone)
                {
                    continue;
                }

                EndRecovery(memory);
            }

            if (Volatile.Read(ref memory.SharedFullAt) <= now && Volatile.Read(ref memory.OpenSharedLeases) == 0
                && _rules.TryRemove(new KeyValuePair<RuleKey, RuleMemory>(key, memory)))
            {
                Interlocked.Decrement(ref _count);
            }
        }
    }

    private long Ticks(TimeSpan value) => (long)(value.TotalSeconds * _time.TimestampFrequency);

    private readonly record struct RuleKey(string Scope, string Id, string Rule);

    /// <summary>One rule's carried state; fields are read and written with Volatile/Interlocked.</summary>
    private sealed class RuleMemory(string hashTag, bool isConcurrency)
    {
        public string HashTag { get; } = hashTag;

        public bool IsConcurrency { get; } = isConcurrency;

        /// <summary>Timestamp at which the shared rule was, as last seen, back to its full quota.</summary>
        public long SharedFullAt;

        /// <summary>Concurrency: this replica's requests the shared limiter admitted, not yet released.</summary>
        public long OpenSharedLeases;

        /// <summary>The outage in which the fallback was last seeded from <see cref="SharedFullAt"/>.</summary>
        public int SeededOutage;

        /// <summary>1 while the fallback's state of this rule still applies after an outage.</summary>
        public int Recovering;

        /// <summary>Shared charges (in µs of the shared rule) for requests the local state refused during recovery.</summary>
        public long PushedMicroseconds;
    }
}
