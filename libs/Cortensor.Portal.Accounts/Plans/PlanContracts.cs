namespace Cortensor.Portal.Accounts.Plans;

/// <summary>A plan's limits and price. Null limits mean "not limited by this plan".</summary>
public sealed record Plan
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public string Description { get; init; } = "";

    public int? RequestsPerMinute { get; init; }

    public int? TokensPerMinute { get; init; }

    public int? WeeklyRequestAllowance { get; init; }

    /// <summary>Price per period in minor units (cents); null for free plans.</summary>
    public long? PriceMinor { get; init; }

    /// <summary>ISO 4217 code, set together with <see cref="PriceMinor"/>.</summary>
    public string? Currency { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

public enum SubscriptionStatus
{
    Active,
    Cancelled,
}

public sealed record PlanSubscription
{
    public required string Id { get; init; }

    public required string OrgId { get; init; }

    public required string PlanId { get; init; }

    public required DateTimeOffset PeriodStart { get; init; }

    /// <summary>Exclusive end; null = open-ended.</summary>
    public DateTimeOffset? PeriodEnd { get; init; }

    public SubscriptionStatus Status { get; init; } = SubscriptionStatus.Active;

    public required DateTimeOffset CreatedAt { get; init; }
}

public interface IPlanStore
{
    /// <summary>Inserts or replaces the plan with this id.</summary>
    Task UpsertPlanAsync(Plan plan, CancellationToken cancellationToken = default);

    Task<Plan?> FindPlanAsync(string planId, CancellationToken cancellationToken = default);

    /// <summary>All plans ordered by id.</summary>
    Task<IReadOnlyList<Plan>> ListPlansAsync(CancellationToken cancellationToken = default);

    /// <summary>The plan must exist (else <see cref="InvalidOperationException"/>).</summary>
    Task AddSubscriptionAsync(PlanSubscription subscription, CancellationToken cancellationToken = default);

    Task<bool> CancelSubscriptionAsync(string subscriptionId, DateTimeOffset periodEnd, CancellationToken cancellationToken = default);

    /// <summary>The active subscription covering <paramref name="at"/> (PeriodStart &lt;= at &lt; PeriodEnd), latest start first.</summary>
    Task<PlanSubscription?> GetActiveSubscriptionAsync(string orgId, DateTimeOffset at, CancellationToken cancellationToken = default);
}
