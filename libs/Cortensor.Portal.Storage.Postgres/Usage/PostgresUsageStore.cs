using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Cortensor.Portal.Storage.Postgres.Usage;

/// <summary>
/// Writes usage events and request logs in batches with binary COPY, idempotent by request id, and reads them
/// back. Implements <see cref="IUsageSink"/> and <see cref="IUsageReader"/>.
/// </summary>
/// <remarks>
/// <para>
/// Idempotency comes from the primary keys <c>(request_id, occurred_at)</c> of the partitioned tables (Postgres
/// wants the partition key in every unique constraint). A replayed record carries the same <c>occurred_at</c>, so
/// it hits the key and changes nothing. The batch is first de-duplicated by request id in memory (first
/// occurrence wins) and sorted by request id.
/// </para>
/// <para>
/// One batch is one transaction. The fast path, taken by every batch without an already-stored row, binary-COPYs
/// the rows straight into <c>usage_events</c> and <c>request_logs</c> (COPY buffers rows per partition and is the
/// cheapest way in). When that hits the primary key (SQLSTATE 23505: a replay after an outage, or a concurrent
/// writer with the same ids), the transaction is rolled back, so nothing of it remains, and the batch is written
/// again in a new transaction: binary COPY into two <c>ON COMMIT DROP</c> temporary tables, then
/// <c>INSERT … SELECT … ORDER BY request_id ON CONFLICT (request_id, occurred_at) DO NOTHING</c>.
/// </para>
/// <para>
/// Both paths claim keys in request-id order (usage rows before log rows), so concurrent writers that share ids
/// wait for each other instead of deadlocking. No session state outlives a transaction (the temporary tables
/// are dropped at commit), so this is fine behind transaction-mode poolers.
/// </para>
/// </remarks>
public sealed partial class PostgresUsageStore : IUsageSink, IUsageReader
{
    private const string UsageColumns =
        "request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream";

    private const string LogColumns =
        "request_id, occurred_at, org_id, key_id, method, path, model, status_code, error_code, latency_ms, router_id, upstream_status";

    private const string CreateStagingSql =
        """
        CREATE TEMP TABLE cp_stage_usage (
            request_id text COLLATE "C" NOT NULL, occurred_at timestamptz NOT NULL, org_id text, key_id text, model text, pool text,
            outcome smallint NOT NULL, prompt_tokens integer NOT NULL, completion_tokens integer NOT NULL,
            tokens_estimated boolean NOT NULL, stream boolean NOT NULL
        ) ON COMMIT DROP;
        CREATE TEMP TABLE cp_stage_logs (
            request_id text COLLATE "C" NOT NULL, occurred_at timestamptz NOT NULL, org_id text, key_id text, method text NOT NULL,
            path text NOT NULL, model text, status_code integer NOT NULL, error_code text, latency_ms integer NOT NULL,
            router_id text, upstream_status integer
        ) ON COMMIT DROP
        """;

    private const string CopyStageUsageSql = $"COPY pg_temp.cp_stage_usage ({UsageColumns}) FROM STDIN (FORMAT BINARY)";

    private const string CopyStageLogsSql = $"COPY pg_temp.cp_stage_logs ({LogColumns}) FROM STDIN (FORMAT BINARY)";

    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly string _copyUsageSql;
    private readonly string _copyLogsSql;
    private readonly string _insertUsageSql;
    private readonly string _insertLogsSql;
    private readonly string _totalsSql;
    private readonly string _totalsByKeySql;
    private readonly string _findUsageSql;
    private readonly string _findLogSql;

    public PostgresUsageStore(
        NpgsqlDataSource dataSource,
        IOptions<PostgresStorageOptions> options,
        TimeProvider? timeProvider = null,
        ILogger<PostgresUsageStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;

        var schema = new StoreSchema(options.Value.Schema);
        var usageEvents = schema.Table("usage_events");
        var requestLogs = schema.Table("request_logs");

        _copyUsageSql = $"COPY {usageEvents} ({UsageColumns}) FROM STDIN (FORMAT BINARY)";
        _copyLogsSql = $"COPY {requestLogs} ({LogColumns}) FROM STDIN (FORMAT BINARY)";

        // ORDER BY fixes the order in which keys are claimed, so writers sharing ids cannot deadlock.
        _insertUsageSql =
            $"""
            INSERT INTO {usageEvents} ({UsageColumns})
            SELECT {UsageColumns} FROM pg_temp.cp_stage_usage ORDER BY request_id
            ON CONFLICT (request_id, occurred_at) DO NOTHING
            """;
        _insertLogsSql =
            $"""
            INSERT INTO {requestLogs} ({LogColumns})
            SELECT {LogColumns} FROM pg_temp.cp_stage_logs ORDER BY request_id
            ON CONFLICT (request_id, occurred_at) DO NOTHING
            """;

        const string Totals = "SELECT count(*), COALESCE(sum(prompt_tokens), 0)::bigint, COALESCE(sum(completion_tokens), 0)::bigint";
        _totalsSql = $"{Totals} FROM {usageEvents} WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3";
        _totalsByKeySql = $"{Totals} FROM {usageEvents} WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND key_id = $4";

        // By request id alone: one probe of each partition's primary key (request_id leads it). Were an id ever
        // stored with two different times (two records, not a replay), the earlier one is returned.
        _findUsageSql = $"SELECT {UsageColumns} FROM {usageEvents} WHERE request_id = $1 ORDER BY occurred_at LIMIT 1";
        _findLogSql = $"SELECT {LogColumns} FROM {requestLogs} WHERE request_id = $1 ORDER BY occurred_at LIMIT 1";
    }

