using System.Globalization;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Cortensor.Portal.Storage.Postgres.Migrations;

/// <summary>What one <see cref="PostgresPartitionMaintenance.MaintainPartitionsAsync"/> run changed.</summary>
/// <param name="Created">Partitions created, for example <c>requests_p202611</c>.</param>
/// <param name="Dropped">Partitions dropped because they ended before the retention cut-off.</param>
public sealed record PartitionMaintenanceResult(IReadOnlyList<string> Created, IReadOnlyList<string> Dropped);

/// <summary>
/// Keeps the monthly partitions of <c>requests</c> (the table behind the <c>usage_events</c> and <c>request_logs</c>
/// views since V0003): creates them from the current
/// month to <see cref="PostgresStorageOptions.PartitionMonthsAhead"/> months ahead and drops those that end
/// before <c>now - <see cref="PostgresStorageOptions.UsageRetentionMonths"/></c>.
/// </summary>
/// <remarks>
/// <para>
/// Partitions are named <c>&lt;table&gt;_pYYYYMM</c> and cover <c>[first of month, first of next month)</c> in
/// UTC. Rows outside every monthly partition land in <c>&lt;table&gt;_default</c>, so an insert never fails;
/// when a month's partition is created later, its rows are moved out of the default partition.
/// </para>
/// <para>
/// Idempotent and safe to run from several replicas at once: changes happen in a transaction holding a
/// transaction-scoped advisory lock on a key derived from the schema. The current month is never dropped.
/// Dropping a month also deletes any rows of that age from the default partitions. Run it after migrating (the
/// hosted service does so, then daily).
/// </para>
/// </remarks>
public sealed partial class PostgresPartitionMaintenance
{
    /// <summary>The partitioned tables.</summary>
    internal static readonly string[] PartitionedTables = ["requests"];

