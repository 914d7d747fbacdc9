using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// Turns <see cref="RateLimitingOptions"/> into the <see cref="RateLimitRequest"/> of one API request: a <c>key</c>
/// partition and an <c>org</c> partition, each with the rules <c>rps</c>, <c>rpm</c>, <c>tpm</c> and
/// <c>concurrency</c> that are configured for it.
/// </summary>
/// <remarks>
/// The tier is <see cref="RateLimitingOptions.Plans"/>[planId] when present, else <see cref="RateLimitingOptions.Defaults"/>.
/// Each value set in <see cref="RateLimitingOptions.Keys"/>[keyId] replaces the tier's key value, and each value set in
/// <see cref="RateLimitingOptions.Orgs"/>[orgId] the tier's org value. Options are read at each call, so reloads
/// apply to the next request.
/// </remarks>
public sealed class RateLimitPlanner
{
    /// <summary>Scope of the per-key partition.</summary>
    public const string KeyScope = "key";

    /// <summary>Scope of the per-org partition.</summary>
    public const string OrgScope = "org";

    /// <summary>Rule name of <see cref="RateLimitLimits.RequestsPerSecond"/> (window 1 s).</summary>
    public const string RequestsPerSecondRule = "rps";

    /// <summary>Rule name of <see cref="RateLimitLimits.RequestsPerMinute"/> (window 60 s).</summary>
    public const string RequestsPerMinuteRule = "rpm";

    /// <summary>Rule name of <see cref="RateLimitLimits.TokensPerMinute"/> (window 60 s, <see cref="RateLimitClass.Tokens"/>).</summary>
    public const string TokensPerMinuteRule = "tpm";

    /// <summary>Rule name of <see cref="RateLimitLimits.ConcurrentRequests"/>.</summary>
    public const string ConcurrencyRule = "concurrency";

    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    private const int MaxCachedRuleSets = 1024;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<RuleValues, RateLimitRule[]> RuleSets = new();

    private readonly IOptionsMonitor<RateLimitingOptions> _options;

    /// <summary>Creates a planner.</summary>
    /// <param name="options">The rate limit settings, read at each call.</param>
    public RateLimitPlanner(IOptionsMonitor<RateLimitingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
    }

    /// <summary>Plans the rate limits of one request.</summary>
    /// <param name="requestId">The request id (identifies its concurrency slots).</param>
    /// <param name="orgId">The org that owns the key; also the <see cref="RateLimitRequest.HashTag"/>.</param>
    /// <param name="keyId">The API key id.</param>
    /// <param name="planId">The org's plan, or null for the defaults.</param>
    /// <param name="tokens">Tokens to charge to <c>tpm</c> rules at admission (an estimate, settled on release).</param>
    /// <returns>
    /// The request to hand to <see cref="IRateLimiter.AcquireAsync"/>, or null when rate limiting is disabled or no
    /// limit applies (then nothing needs to be acquired or released). A partition without limits is left out.
    /// </returns>
    public RateLimitRequest? Plan(string requestId, string orgId, string keyId, string? planId, int tokens)
    {
        ArgumentException.ThrowIfNullOrEmpty(requestId);
        ArgumentException.ThrowIfNullOrEmpty(orgId);
        ArgumentException.ThrowIfNullOrEmpty(keyId);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);

        var options = _options.CurrentValue;
        if (!options.Enabled)
        {
            return null;
        }

        var tier = planId is not null && options.Plans.TryGetValue(planId, out var planTier) && planTier is not null
            ? planTier
            : options.Defaults;
        var keyRules = Rules(tier.Key, options.Keys.GetValueOrDefault(keyId));
        var orgRules = Rules(tier.Org, options.Orgs.GetValueOrDefault(orgId));
        if (keyRules is null && orgRules is null)
        {
            return null;
        }

        var partitions = new List<RateLimitPartition>(2);
        if (keyRules is not null)
        {
            partitions.Add(new RateLimitPartition(KeyScope, keyId, keyRules));
        }

        if (orgRules is not null)
        {
            partitions.Add(new RateLimitPartition(OrgScope, orgId, orgRules));
        }

        return new RateLimitRequest
        {
            RequestId = requestId,
            HashTag = orgId,
            Partitions = partitions,
            Tokens = tokens,
        };
    }

    private static RateLimitRule[]? Rules(RateLimitLimits? tier, RateLimitLimits? overrides)
    {
        var limits = new RuleValues(
            overrides?.RequestsPerSecond ?? tier?.RequestsPerSecond,
            overrides?.RequestsPerMinute ?? tier?.RequestsPerMinute,
            overrides?.TokensPerMinute ?? tier?.TokensPerMinute,
            overrides?.ConcurrentRequests ?? tier?.ConcurrentRequests);
        if (limits == default)
        {
            return null;
        }

        // Every request plans its rules; they depend only on these four values, so each set is built once (bounded:
        // a deployment has a handful of plans and overrides).
        if (RuleSets.TryGetValue(limits, out var cached))
        {
            return cached;
        }

        var rules = new List<RateLimitRule>(4);
        if (limits.Rps is { } perSecond)
        {
            rules.Add(new RateLimitRule(RequestsPerSecondRule, RateLimitClass.Requests, perSecond, Second));
        }

        if (limits.Rpm is { } perMinute)
        {
            rules.Add(new RateLimitRule(RequestsPerMinuteRule, RateLimitClass.Requests, perMinute, Minute));
        }

        if (limits.Tpm is { } tokensPerMinute)
        {
            rules.Add(new RateLimitRule(TokensPerMinuteRule, RateLimitClass.Tokens, tokensPerMinute, Minute));
        }

        if (limits.Concurrency is { } concurrent)
        {
            rules.Add(new RateLimitRule(ConcurrencyRule, RateLimitClass.Concurrency, concurrent, TimeSpan.Zero));
        }

        RateLimitRule[] built = [.. rules];
        if (RuleSets.Count < MaxCachedRuleSets)
        {
            RuleSets.TryAdd(limits, built);
        }

        return built;
    }

    /// <summary>The four limits of one partition after overrides (null: not limited).</summary>
    private readonly record struct RuleValues(long? Rps, long? Rpm, long? Tpm, long? Concurrency);
}