    /// <inheritdoc/>
    /// <remarks>
    /// All or nothing: one committed transaction per batch. Duplicate ids inside the batch keep the first
    /// occurrence; rows whose <c>(request_id, occurred_at)</c> is already stored are left as they are.
    /// </remarks>
    public async Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0)
        {
            return;
        }

        var started = _timeProvider.GetTimestamp();
        var usages = Distinct(batch, static r => r.Usage, static u => u.RequestId);
        var logs = Distinct(batch, static r => r.Log, static l => l.RequestId);

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        if (await TryCopyAsync(connection, usages, logs, cancellationToken))
        {
            Log.BatchWritten(_logger, batch.Count, usages.Count, logs.Count, _timeProvider.GetElapsedTime(started).TotalMilliseconds);
            return;
        }

        var (newUsage, newLogs) = await MergeAsync(connection, usages, logs, cancellationToken);
        Log.BatchMerged(_logger, batch.Count, newUsage, newLogs, _timeProvider.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>The fast path: COPY straight into the partitioned tables.</summary>
    /// <returns>False when a row was already stored (the transaction was rolled back: nothing was written).</returns>
    private async Task<bool> TryCopyAsync(NpgsqlConnection connection, List<UsageEvent> usages, List<RequestLogEntry> logs, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            await CopyUsageAsync(connection, _copyUsageSql, usages, cancellationToken);
            await CopyLogsAsync(connection, _copyLogsSql, logs, cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            await transaction.RollbackAsync(cancellationToken);
            return false;
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    /// <summary>The path for batches holding stored rows: stage, then insert what is new.</summary>
    private async Task<(long NewUsage, long NewLogs)> MergeAsync(NpgsqlConnection connection, List<UsageEvent> usages, List<RequestLogEntry> logs, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var create = new NpgsqlCommand(CreateStagingSql, connection, transaction))
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        await CopyUsageAsync(connection, CopyStageUsageSql, usages, cancellationToken);
        await CopyLogsAsync(connection, CopyStageLogsSql, logs, cancellationToken);

        // Two statements, one round trip, executed in order: usage keys are always claimed before log keys.
        await using var insert = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(_insertUsageSql),
                new NpgsqlBatchCommand(_insertLogsSql),
            },
        };
        insert.Timeout = 0;
        await insert.ExecuteNonQueryAsync(cancellationToken);
        var newUsage = insert.BatchCommands[0].RecordsAffected;
        var newLogs = insert.BatchCommands[1].RecordsAffected;

        await transaction.CommitAsync(cancellationToken);
        return (newUsage, newLogs);
    }

    /// <inheritdoc/>
    public async Task<UsageTotals> GetTotalsAsync(string orgId, DateTimeOffset from, DateTimeOffset to, string? keyId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        await using var command = _dataSource.CreateCommand(keyId is null ? _totalsSql : _totalsByKeySql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = orgId, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        if (keyId is not null)
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = keyId, NpgsqlDbType = NpgsqlDbType.Text });
        }

        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new UsageTotals(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    /// <inheritdoc/>
    public async Task<UsageEvent?> FindUsageEventAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        await using var command = _dataSource.CreateCommand(_findUsageSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = requestId, NpgsqlDbType = NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new UsageEvent
        {
            RequestId = reader.GetString(0),
            OccurredAt = reader.GetFieldValue<DateTimeOffset>(1),
            OrgId = GetNullableString(reader, 2),
            KeyId = GetNullableString(reader, 3),
            Model = GetNullableString(reader, 4),
            Pool = GetNullableString(reader, 5),
            Outcome = (UsageOutcome)reader.GetInt16(6),
            PromptTokens = reader.GetInt32(7),
            CompletionTokens = reader.GetInt32(8),
            TokensEstimated = reader.GetBoolean(9),
            Stream = reader.GetBoolean(10),
        };
    }

    /// <inheritdoc/>
    public async Task<RequestLogEntry?> FindRequestLogAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        await using var command = _dataSource.CreateCommand(_findLogSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = requestId, NpgsqlDbType = NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new RequestLogEntry
        {
            RequestId = reader.GetString(0),
            OccurredAt = reader.GetFieldValue<DateTimeOffset>(1),
            OrgId = GetNullableString(reader, 2),
            KeyId = GetNullableString(reader, 3),
            Method = reader.GetString(4),
            Path = reader.GetString(5),
            Model = GetNullableString(reader, 6),
            StatusCode = reader.GetInt32(7),
            ErrorCode = GetNullableString(reader, 8),
            LatencyMs = reader.GetInt32(9),
            RouterId = GetNullableString(reader, 10),
            UpstreamStatus = reader.IsDBNull(11) ? null : reader.GetInt32(11),
        };
    }

    private static async Task CopyUsageAsync(NpgsqlConnection connection, string copySql, List<UsageEvent> usages, CancellationToken cancellationToken)
    {
        await using var importer = await connection.BeginBinaryImportAsync(copySql, cancellationToken);
        foreach (var u in usages)
        {
            await importer.StartRowAsync(cancellationToken);
            await importer.WriteAsync(u.RequestId, NpgsqlDbType.Text, cancellationToken);
            await importer.WriteAsync(u.OccurredAt.ToUniversalTime(), NpgsqlDbType.TimestampTz, cancellationToken);
            await WriteTextAsync(importer, u.OrgId, cancellationToken);
            await WriteTextAsync(importer, u.KeyId, cancellationToken);
            await WriteTextAsync(importer, u.Model, cancellationToken);
            await WriteTextAsync(importer, u.Pool, cancellationToken);
            await importer.WriteAsync((short)u.Outcome, NpgsqlDbType.Smallint, cancellationToken);
            await importer.WriteAsync(u.PromptTokens, NpgsqlDbType.Integer, cancellationToken);
            await importer.WriteAsync(u.CompletionTokens, NpgsqlDbType.Integer, cancellationToken);
            await importer.WriteAsync(u.TokensEstimated, NpgsqlDbType.Boolean, cancellationToken);
            await importer.WriteAsync(u.Stream, NpgsqlDbType.Boolean, cancellationToken);
        }

        await importer.CompleteAsync(cancellationToken);
    }

    private static async Task CopyLogsAsync(NpgsqlConnection connection, string copySql, List<RequestLogEntry> logs, CancellationToken cancellationToken)
    {
        await using var importer = await connection.BeginBinaryImportAsync(copySql, cancellationToken);
        foreach (var l in logs)
        {
            await importer.StartRowAsync(cancellationToken);
            await importer.WriteAsync(l.RequestId, NpgsqlDbType.Text, cancellationToken);
            await importer.WriteAsync(l.OccurredAt.ToUniversalTime(), NpgsqlDbType.TimestampTz, cancellationToken);
            await WriteTextAsync(importer, l.OrgId, cancellationToken);
            await WriteTextAsync(importer, l.KeyId, cancellationToken);
            await importer.WriteAsync(l.Method, NpgsqlDbType.Text, cancellationToken);
            await importer.WriteAsync(l.Path, NpgsqlDbType.Text, cancellationToken);
            await WriteTextAsync(importer, l.Model, cancellationToken);
            await importer.WriteAsync(l.StatusCode, NpgsqlDbType.Integer, cancellationToken);
            await WriteTextAsync(importer, l.ErrorCode, cancellationToken);
            await importer.WriteAsync(l.LatencyMs, NpgsqlDbType.Integer, cancellationToken);
            await WriteTextAsync(importer, l.RouterId, cancellationToken);
            if (l.UpstreamStatus is { } upstream)
            {
                await importer.WriteAsync(upstream, NpgsqlDbType.Integer, cancellationToken);
            }
            else
            {
                await importer.WriteNullAsync(cancellationToken);
            }
        }

        await importer.CompleteAsync(cancellationToken);
    }

    private static Task WriteTextAsync(NpgsqlBinaryImporter importer, string? value, CancellationToken cancellationToken) =>
        value is null ? importer.WriteNullAsync(cancellationToken) : importer.WriteAsync(value, NpgsqlDbType.Text, cancellationToken);

    private static string? GetNullableString(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    /// <summary>First occurrence of each id, sorted by id (ordinal) so keys are claimed in a fixed order.</summary>
    private static List<T> Distinct<T>(IReadOnlyList<UsageRecord> batch, Func<UsageRecord, T> select, Func<T, string> id)
    {
        var seen = new HashSet<string>(batch.Count, StringComparer.Ordinal);
        var items = new List<T>(batch.Count);
        foreach (var record in batch)
        {
            ArgumentNullException.ThrowIfNull(record);
            var item = select(record);
            ArgumentNullException.ThrowIfNull(item);
            if (seen.Add(id(item)))
            {
                items.Add(item);
            }
        }

        items.Sort((a, b) => string.CompareOrdinal(id(a), id(b)));
        return items;
    }
}