    private readonly NpgsqlDataSource _dataSource;
    private readonly StoreSchema _schema;
    private readonly PostgresStorageOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public PostgresPartitionMaintenance(
        NpgsqlDataSource dataSource,
        IOptions<PostgresStorageOptions> options,
        TimeProvider timeProvider,
        ILogger<PostgresPartitionMaintenance>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _dataSource = dataSource;
        _options = options.Value;
        _schema = new StoreSchema(_options.Schema);
        _timeProvider = timeProvider;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The partition name for a month, for example <c>requests_p202611</c>.</summary>
    public static string PartitionName(string table, int year, int month) =>
        string.Create(CultureInfo.InvariantCulture, $"{table}_p{year:D4}{month:D2}");

    /// <summary>Creates the missing partitions and drops expired ones.</summary>
    /// <exception cref="PostgresStorageException">The server cannot be used (see <see cref="PostgresStorageException.Error"/>).</exception>
    public async Task<PartitionMaintenanceResult> MaintainPartitionsAsync(CancellationToken cancellationToken = default)
    {
        var now = _timeProvider.GetUtcNow();
        var currentMonth = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var created = new List<string>();
        var dropped = new List<string>();
        try
        {
            await using var connection = await PostgresErrors.OpenAsync(_dataSource, cancellationToken);
            var existing = await ListPartitionsAsync(connection, cancellationToken);

            foreach (var table in PartitionedTables)
            {
                for (var i = 0; i <= _options.PartitionMonthsAhead; i++)
                {
                    var month = currentMonth.AddMonths(i);
                    var name = PartitionName(table, month.Year, month.Month);
                    if (!existing.Contains(name) && await CreatePartitionAsync(connection, table, name, month, cancellationToken))
                    {
                        created.Add(name);
                        Log.PartitionCreated(_logger, _schema.Name, name);
                    }
                }
            }

            if (_options.UsageRetentionMonths > 0)
            {
                // Keep every month that still holds rows younger than the cut-off; never the current month.
                var cutoff = now.AddMonths(-_options.UsageRetentionMonths);
                var keepFrom = new DateTimeOffset(cutoff.Year, cutoff.Month, 1, 0, 0, 0, TimeSpan.Zero);
                if (keepFrom > currentMonth)
                {
                    keepFrom = currentMonth;
                }

                foreach (var table in PartitionedTables)
                {
                    var expired = existing
                        .Select(name => (Name: name, Month: ParseMonth(table, name)))
                        .Where(p => p.Month is { } m && m.AddMonths(1) <= keepFrom)
                        .Select(p => p.Name)
                        .Order(StringComparer.Ordinal)
                        .ToArray();
                    if (expired.Length > 0)
                    {
                        await DropPartitionsAsync(connection, table, expired, keepFrom, cancellationToken);
                        foreach (var name in expired)
                        {
                            dropped.Add(name);
                            Log.PartitionDropped(_logger, _schema.Name, name);
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (PostgresErrors.Translate(ex, _dataSource) is { } translated)
        {
            throw translated;
        }

        return new PartitionMaintenanceResult(created, dropped);
    }

    /// <summary>The month a partition named <c>&lt;table&gt;_pYYYYMM</c> covers; null for other names.</summary>
    internal static DateTimeOffset? ParseMonth(string table, string partitionName)
    {
        var prefix = table + "_p";
        if (partitionName.Length != prefix.Length + 6 || !partitionName.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var digits = partitionName.AsSpan(prefix.Length);
        if (!int.TryParse(digits[..4], NumberStyles.None, CultureInfo.InvariantCulture, out var year)
            || !int.TryParse(digits[4..], NumberStyles.None, CultureInfo.InvariantCulture, out var month)
            || year < 1 || month is < 1 or > 12)
        {
            return null;
        }

        return new DateTimeOffset(year, month, 1, 0, 0, 0, TimeSpan.Zero);
    }

    private async Task<HashSet<string>> ListPartitionsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT child.relname
            FROM pg_catalog.pg_inherits i
            JOIN pg_catalog.pg_class child ON child.oid = i.inhrelid
            JOIN pg_catalog.pg_class parent ON parent.oid = i.inhparent
            JOIN pg_catalog.pg_namespace n ON n.oid = parent.relnamespace
            WHERE n.nspname = $1 AND parent.relname = ANY ($2)
            """,
            connection);
        command.Parameters.Add(new NpgsqlParameter { Value = _schema.Name, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter
        {
            Value = PartitionedTables,
            NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text,
        });
        var names = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }

    private async Task<bool> CreatePartitionAsync(NpgsqlConnection connection, string table, string name, DateTimeOffset month, CancellationToken cancellationToken)
    {
        var parent = _schema.Table(table);
        var partition = _schema.Table(name);
        var defaultPartition = _schema.Table(table + "_default");
        var from = BoundLiteral(month);
        var to = BoundLiteral(month.AddMonths(1));

        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);

        // Re-check under the lock: another replica may have created it.
        await using (var exists = new NpgsqlCommand("SELECT pg_catalog.to_regclass($1) IS NOT NULL", connection, transaction))
        {
            exists.Parameters.Add(new NpgsqlParameter { Value = partition, NpgsqlDbType = NpgsqlDbType.Text });
            if (await exists.ExecuteScalarAsync(cancellationToken) is true)
            {
                await transaction.RollbackAsync(cancellationToken);
                return false;
            }
        }

        // Writers go through the parent, so this lock (which still allows reads) keeps the default partition
        // from gaining rows for this month while they are moved.
        await ExecuteAsync(connection, transaction, $"LOCK TABLE {parent} IN SHARE ROW EXCLUSIVE MODE", cancellationToken);

        bool defaultHasRows;
        await using (var check = new NpgsqlCommand(
            $"SELECT EXISTS (SELECT 1 FROM {defaultPartition} WHERE occurred_at >= $1 AND occurred_at < $2)",
            connection,
            transaction))
        {
            check.Parameters.Add(new NpgsqlParameter { Value = month, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            check.Parameters.Add(new NpgsqlParameter { Value = month.AddMonths(1), NpgsqlDbType = NpgsqlDbType.TimestampTz });
            defaultHasRows = await check.ExecuteScalarAsync(cancellationToken) is true;
        }

        if (!defaultHasRows)
        {
            await ExecuteAsync(
                connection,
                transaction,
                $"CREATE TABLE IF NOT EXISTS {partition} PARTITION OF {parent} FOR VALUES FROM ('{from}') TO ('{to}')",
                cancellationToken);
        }
        else
        {
            // Postgres refuses a new partition whose range has rows in the default partition: move them first.
            await ExecuteAsync(
                connection,
                transaction,
                $"CREATE TABLE {partition} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
                cancellationToken);
            await using (var move = new NpgsqlCommand(
                $"WITH moved AS (DELETE FROM {defaultPartition} WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *) INSERT INTO {partition} SELECT * FROM moved",
                connection,
                transaction))
            {
                move.Parameters.Add(new NpgsqlParameter { Value = month, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                move.Parameters.Add(new NpgsqlParameter { Value = month.AddMonths(1), NpgsqlDbType = NpgsqlDbType.TimestampTz });
                move.CommandTimeout = 0;
                var moved = await move.ExecuteNonQueryAsync(cancellationToken);
                Log.RowsMovedFromDefault(_logger, _schema.Name, name, moved);
            }

            await ExecuteAsync(
                connection,
                transaction,
                $"ALTER TABLE {parent} ATTACH PARTITION {partition} FOR VALUES FROM ('{from}') TO ('{to}')",
                cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    private async Task DropPartitionsAsync(
        NpgsqlConnection connection,
        string table,
        string[] partitions,
        DateTimeOffset keepFrom,
        CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);
        foreach (var name in partitions)
        {
            await ExecuteAsync(connection, transaction, $"DROP TABLE IF EXISTS {_schema.Table(name)}", cancellationToken);
        }

        // Stray rows of that age in the default partition are past retention too.
        await using (var delete = new NpgsqlCommand($"DELETE FROM {_schema.Table(table + "_default")} WHERE occurred_at < $1", connection, transaction))
        {
            delete.Parameters.Add(new NpgsqlParameter { Value = keepFrom, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            delete.CommandTimeout = 0;
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private async Task LockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_catalog.pg_advisory_xact_lock($1)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = _schema.PartitionLockKey, NpgsqlDbType = NpgsqlDbType.Bigint });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A timestamptz literal with an explicit UTC offset, independent of the session time zone.</summary>
    private static string BoundLiteral(DateTimeOffset month) =>
        month.UtcDateTime.ToString("yyyy-MM-dd' 00:00:00+00'", CultureInfo.InvariantCulture);
}
