namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// Conventions every <see cref="IRateLimiter"/> follows so that they answer alike: policy names, time units, request
/// validation and how per-rule outcomes become a <see cref="RateLimitDecision"/>.
/// </summary>
public static class RateLimitConventions
{
    /// <summary>
    /// <see cref="RateLimitDecision.RetryAfter"/> of a refusal by a <see cref="RateLimitClass.Concurrency"/> rule: when
    /// a slot frees up is unknown, so clients are told to retry after this.
    /// </summary>
    /// <value>1 second.</value>
    public static readonly TimeSpan ConcurrencyRetryAfter = TimeSpan.FromSeconds(1);

    private const int MaxCachedPolicyNames = 256;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string Scope, string Rule), string> PolicyNames = new();

    /// <summary>The policy name of a rule in <see cref="RateLimitCounter.Policy"/> and the headers: <c>{scope}-{rule name}</c>.</summary>
    /// <param name="scope">The partition's scope (<c>key</c>, <c>org</c>).</param>
    /// <param name="ruleName">The rule's name (<c>rpm</c>, ...).</param>
    /// <returns>For example <c>key-rpm</c>.</returns>
    public static string PolicyName(string scope, string ruleName)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentNullException.ThrowIfNull(ruleName);

        // Every decision names every rule; the names come from a handful of scopes and rules, so they are built once.
        if (PolicyNames.TryGetValue((scope, ruleName), out var name))
        {
            return name;
        }

        name = string.Concat(scope, "-", ruleName);
        if (PolicyNames.Count < MaxCachedPolicyNames)
        {
            PolicyNames.TryAdd((scope, ruleName), name);
        }

        return name;
    }

    /// <summary>A duration in whole microseconds (truncated), the unit of <see cref="Gcra"/>.</summary>
    /// <param name="value">The duration.</param>
    /// <returns>Microseconds.</returns>
    public static long ToMicroseconds(TimeSpan value) => value.Ticks / TimeSpan.TicksPerMicrosecond;

    /// <summary>Microseconds, the unit of <see cref="Gcra"/>, as a <see cref="TimeSpan"/>.</summary>
    /// <param name="microseconds">Microseconds.</param>
    /// <returns>The duration.</returns>
    public static TimeSpan FromMicroseconds(long microseconds) => TimeSpan.FromTicks(microseconds * TimeSpan.TicksPerMicrosecond);

    /// <summary>
    /// Checks a request before it is decided: a request id and a hash tag, no negative tokens, and every rule with a
    /// name, a known class, a quota above zero and (except concurrency) a window of at least one microsecond.
    /// </summary>
    /// <param name="request">The request.</param>
    /// <exception cref="ArgumentNullException">The request or a part of it is null.</exception>
    /// <exception cref="ArgumentException">The request is not valid.</exception>
    public static void ThrowIfInvalid(RateLimitRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrEmpty(request.RequestId, nameof(request));
        ArgumentException.ThrowIfNullOrEmpty(request.HashTag, nameof(request));
        ArgumentNullException.ThrowIfNull(request.Partitions, nameof(request));
        if (request.Tokens < 0)
        {
            throw new ArgumentException("Tokens must not be negative.", nameof(request));
        }

        // Index loops: this runs for every request, and foreach over an IReadOnlyList allocates an enumerator.
        for (var p = 0; p < request.Partitions.Count; p++)
        {
            var partition = request.Partitions[p];
            ArgumentNullException.ThrowIfNull(partition, nameof(request));
            ArgumentNullException.ThrowIfNull(partition.Rules, nameof(request));
            for (var r = 0; r < partition.Rules.Count; r++)
            {
                var rule = partition.Rules[r];
                ArgumentNullException.ThrowIfNull(rule, nameof(request));
                if (string.IsNullOrEmpty(rule.Name) || !Enum.IsDefined(rule.Class) || rule.Quota <= 0
                    || (rule.Class != RateLimitClass.Concurrency && ToMicroseconds(rule.Window) <= 0))
                {
                    throw new ArgumentException(
                        $"Rule '{rule.Name}' of partition '{partition.Scope}' needs a name, a known class, a quota above zero and a window of at least 1 µs.",
                        nameof(request));
                }
            }
        }
    }

    /// <summary>Counts the rules of a request over all its partitions.</summary>
    /// <param name="request">The request.</param>
    /// <returns>The number of rules.</returns>
    public static int CountRules(RateLimitRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var count = 0;
        for (var p = 0; p < request.Partitions.Count; p++)
        {
            count += request.Partitions[p].Rules.Count;
        }

        return count;
    }

    /// <summary>
    /// Builds the decision from one outcome per rule, in request order (partition, then rule): allowed when every rule
    /// allowed; otherwise <see cref="RateLimitDecision.RetryAfter"/> is the longest retry of the refusing rules and
    /// <see cref="RateLimitDecision.LimitedBy"/> is that rule (the first one on a tie). An allowed decision carries a
    /// lease on <paramref name="backend"/>.
    /// </summary>
    /// <param name="request">The decided request.</param>
    /// <param name="outcomes">One outcome per rule, in request order. In a refused decision, rules that did not refuse report their state unchanged (<see cref="Gcra.Peek"/>; concurrency: cap − in flight).</param>
    /// <param name="backend">The limiter that decided, stored on the lease so that release goes back to it.</param>
    /// <returns>The decision.</returns>
    public static RateLimitDecision CreateDecision(RateLimitRequest request, ReadOnlySpan<RateLimitRuleOutcome> outcomes, object? backend)
    {
        ArgumentNullException.ThrowIfNull(request);
        var counters = new RateLimitCounter[outcomes.Length];
        var allowed = true;
        var retryAfter = TimeSpan.Zero;
        RateLimitCounter? limitedBy = null;
        var i = 0;
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            if (i >= outcomes.Length)
            {
                throw new ArgumentException("There must be one outcome per rule of the request.", nameof(outcomes));
            }

            var outcome = outcomes[i];
            var counter = new RateLimitCounter(PolicyName(partition.Scope, rule.Name), rule, outcome.Remaining, outcome.Reset);
            counters[i] = counter;
            if (!outcome.IsAllowed)
            {
                if (limitedBy is null || outcome.RetryAfter > retryAfter)
                {
                    retryAfter = outcome.RetryAfter;
                    limitedBy = counter;
                }

                allowed = false;
            }

            i++;
        }

        if (i != outcomes.Length)
        {
            throw new ArgumentException("There must be one outcome per rule of the request.", nameof(outcomes));
        }

        return new RateLimitDecision
        {
            IsAllowed = allowed,
            Counters = counters,
            LimitedBy = limitedBy,
            RetryAfter = allowed ? TimeSpan.Zero : retryAfter,
            Lease = allowed ? new RateLimitLease(request, backend) : null,
        };
    }
}

/// <summary>What one rule answered, before <see cref="RateLimitConventions.CreateDecision"/> combines the rules.</summary>
/// <param name="IsAllowed">Whether this rule admits the request.</param>
/// <param name="Remaining">Units left (0 when this rule refused).</param>
/// <param name="Reset">Time until the rule is back to its full quota (zero for concurrency).</param>
/// <param name="RetryAfter">When this rule refused: the wait until it would admit the request.</param>
public readonly record struct RateLimitRuleOutcome(bool IsAllowed, long Remaining, TimeSpan Reset, TimeSpan RetryAfter)
{
    /// <summary>The outcome of a GCRA rule, converting microseconds.</summary>
    /// <param name="result">The GCRA result.</param>
    /// <returns>The outcome.</returns>
    public static RateLimitRuleOutcome FromGcra(GcraResult result) => new(
        result.IsAllowed,
        result.Remaining,
        RateLimitConventions.FromMicroseconds(result.Reset),
        RateLimitConventions.FromMicroseconds(result.RetryAfter));
}
