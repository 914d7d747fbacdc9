namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>Limits of one subject (a key or an org). Null = not limited by this setting.</summary>
public sealed class RateLimitLimits
{
    public int? RequestsPerSecond { get; set; }

    public int? RequestsPerMinute { get; set; }

    public int? TokensPerMinute { get; set; }

    public int? ConcurrentRequests { get; set; }
}

/// <summary>Limits for the keys and for the org of one plan.</summary>
public sealed class RateLimitTier
{
    /// <summary>Applied to each key.</summary>
    public RateLimitLimits Key { get; set; } = new();

    /// <summary>Applied to the org as a whole (all its keys together).</summary>
    public RateLimitLimits Org { get; set; } = new();
}

/// <summary>What to do for a class of limits when the shared limiter store (Redis) is unreachable.</summary>
public enum RateLimitFailureMode
{
    /// <summary>Decide with a per-replica in-process limiter at quota / <see cref="RateLimitingOptions.FallbackReplicas"/>.</summary>
    FailOpen,

    /// <summary>Refuse with 503 and Retry-After.</summary>
    FailClosed,
}

public sealed class RateLimitFailureModes
{
    public RateLimitFailureMode Requests { get; set; } = RateLimitFailureMode.FailOpen;

    public RateLimitFailureMode Tokens { get; set; } = RateLimitFailureMode.FailOpen;

    public RateLimitFailureMode Concurrency { get; set; } = RateLimitFailureMode.FailOpen;
}

/// <summary>Rate limit settings (section <c>Cortensor:RateLimits</c>).</summary>
public sealed class RateLimitingOptions
{
    public const string SectionName = "Cortensor:RateLimits";

    /// <summary>Off = no request is counted or limited. <value>The default value is <see langword="true"/>.</value></summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Limits for orgs whose plan has no entry in <see cref="Plans"/>.</summary>
    public RateLimitTier Defaults { get; set; } = new();

    /// <summary>Limits by plan id.</summary>
    public Dictionary<string, RateLimitTier> Plans { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Per-key overrides by key id: each value set here replaces the plan's key limit.</summary>
    public Dictionary<string, RateLimitLimits> Keys { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Per-org overrides by org id: each value set here replaces the plan's org limit.</summary>
    public Dictionary<string, RateLimitLimits> Orgs { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// The longest a concurrency slot is held without a release: the in-process limiter drops it then, and the Redis
    /// limiter stops renewing its lease then (a request that somehow never ends cannot hold a slot forever). Keep it
    /// above the longest request. A crashed replica's slots in Redis free themselves much sooner, within
    /// <c>Cortensor:Redis:ConcurrencyLeaseTtl</c> (30 s by default), because nothing renews them any more.
    /// <value>The default value is 10 minutes.</value>
    /// </summary>
    public TimeSpan ConcurrencySlotTtl { get; set; } = TimeSpan.FromMinutes(10);

    public RateLimitFailureModes FailureModes { get; set; } = new();

    /// <summary>
    /// Replicas sharing the limits; while the shared store is down each replica enforces quota / this number locally.
    /// <value>The default value is 1.</value>
    /// </summary>
    public int FallbackReplicas { get; set; } = 1;

    /// <summary>After a store failure, how long to use the fallback before trying the store again. <value>The default value is 1 s.</value></summary>
    public TimeSpan StoreRetryInterval { get; set; } = TimeSpan.FromSeconds(1);
}
