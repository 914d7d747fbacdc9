using Cortensor.Portal.Metering.Ledger;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using static Cortensor.Portal.Storage.Postgres.Accounts.PostgresParameters;

namespace Cortensor.Portal.Storage.Postgres.Ledger;

/// <summary>
/// <see cref="ILedgerStore"/> over the append-only <c>billing_ledger</c> table (<c>bigserial</c> ids).
/// </summary>
/// <remarks>
/// <para>
/// <see cref="AppendAsync"/> is one <c>INSERT … ON CONFLICT (kind, request_id) WHERE request_id IS NOT NULL DO
/// NOTHING</c> against the partial unique index <c>billing_ledger_kind_request_id_key</c>: a replayed entry of the
/// same kind for the same request inserts nothing and returns <see langword="false"/>, also when two replicas race.
/// Entries without a request id are never de-duplicated.
/// </para>
/// <para>
/// <see cref="GetBalanceAsync"/> is one aggregate: grants + credits + adjustments − debits of the org in that
/// currency (0 when there are none). Each call is one statement on a pooled connection: no prepared statements,
/// no session state.
/// </para>
/// </remarks>
public sealed partial class PostgresLedgerStore : ILedgerStore
{
    private const string Columns = "id, org_id, occurred_at, kind, amount_minor, currency, request_id, description";

    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger _logger;
    private readonly string _appendSql;
    private readonly string _balanceSql;
    private readonly string _listSql;

    public PostgresLedgerStore(NpgsqlDataSource dataSource, IOptions<PostgresStorageOptions> options, ILogger<PostgresLedgerStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        var table = new StoreSchema(options.Value.Schema).Table("billing_ledger");
        _appendSql =
            $"INSERT INTO {table} (org_id, occurred_at, kind, amount_minor, currency, request_id, description) " +
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, request_id) WHERE request_id IS NOT NULL DO NOTHING";
        _balanceSql =
            "SELECT COALESCE(SUM(CASE kind WHEN 'debit' THEN -amount_minor ELSE amount_minor END), 0)::bigint " +
            $"FROM {table} WHERE org_id = $1 AND currency = $2";
        _listSql =
            $"SELECT {Columns} FROM {table} WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 ORDER BY occurred_at, id";
    }

    /// <exception cref="ArgumentException">A field is missing.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A grant, debit or credit has a negative amount (only adjustments are signed).</exception>
    public async Task<bool> AppendAsync(LedgerEntry entry, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentException.ThrowIfNullOrEmpty(entry.OrgId, nameof(entry));
        ArgumentException.ThrowIfNullOrEmpty(entry.Currency, nameof(entry));
        var kind = LedgerStoredNames.Of(entry.Kind);
        if (entry.Kind != LedgerEntryKind.Adjustment)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(entry.AmountMinor, nameof(entry));
        }

        await using var command = _dataSource.CreateCommand(_appendSql);
        var p = command.Parameters;
        p.Add(Text(entry.OrgId));
        p.Add(Timestamp(entry.OccurredAt));
        p.Add(Text(kind));
        p.Add(Bigint(entry.AmountMinor));
        p.Add(Text(entry.Currency));
        p.Add(NullableText(entry.RequestId));
        p.Add(Text(entry.Description ?? ""));
        var inserted = await command.ExecuteNonQueryAsync(cancellationToken) == 1;
        if (!inserted)
        {
            Log.DuplicateIgnored(_logger, kind, entry.RequestId);
        }

        return inserted;
    }

    public async Task<long> GetBalanceAsync(string orgId, string currency, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(currency);
        await using var command = _dataSource.CreateCommand(_balanceSql);
        command.Parameters.Add(Text(orgId));
        command.Parameters.Add(Text(currency));
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task<IReadOnlyList<LedgerEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        await using var command = _dataSource.CreateCommand(_listSql);
        command.Parameters.Add(Text(orgId));
        command.Parameters.Add(Timestamp(from));
        command.Parameters.Add(Timestamp(to));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var entries = new List<LedgerEntry>();
        while (await reader.ReadAsync(cancellationToken))
        {
            entries.Add(new LedgerEntry
            {
                Id = reader.GetInt64(0),
                OrgId = reader.GetString(1),
                OccurredAt = reader.GetTimestamp(2),
                Kind = LedgerStoredNames.Parse(reader.GetString(3)),
                AmountMinor = reader.GetInt64(4),
                Currency = reader.GetString(5),
                RequestId = reader.GetNullableString(6),
                Description = reader.GetString(7),
            });
        }

        return entries;
    }

    /// <summary>EventIds 7500-7599.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7500, EventName = "LedgerDuplicateIgnored", Level = LogLevel.Debug,
            Message = "Ledger entry of kind {Kind} for request {RequestId} already exists; not appended again")]
        public static partial void DuplicateIgnored(ILogger logger, string kind, string? requestId);
    }
}
