using Cortensor.Portal.Metering.Ledger;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Portal.Storage.Sqlite.Ledger;

/// <summary>
/// <see cref="ILedgerStore"/> over the append-only <c>billing_ledger</c> table. Ids come from
/// <c>INTEGER PRIMARY KEY AUTOINCREMENT</c>, so they increase in append order and are never reused.
/// Thread-safe: every call uses its own pooled connection.
/// </summary>
/// <remarks>
/// <see cref="AppendAsync"/> is one <c>INSERT … ON CONFLICT (kind, request_id) WHERE request_id IS NOT NULL DO NOTHING</c>
/// against the partial unique index, so a replayed debit (or credit, …) for the same request changes nothing, also when
/// several writers race. Balance = grants + credits + adjustments − debits, per org and currency, over every entry.
/// </remarks>
public sealed partial class SqliteLedgerStore : ILedgerStore
{
    private const string Columns = "id, org_id, occurred_at, kind, amount_minor, currency, request_id, description";

    private readonly SqliteDatabase _database;
    private readonly ILogger _logger;

    public SqliteLedgerStore(SqliteDatabase database, ILogger<SqliteLedgerStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <exception cref="ArgumentOutOfRangeException">A grant, debit or credit has a negative amount.</exception>
    public async Task<bool> AppendAsync(LedgerEntry entry, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentException.ThrowIfNullOrEmpty(entry.OrgId, nameof(entry));
        ArgumentException.ThrowIfNullOrEmpty(entry.Currency, nameof(entry));
        var kind = LedgerStoredNames.Of(entry.Kind);
        if (entry.Kind != LedgerEntryKind.Adjustment && entry.AmountMinor < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(entry), entry.AmountMinor, $"A {kind} amount must not be negative; only adjustments are signed.");
        }

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                INSERT INTO billing_ledger (org_id, occurred_at, kind, amount_minor, currency, request_id, description)
                VALUES ($org_id, $occurred_at, $kind, $amount_minor, $currency, $request_id, $description)
                ON CONFLICT (kind, request_id) WHERE request_id IS NOT NULL DO NOTHING;
                """;
            var p = command.Parameters;
            p.AddWithValue("$org_id", entry.OrgId);
            p.AddWithValue("$occurred_at", UnixMicroseconds.From(entry.OccurredAt));
            p.AddWithValue("$kind", kind);
            p.AddWithValue("$amount_minor", entry.AmountMinor);
            p.AddWithValue("$currency", entry.Currency);
            p.AddWithValue("$request_id", SqliteValues.OrDbNull(entry.RequestId));
            p.AddWithValue("$description", entry.Description ?? "");
            if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1)
            {
                return true;
            }

            Log.DuplicateLedgerEntry(_logger, kind, entry.RequestId ?? "", entry.OrgId);
            return false;
        }
    }

    public async Task<long> GetBalanceAsync(string orgId, string currency, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(currency);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                SELECT coalesce(sum(CASE kind WHEN 'debit' THEN -amount_minor ELSE amount_minor END), 0)
                FROM billing_ledger
                WHERE org_id = $org_id AND currency = $currency;
                """;
            command.Parameters.AddWithValue("$org_id", orgId);
            command.Parameters.AddWithValue("$currency", currency);
            return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
    }

    /// <remarks>Ordered by time, then id (append order).</remarks>
    public async Task<IReadOnlyList<LedgerEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                SELECT {Columns} FROM billing_ledger
                WHERE org_id = $org_id AND occurred_at >= $from AND occurred_at < $to
                ORDER BY occurred_at, id;
                """;
            command.Parameters.AddWithValue("$org_id", orgId);
            command.Parameters.AddWithValue("$from", UnixMicroseconds.From(from));
            command.Parameters.AddWithValue("$to", UnixMicroseconds.From(to));
            var entries = new List<LedgerEntry>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
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
            }

            return entries;
        }
    }

    // Cortensor.Portal.Storage.Sqlite uses EventIds 6000–6999; the ledger 6110–6119.
    private static partial class Log
    {
        [LoggerMessage(EventId = 6110, EventName = "DuplicateLedgerEntry", Level = LogLevel.Debug,
            Message = "Ledger {Kind} for request {RequestId} of org {OrgId} is already recorded; not appended again")]
        public static partial void DuplicateLedgerEntry(ILogger logger, string kind, string requestId, string orgId);
    }
}
