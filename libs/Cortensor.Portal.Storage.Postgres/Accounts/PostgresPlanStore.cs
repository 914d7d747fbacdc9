using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Options;
using Npgsql;
using static Cortensor.Portal.Storage.Postgres.Accounts.PostgresParameters;

namespace Cortensor.Portal.Storage.Postgres.Accounts;

/// <summary><see cref="IPlanStore"/> over <c>plans</c> and <c>plan_subscriptions</c>.</summary>
/// <remarks>
/// <para>
/// A subscription covers an instant when <c>period_start &lt;= at &lt; period_end</c> (no end = open-ended) and it is
/// active, or cancelled with an end: cancelling sets status <c>cancelled</c> and the end, so the subscription runs out
/// then. A cancelled subscription without an end covers nothing. Cancelling an unknown or already cancelled
/// subscription returns <see langword="false"/> and changes nothing.
/// </para>
/// <para>
/// Each call is one statement on a pooled connection: no prepared statements, no session state. A subscription
/// is inserted with <c>INSERT … SELECT … FROM plans WHERE id = $plan</c>, so a missing plan inserts nothing and
/// throws <see cref="InvalidOperationException"/> without a second round trip.
/// </para>
/// </remarks>
public sealed class PostgresPlanStore : IPlanStore
{
    private const string PlanColumns =
        "id, name, description, requests_per_minute, tokens_per_minute, weekly_request_allowance, price_minor, currency, created_at";

    private const string SubscriptionColumns = "id, org_id, plan_id, period_start, period_end, status, created_at";

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _upsertPlanSql;
    private readonly string _findPlanSql;
    private readonly string _listPlansSql;
    private readonly string _addSubscriptionSql;
    private readonly string _cancelSubscriptionSql;
    private readonly string _activeSubscriptionSql;

    public PostgresPlanStore(NpgsqlDataSource dataSource, IOptions<PostgresStorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        var schema = new StoreSchema(options.Value.Schema);
        var plans = schema.Table("plans");
        var subscriptions = schema.Table("plan_subscriptions");

        _upsertPlanSql =
            $"INSERT INTO {plans} ({PlanColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) " +
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, " +
            "requests_per_minute = EXCLUDED.requests_per_minute, tokens_per_minute = EXCLUDED.tokens_per_minute, " +
            "weekly_request_allowance = EXCLUDED.weekly_request_allowance, price_minor = EXCLUDED.price_minor, " +
            "currency = EXCLUDED.currency, created_at = EXCLUDED.created_at";
        _findPlanSql = $"SELECT {PlanColumns} FROM {plans} WHERE id = $1";
        _listPlansSql = $"SELECT {PlanColumns} FROM {plans} ORDER BY id COLLATE \"C\"";
        _addSubscriptionSql =
            $"INSERT INTO {subscriptions} ({SubscriptionColumns}) SELECT $1, $2, p.id, $4, $5, $6, $7 FROM {plans} p WHERE p.id = $3";
        _cancelSubscriptionSql =
            $"UPDATE {subscriptions} SET status = 'cancelled', period_end = $2 WHERE id = $1 AND status = 'active'";
        _activeSubscriptionSql =
            $"SELECT {SubscriptionColumns} FROM {subscriptions} " +
            "WHERE org_id = $1 AND period_start <= $2 AND (period_end IS NULL OR period_end > $2) " +
            "AND (status = 'active' OR (status = 'cancelled' AND period_end IS NOT NULL)) " +
            "ORDER BY period_start DESC, created_at DESC, id COLLATE \"C\" DESC LIMIT 1";
    }

