namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>What a rule counts. Each class has its own behaviour when the shared limiter store is down.</summary>
public enum RateLimitClass
{
    /// <summary>Requests per window (GCRA).</summary>
    Requests,

    /// <summary>Tokens per window (GCRA weighted by tokens).</summary>
    Tokens,

    /// <summary>Requests in flight at once (a slot per request, released when it ends).</summary>
    Concurrency,
}

/// <summary>
/// One limit of one partition. <see cref="RateLimitClass.Requests"/> and <see cref="RateLimitClass.Tokens"/>
/// admit at most <see cref="Quota"/> units per <see cref="Window"/> (GCRA: a full quota may burst, then one unit
/// every Window/Quota). <see cref="RateLimitClass.Concurrency"/> caps in-flight requests (Window unused).
/// </summary>
/// <param name="Name">Short name, unique within the partition: <c>rps</c>, <c>rpm</c>, <c>tpm</c>, <c>concurrency</c>.</param>
/// <param name="Class">What the rule counts.</param>
/// <param name="Quota">Units per window, or in-flight requests for concurrency.</param>
/// <param name="Window">The window (unused for concurrency).</param>
public sealed record RateLimitRule(string Name, RateLimitClass Class, long Quota, TimeSpan Window);

/// <summary>The rules of one counted subject.</summary>
/// <param name="Scope">Kind of subject: <c>key</c> or <c>org</c>.</param>
/// <param name="Id">The subject's id (key id or org id).</param>
/// <param name="Rules">Its limits.</param>
public sealed record RateLimitPartition(string Scope, string Id, IReadOnlyList<RateLimitRule> Rules);

/// <summary>One request to admit: every rule of every partition is decided together, all or nothing.</summary>
public sealed record RateLimitRequest
{
    /// <summary>Identifies the request's concurrency slots.</summary>
    public required string RequestId { get; init; }

    /// <summary>
    /// All state of one request lives under this hash tag (the org id), so one Redis script can read and write
    /// every counter even on Redis Cluster.
    /// </summary>
    public required string HashTag { get; init; }

    public required IReadOnlyList<RateLimitPartition> Partitions { get; init; }

    /// <summary>Tokens charged to <see cref="RateLimitClass.Tokens"/> rules at admission (an estimate; settled on release).</summary>
    public int Tokens { get; init; }

    /// <summary>
    /// The request's partitions are many, distinct and short-lived (one per client address, as for failed
    /// authentications): limiters keep nothing about them beyond their counters (no state carried across a store
    /// outage, no cached keys), so a flood of them cannot evict what is kept for customers' keys.
    /// </summary>
    public bool Ephemeral { get; init; }

    /// <summary>Every rule with its partition, in request order (partition, then rule).</summary>
    /// <remarks>
    /// A struct enumerator over the lists' indexers: limiters walk the rules several times per request, and
    /// <c>foreach</c> over an <see cref="IReadOnlyList{T}"/> allocates an enumerator each time.
    /// </remarks>
    /// <returns>An enumerator for <c>foreach (var (partition, rule) in request.EnumerateRules())</c>.</returns>
    public RateLimitRuleEnumerator EnumerateRules() => new(Partitions);
}

/// <summary>Enumerates a request's rules with their partitions without allocating; see <see cref="RateLimitRequest.EnumerateRules"/>.</summary>
public struct RateLimitRuleEnumerator
{
    private readonly IReadOnlyList<RateLimitPartition> _partitions;
    private int _partition;
    private int _rule;

    /// <param name="partitions">The partitions to walk, in order.</param>
    public RateLimitRuleEnumerator(IReadOnlyList<RateLimitPartition> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        _partitions = partitions;
        _partition = 0;
        _rule = -1;
    }

    /// <summary>The current rule and the partition it belongs to.</summary>
    public readonly (RateLimitPartition Partition, RateLimitRule Rule) Current
    {
        get
        {
            var partition = _partitions[_partition];
            return (partition, partition.Rules[_rule]);
        }
    }

    /// <summary>Lets <c>foreach</c> use this struct directly.</summary>
    /// <returns>This enumerator, before its first rule.</returns>
    public readonly RateLimitRuleEnumerator GetEnumerator() => this;

    /// <summary>Moves to the next rule, skipping partitions without rules.</summary>
    /// <returns>False after the last rule.</returns>
    public bool MoveNext()
    {
        while (_partition < _partitions.Count)
        {
            if (++_rule < _partitions[_partition].Rules.Count)
            {
                return true;
            }

            _partition++;
            _rule = -1;
        }

        return false;
    }
}

/// <summary>State of one rule after a decision, for the RateLimit headers.</summary>
/// <param name="Policy">Header name of the policy: <c>{scope}-{rule name}</c>, for example <c>key-rpm</c>.</param>
/// <param name="Rule">The rule.</param>
/// <param name="Remaining">Units the client may still send now: 0 ≤ Remaining ≤ <see cref="RateLimitRule.Quota"/> (0 when this rule refused).</param>
/// <param name="Reset">Time until the rule is back to its full quota (for concurrency: zero).</param>
public sealed record RateLimitCounter(string Policy, RateLimitRule Rule, long Remaining, TimeSpan Reset);

/// <summary>The limiter's answer.</summary>
public sealed record RateLimitDecision
{
    public required bool IsAllowed { get; init; }

    /// <summary>Every rule's state, in request order (partition, then rule).</summary>
    public required IReadOnlyList<RateLimitCounter> Counters { get; init; }

    /// <summary>The rule that refused (the one that frees up last), when refused.</summary>
    public RateLimitCounter? LimitedBy { get; init; }

    /// <summary>When refused: how long until the request would be admitted.</summary>
    public TimeSpan RetryAfter { get; init; }

    /// <summary>When admitted: hand it back to <see cref="IRateLimiter.ReleaseAsync"/> when the request ends.</summary>
    public RateLimitLease? Lease { get; init; }

    /// <summary>Decided by the per-replica fallback because the shared store was unreachable.</summary>
    public bool Degraded { get; init; }

    /// <summary>Refused because the shared store is unreachable and a limit of this request is configured to fail closed (answer 503, not 429).</summary>
    public bool Unavailable { get; init; }
}

/// <summary>An admitted request's hold on its concurrency slots and token charge.</summary>
/// <param name="Request">What was admitted.</param>
/// <param name="Backend">Which limiter admitted it (the shared store or the local fallback), so release goes to the same place.</param>
public sealed record RateLimitLease(RateLimitRequest Request, object? Backend);

/// <summary>
/// Decides rate limits. Implementations: in-process (one replica) and Redis (shared by every replica, one atomic
/// script per request, Redis's own clock). Both pass the same accuracy tests.
/// </summary>
public interface IRateLimiter
{
    /// <summary>Admits or refuses the request; a refusal changes no counter.</summary>
    ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Ends an admitted request: frees its concurrency slots and settles tokens (adds
    /// <paramref name="actualTokens"/> − <see cref="RateLimitRequest.Tokens"/> to token rules, a refund when negative).
    /// Never throws for store failures (a slot left behind is freed when its lease expires).
    /// </summary>
    ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default);
}
