using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Sqlite.Accounts;

/// <summary>
/// <see cref="IPlanStore"/> over <c>plans</c> and <c>plan_subscriptions</c>. Thread-safe: every call uses its own pooled connection.
/// </summary>
/// <remarks>
/// A subscription covers an instant <c>at</c> when <c>period_start &lt;= at &lt; period_end</c> (no end = open-ended) and it is
/// <c>active</c>, or <c>cancelled</c> with an end: cancelling sets the end and the subscription runs out there.
/// <see cref="GetActiveSubscriptionAsync"/> uses the <c>(org_id, period_start)</c> index.
/// </remarks>
public sealed class SqlitePlanStore : IPlanStore
{
    private const string PlanColumns =
        "id, name, description, requests_per_minute, tokens_per_minute, weekly_request_allowance, price_minor, currency, created_at";

    private const string SubscriptionColumns = "id, org_id, plan_id, period_start, period_end, status, created_at";

    private readonly SqliteDatabase _database;

    public SqlitePlanStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
    }

    public async Task UpsertPlanAsync(Plan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentException.ThrowIfNullOrEmpty(plan.Id, nameof(plan));
        ArgumentNullException.ThrowIfNull(plan.Name, nameof(plan));

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                INSERT INTO plans ({PlanColumns})
                VALUES ($id, $name, $description, $rpm, $tpm, $weekly, $price_minor, $currency, $created_at)
                ON CONFLICT (id) DO UPDATE SET
                    name = excluded.name,
                    description = excluded.description,
                    requests_per_minute = excluded.requests_per_minute,
                    tokens_per_minute = excluded.tokens_per_minute,
                    weekly_request_allowance = excluded.weekly_request_allowance,
                    price_minor = excluded.price_minor,
                    currency = excluded.currency,
                    created_at = excluded.created_at;
                """;
            var p = command.Parameters;
            p.AddWithValue("$id", plan.Id);
            p.AddWithValue("$name", plan.Name);
            p.AddWithValue("$description", plan.Description ?? "");
            p.AddWithValue("$rpm", SqliteValues.OrDbNull(plan.RequestsPerMinute));
            p.AddWithValue("$tpm", SqliteValues.OrDbNull(plan.TokensPerMinute));
            p.AddWithValue("$weekly", SqliteValues.OrDbNull(plan.WeeklyRequestAllowance));
            p.AddWithValue("$price_minor", SqliteValues.OrDbNull(plan.PriceMinor));
            p.AddWithValue("$currency", SqliteValues.OrDbNull(plan.Currency));
            p.AddWithValue("$created_at", UnixMicroseconds.From(plan.CreatedAt));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<Plan?> FindPlanAsync(string planId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(planId);
        var plans = await ListPlansWhereAsync("WHERE id = $id", planId, cancellationToken).ConfigureAwait(false);
        return plans.Count == 0 ? null : plans[0];
    }

    public Task<IReadOnlyList<Plan>> ListPlansAsync(CancellationToken cancellationToken = default) =>
        ListPlansWhereAsync("", null, cancellationToken);

    /// <exception cref="InvalidOperationException">The plan does not exist, or a subscription with this id is already stored.</exception>
    public async Task AddSubscriptionAsync(PlanSubscription subscription, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        ArgumentException.ThrowIfNullOrEmpty(subscription.Id, nameof(subscription));
        ArgumentException.ThrowIfNullOrEmpty(subscription.OrgId, nameof(subscription));
        ArgumentException.ThrowIfNullOrEmpty(subscription.PlanId, nameof(subscription));
        var status = ToText(subscription.Status);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // One statement: the plan check and the insert are atomic.
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                INSERT INTO plan_subscriptions ({SubscriptionColumns})
                SELECT $id, $org_id, $plan_id, $period_start, $period_end, $status, $created_at
                WHERE EXISTS (SELECT 1 FROM plans WHERE id = $plan_id);
                """;
            var p = command.Parameters;
            p.AddWithValue("$id", subscription.Id);
            p.AddWithValue("$org_id", subscription.OrgId);
            p.AddWithValue("$plan_id", subscription.PlanId);
            p.AddWithValue("$period_start", UnixMicroseconds.From(subscription.PeriodStart));
            p.AddWithValue("$period_end", UnixMicroseconds.FromNullable(subscription.PeriodEnd));
            p.AddWithValue("$status", status);
            p.AddWithValue("$created_at", UnixMicroseconds.From(subscription.CreatedAt));
            int inserted;
            try
            {
                inserted = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex) when (SqliteValues.IsConstraintViolation(ex))
            {
                throw new InvalidOperationException($"A subscription with id '{subscription.Id}' is already stored.", ex);
            }

            if (inserted == 0)
            {
                throw new InvalidOperationException($"Cannot add subscription '{subscription.Id}': plan '{subscription.PlanId}' does not exist.");
            }
        }
    }

    /// <remarks>Sets status <c>cancelled</c> and the end; false when the subscription is unknown or already cancelled.</remarks>
    public async Task<bool> CancelSubscriptionAsync(string subscriptionId, DateTimeOffset periodEnd, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subscriptionId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                UPDATE plan_subscriptions SET status = 'cancelled', period_end = $period_end
                WHERE id = $id AND status = 'active';
                """;
            command.Parameters.AddWithValue("$period_end", UnixMicroseconds.From(periodEnd));
            command.Parameters.AddWithValue("$id", subscriptionId);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }
    }

    public async Task<PlanSubscription?> GetActiveSubscriptionAsync(string orgId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                SELECT {SubscriptionColumns} FROM plan_subscriptions
                WHERE org_id = $org_id
                  AND period_start <= $at
                  AND ((period_end IS NULL AND status = 'active') OR $at < period_end)
                ORDER BY period_start DESC, created_at DESC, id DESC
                LIMIT 1;
                """;
            command.Parameters.AddWithValue("$org_id", orgId);
            command.Parameters.AddWithValue("$at", UnixMicroseconds.From(at));
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
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
        }
    }

    private async Task<IReadOnlyList<Plan>> ListPlansWhereAsync(string where, string? id, CancellationToken cancellationToken)
    {
        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {PlanColumns} FROM plans {where} ORDER BY id;";
            if (id is not null)
            {
                command.Parameters.AddWithValue("$id", id);
            }

            var plans = new List<Plan>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    plans.Add(new Plan
                    {
                        Id = reader.GetString(0),
                        Name = reader.GetString(1),
                        Description = reader.GetString(2),
                        RequestsPerMinute = reader.GetNullableInt32(3),
                        TokensPerMinute = reader.GetNullableInt32(4),
                        WeeklyRequestAllowance = reader.GetNullableInt32(5),
                        PriceMinor = reader.GetNullableInt64(6),
                        Currency = reader.GetNullableString(7),
                        CreatedAt = reader.GetTimestamp(8),
                    });
                }
            }

            return plans;
        }
    }

    private static string ToText(SubscriptionStatus status) => status switch
    {
        SubscriptionStatus.Active => "active",
        SubscriptionStatus.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "Unknown subscription status."),
    };

    private static SubscriptionStatus StatusFromText(string text) => text switch
    {
        "active" => SubscriptionStatus.Active,
        "cancelled" => SubscriptionStatus.Cancelled,
        _ => throw new InvalidOperationException($"Unknown subscription status '{text}' in plan_subscriptions."),
    };
}