    public async Task UpsertPlanAsync(Plan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentException.ThrowIfNullOrEmpty(plan.Id, nameof(plan));
        ArgumentNullException.ThrowIfNull(plan.Name, nameof(plan));

        await using var command = _dataSource.CreateCommand(_upsertPlanSql);
        var p = command.Parameters;
        p.Add(Text(plan.Id));
        p.Add(Text(plan.Name));
        p.Add(Text(plan.Description ?? ""));
        p.Add(NullableInteger(plan.RequestsPerMinute));
        p.Add(NullableBigint(plan.TokensPerMinute));
        p.Add(NullableBigint(plan.WeeklyRequestAllowance));
        p.Add(NullableBigint(plan.PriceMinor));
        p.Add(NullableText(plan.Currency));
        p.Add(Timestamp(plan.CreatedAt));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<Plan?> FindPlanAsync(string planId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(planId);
        await using var command = _dataSource.CreateCommand(_findPlanSql);
        command.Parameters.Add(Text(planId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadPlan(reader) : null;
    }

    public async Task<IReadOnlyList<Plan>> ListPlansAsync(CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(_listPlansSql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var plans = new List<Plan>();
        while (await reader.ReadAsync(cancellationToken))
        {
            plans.Add(ReadPlan(reader));
        }

        return plans;
    }

    /// <exception cref="InvalidOperationException">The plan does not exist, or a subscription with this id does.</exception>
    public async Task AddSubscriptionAsync(PlanSubscription subscription, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        ArgumentException.ThrowIfNullOrEmpty(subscription.Id, nameof(subscription));
        ArgumentException.ThrowIfNullOrEmpty(subscription.OrgId, nameof(subscription));
        ArgumentException.ThrowIfNullOrEmpty(subscription.PlanId, nameof(subscription));

        await using var command = _dataSource.CreateCommand(_addSubscriptionSql);
        var p = command.Parameters;
        p.Add(Text(subscription.Id));
        p.Add(Text(subscription.OrgId));
        p.Add(Text(subscription.PlanId));
        p.Add(Timestamp(subscription.PeriodStart));
        p.Add(NullableTimestamp(subscription.PeriodEnd));
        p.Add(Text(ToText(subscription.Status)));
        p.Add(Timestamp(subscription.CreatedAt));
        int inserted;
        try
        {
            inserted = await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrors.UniqueViolation)
        {
            throw new InvalidOperationException($"A subscription with id '{subscription.Id}' is already stored.", ex);
        }

        if (inserted == 0)
        {
            throw new InvalidOperationException($"Plan '{subscription.PlanId}' does not exist.");
        }
    }

    public async Task<bool> CancelSubscriptionAsync(string subscriptionId, DateTimeOffset periodEnd, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscriptionId);
        await using var command = _dataSource.CreateCommand(_cancelSubscriptionSql);
        command.Parameters.Add(Text(subscriptionId));
        command.Parameters.Add(Timestamp(periodEnd));
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    public async Task<PlanSubscription?> GetActiveSubscriptionAsync(string orgId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        await using var command = _dataSource.CreateCommand(_activeSubscriptionSql);
        command.Parameters.Add(Text(orgId));
        command.Parameters.Add(Timestamp(at));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new PlanSubscription
        {
            Id = reader.GetString(0),
            OrgId = reader.GetString(1),
            PlanId = reader.GetString(2),
            PeriodStart = reader.GetTimestamp(3),
            PeriodEnd = reader.GetNullableTimestamp(4),
            Status = StatusFromText(reader.GetString(5)),
            CreatedAt = reader.GetTimestamp(6),
        };
    }

    private static Plan ReadPlan(NpgsqlDataReader reader) => new()
    {
        Id = reader.GetString(0),
        Name = reader.GetString(1),
        Description = reader.GetString(2),
        RequestsPerMinute = reader.GetNullableInt32(3),
        TokensPerMinute = reader.IsDBNull(4) ? null : checked((int)reader.GetInt64(4)),
        WeeklyRequestAllowance = reader.IsDBNull(5) ? null : checked((int)reader.GetInt64(5)),
        PriceMinor = reader.GetNullableInt64(6),
        Currency = reader.GetNullableString(7),
        CreatedAt = reader.GetTimestamp(8),
    };

    private static string ToText(SubscriptionStatus status) => status switch
    {
        SubscriptionStatus.Active => "active",
        SubscriptionStatus.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "Unknown subscription status."),
    };

    private static SubscriptionStatus StatusFromText(string value) => value switch
    {
        "active" => SubscriptionStatus.Active,
        "cancelled" => SubscriptionStatus.Cancelled,
        _ => throw new InvalidOperationException($"plan_subscriptions.status holds an unknown value '{value}'."),
    };
}
