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
/// Writes usage records in batches with binary COPY into the one <c>requests</c> table (a row per request: its
/// usage event and its request log), idempotent by request id, and reads them back. Implements
/// <see cref="IUsageSink"/> and <see cref="IUsageReader"/>.
/// </summary>
/// <remarks>
/// <para>
/// Idempotency comes from the primary key <c>(request_id, occurred_at)</c> of the partitioned table (Postgres
/// wants the partition key in every unique constraint). A replayed record carries the same <c>occurred_at</c>, so
/// it hits the key and changes nothing. The batch is first de-duplicated in memory (first usage event and first
/// log row of each request id win), paired into rows and sorted by request id.
/// </para>
/// <para>
/// The fast path, taken by every batch without an already-stored row, binary-COPYs the rows straight into
/// <c>requests</c> (COPY buffers rows per partition and is the cheapest way in), in one transaction, or split by
/// request-id range over <see cref="PostgresStorageOptions.UsageWriteConnections"/> connections and transactions
/// written at once. When a COPY hits the primary key (SQLSTATE 23505: a replay after an outage, or a concurrent
/// writer with the same ids), its transaction is rolled back, so nothing of it remains, and its rows are written
/// again in a new transaction: binary COPY into an <c>ON COMMIT DROP</c> temporary table, then
/// <c>INSERT … SELECT … ORDER BY request_id ON CONFLICT (request_id, occurred_at) DO NOTHING</c>, then the part a
/// stored row lacks (a row carried over from V0002 or written by hand with only its usage event or only its log)
/// is filled in. A batch whose first or last row is already stored (a replay) takes that merge path at once.
/// </para>
/// <para>
/// Both paths claim keys in request-id order, so concurrent writers that share ids wait for each other instead of
/// deadlocking. No session state outlives a transaction (the temporary table is dropped at commit), so this is
/// fine behind transaction-mode poolers.
/// </para>
/// </remarks>
public sealed partial class PostgresUsageStore : IUsageSink, IUsageReader
{
    /// <summary>The COPY column order; <see cref="CopyRowsAsync"/> writes the fields in this order.</summary>
    private const string Columns =
        "request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream, " +
        "method, path, status_code, error_code, latency_ms, router_id, upstream_status, log_occurred_at, log_org_id, log_key_id, log_model";

    private const string UsageColumns =
        "request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream";

    private const short ColumnCount = 22;

    /// <summary>COPY data is sent in chunks of about this size (the server works on one while the next is encoded).</summary>
    private const int CopyChunkBytes = 64 * 1024;

    private const string CopyStageSql = $"COPY pg_temp.cp_stage_requests ({Columns}) FROM STDIN (FORMAT BINARY)";

    /// <summary>A batch is split across connections only when each part gets at least this many rows.</summary>
    private const int MinRowsPerConnection = 1000;

    private readonly NpgsqlDataSource _dataSource;
    private readonly int _writeConnections;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly string _copySql;
    private readonly string _createStageSql;
    private readonly string _insertSql;
    private readonly string _fillUsageSql;
    private readonly string _fillLogSql;
    private readonly string _totalsSql;
    private readonly string _totalsByKeySql;
    private readonly string _findUsageSql;
    private readonly string _findLogSql;
    private readonly string _probeSql;

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
        _writeConnections = options.Value.UsageWriteConnections;

        var requests = new StoreSchema(options.Value.Schema).Table("requests");

        _copySql = $"COPY {requests} ({Columns}) FROM STDIN (FORMAT BINARY)";
        _createStageSql = $"CREATE TEMP TABLE cp_stage_requests (LIKE {requests}) ON COMMIT DROP";

        // ORDER BY fixes the order in which keys are claimed, so writers sharing ids cannot deadlock.
        _insertSql =
            $"""
            INSERT INTO {requests} ({Columns})
            SELECT {Columns} FROM pg_temp.cp_stage_requests ORDER BY request_id
            ON CONFLICT (request_id, occurred_at) DO NOTHING
            """;

        // A stored row without its usage event holds the log's org, key and model; when the usage event names
        // others, they become the row's and the log keeps its own in the detached columns.
        const string UsageDiffers = "ROW(r.org_id, r.key_id, r.model) IS DISTINCT FROM ROW(s.org_id, s.key_id, s.model)";
        _fillUsageSql =
            $"""
            UPDATE {requests} r SET
                org_id = s.org_id, key_id = s.key_id, model = s.model, pool = s.pool, outcome = s.outcome,
                prompt_tokens = s.prompt_tokens, completion_tokens = s.completion_tokens,
                tokens_estimated = s.tokens_estimated, stream = s.stream,
                log_occurred_at = CASE WHEN {UsageDiffers} THEN r.occurred_at END,
                log_org_id = CASE WHEN {UsageDiffers} THEN r.org_id END,
                log_key_id = CASE WHEN {UsageDiffers} THEN r.key_id END,
                log_model = CASE WHEN {UsageDiffers} THEN r.model END
            FROM pg_temp.cp_stage_requests s
            WHERE r.request_id = s.request_id AND r.occurred_at = s.occurred_at AND r.outcome IS NULL AND s.outcome IS NOT NULL
            """;

        // A stored row without its log gets the staged one, detached when it disagrees with the stored row.
        const string LogDiffers = "ROW(r.occurred_at, r.org_id, r.key_id, r.model) IS DISTINCT FROM ROW(s.l_at, s.l_org, s.l_key, s.l_model)";
        _fillLogSql =
            $"""
            UPDATE {requests} r SET
                method = s.method, path = s.path, status_code = s.status_code, error_code = s.error_code,
                latency_ms = s.latency_ms, router_id = s.router_id, upstream_status = s.upstream_status,
                log_occurred_at = CASE WHEN {LogDiffers} THEN s.l_at END,
                log_org_id = CASE WHEN {LogDiffers} THEN s.l_org END,
                log_key_id = CASE WHEN {LogDiffers} THEN s.l_key END,
                log_model = CASE WHEN {LogDiffers} THEN s.l_model END
            FROM (
                SELECT request_id, occurred_at, method, path, status_code, error_code, latency_ms, router_id, upstream_status,
                       COALESCE(log_occurred_at, occurred_at) AS l_at,
                       CASE WHEN log_occurred_at IS NULL THEN org_id ELSE log_org_id END AS l_org,
                       CASE WHEN log_occurred_at IS NULL THEN key_id ELSE log_key_id END AS l_key,
                       CASE WHEN log_occurred_at IS NULL THEN model ELSE log_model END AS l_model
                FROM pg_temp.cp_stage_requests
                WHERE method IS NOT NULL
            ) s
            WHERE r.request_id = s.request_id AND r.occurred_at = s.occurred_at AND r.method IS NULL
            """;

        // Two primary-key probes: is the first or the last row (by id) already stored?
        _probeSql =
            $"""
            SELECT EXISTS (SELECT 1 FROM {requests} WHERE request_id = $1 AND occurred_at = $2)
                OR EXISTS (SELECT 1 FROM {requests} WHERE request_id = $3 AND occurred_at = $4)
            """;

        const string Totals = "SELECT count(*), COALESCE(sum(prompt_tokens), 0)::bigint, COALESCE(sum(completion_tokens), 0)::bigint";
        const string IsUsage = "outcome IS NOT NULL";
        _totalsSql = $"{Totals} FROM {requests} WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND {IsUsage}";
        _totalsByKeySql = $"{Totals} FROM {requests} WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND key_id = $4 AND {IsUsage}";

        // By request id alone: one probe of each partition's primary key (request_id leads it). Were an id ever
        // stored with two different times (two records, not a replay), the earlier one is returned.
        _findUsageSql = $"SELECT {UsageColumns} FROM {requests} WHERE request_id = $1 AND {IsUsage} ORDER BY occurred_at LIMIT 1";

        // What the request_logs view shows, without its second (detached-log) branch: one pass over the key.
        _findLogSql =
            $"""
            SELECT request_id, COALESCE(log_occurred_at, occurred_at) AS at,
                   CASE WHEN log_occurred_at IS NULL THEN org_id ELSE log_org_id END,
                   CASE WHEN log_occurred_at IS NULL THEN key_id ELSE log_key_id END,
                   method, path,
                   CASE WHEN log_occurred_at IS NULL THEN model ELSE log_model END,
                   status_code, error_code, latency_ms, router_id, upstream_status
            FROM {requests} WHERE request_id = $1 AND method IS NOT NULL ORDER BY at LIMIT 1
            """;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// A batch of at least <see cref="PostgresStorageOptions.UsageWriteConnections"/> × 1,000 new rows is split by
    /// request-id range across that many connections, each part one transaction, written at the same time (the
    /// server inserts on several cores); the call succeeds only when every part committed. Otherwise the batch
    /// is one transaction. Either way a failed call is retried whole, and parts that did commit then go through
    /// the merge path and change nothing. Duplicate ids inside the batch keep the first occurrence; rows whose
    /// <c>(request_id, occurred_at)</c> is already stored are left as they are.
    /// </remarks>
    public async Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0)
        {
            return;
        }

        var started = _timeProvider.GetTimestamp();
        var rows = ToRows(batch);
        var parts = Math.Clamp(rows.Length / MinRowsPerConnection, 1, _writeConnections);
        WriteResult result;
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        {
            // A replay repeats whole batches: when an end row is stored, merge the batch in one transaction
            // instead of letting COPYs insert (and roll back) rows until they reach the key.
            if (await EndRowStoredAsync(connection, rows, cancellationToken))
            {
                parts = 1;
                result = await MergeAsync(connection, rows, cancellationToken);
            }
            else if (parts == 1)
            {
                result = await WriteRowsAsync(connection, rows, cancellationToken);
            }
            else
            {
                var writes = new Task<WriteResult>[parts];
                for (var i = 0; i < parts; i++)
                {
                    var from = rows.Length * i / parts;
                    var part = new ArraySegment<RequestRow>(rows, from, (rows.Length * (i + 1) / parts) - from);
                    writes[i] = i == 0 ? WriteRowsAsync(connection, part, cancellationToken) : WriteRowsAsync(part, cancellationToken);
                }

                result = default;
                foreach (var written in await Task.WhenAll(writes))
                {
                    result = new WriteResult(result.Merged || written.Merged, result.Inserted + written.Inserted, result.Filled + written.Filled);
                }
            }
        }

        var elapsed = _timeProvider.GetElapsedTime(started).TotalMilliseconds;
        if (result.Merged)
        {
            Log.BatchMerged(_logger, batch.Count, result.Inserted, result.Filled, elapsed);
        }
        else
        {
            Log.BatchWritten(_logger, batch.Count, rows.Length, parts, elapsed);
        }
    }

    /// <summary>A part of a split batch, on a connection of its own.</summary>
    private async Task<WriteResult> WriteRowsAsync(ArraySegment<RequestRow> rows, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        return await WriteRowsAsync(connection, rows, cancellationToken);
    }

    /// <summary>One transaction: the COPY fast path, else the merge path.</summary>
    private async Task<WriteResult> WriteRowsAsync(NpgsqlConnection connection, ArraySegment<RequestRow> rows, CancellationToken cancellationToken)
    {
        if (await TryCopyAsync(connection, rows, cancellationToken))
        {
            return new WriteResult(false, rows.Count, 0);
        }

        return await MergeAsync(connection, rows, cancellationToken);
    }

    private async Task<bool> EndRowStoredAsync(NpgsqlConnection connection, ArraySegment<RequestRow> rows, CancellationToken cancellationToken)
    {
        var first = rows[0];
        var last = rows[^1];
        await using var probe = new NpgsqlCommand(_probeSql, connection);
        probe.Parameters.Add(new NpgsqlParameter<string> { TypedValue = first.RequestId, NpgsqlDbType = NpgsqlDbType.Text });
        probe.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = first.OccurredAt.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        probe.Parameters.Add(new NpgsqlParameter<string> { TypedValue = last.RequestId, NpgsqlDbType = NpgsqlDbType.Text });
        probe.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = last.OccurredAt.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        return await probe.ExecuteScalarAsync(cancellationToken) is true;
    }

    /// <summary>The fast path: COPY straight into the partitioned table.</summary>
    /// <returns>False when a row was already stored (the transaction was rolled back: nothing was written).</returns>
    private async Task<bool> TryCopyAsync(NpgsqlConnection connection, ArraySegment<RequestRow> rows, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            await CopyRowsAsync(connection, _copySql, rows, cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            await transaction.RollbackAsync(cancellationToken);
            return false;
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    /// <summary>The path for rows already (partly) stored: stage, insert what is new, fill in missing parts.</summary>
    private async Task<WriteResult> MergeAsync(NpgsqlConnection connection, ArraySegment<RequestRow> rows, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var create = new NpgsqlCommand(_createStageSql, connection, transaction))
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        await CopyRowsAsync(connection, CopyStageSql, rows, cancellationToken);

        // One round trip, executed in order: the insert claims the new keys in request-id order first.
        await using var merge = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(_insertSql),
                new NpgsqlBatchCommand(_fillUsageSql),
                new NpgsqlBatchCommand(_fillLogSql),
            },
        };
        merge.Timeout = 0;
        await merge.ExecuteNonQueryAsync(cancellationToken);
        var inserted = merge.BatchCommands[0].RecordsAffected;
        var filled = merge.BatchCommands[1].RecordsAffected + merge.BatchCommands[2].RecordsAffected;

        await transaction.CommitAsync(cancellationToken);
        return new WriteResult(true, inserted, filled);
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

    /// <summary>
    /// Writes <paramref name="rows"/> in <see cref="Columns"/> order through a raw binary COPY, sent in chunks so
    /// the server inserts while the client encodes. A server error (such as 23505) surfaces when the COPY ends.
    /// </summary>
    private static async Task CopyRowsAsync(NpgsqlConnection connection, string copySql, ArraySegment<RequestRow> rows, CancellationToken cancellationToken)
    {
        using var buffer = new BinaryCopyBuffer(CopyChunkBytes + 1024);
        var stream = await connection.BeginRawBinaryCopyAsync(copySql, cancellationToken);
        try
        {
            foreach (var row in rows)
            {
                Encode(buffer, row);
                if (buffer.Length >= CopyChunkBytes)
                {
                    await stream.WriteAsync(buffer.WrittenMemory, cancellationToken);
                    buffer.Clear();
                }
            }

            buffer.WriteTrailer();
            await stream.WriteAsync(buffer.WrittenMemory, cancellationToken);
        }
        catch
        {
            // Never let a half-written COPY complete: abort it, then report the original failure.
            try
            {
                await stream.CancelAsync();
            }
            catch (Exception cancelFailure) when (cancelFailure is NpgsqlException or IOException or InvalidOperationException or ObjectDisposedException)
            {
            }

            throw;
        }

        await stream.DisposeAsync();
    }

    private static void Encode(BinaryCopyBuffer buffer, RequestRow row)
    {
        var u = row.Usage;
        var l = row.Log;
        buffer.StartRow(ColumnCount);
        if (u is not null)
        {
            buffer.WriteText(u.RequestId);
            buffer.WriteTimestampTz(u.OccurredAt);
            buffer.WriteText(u.OrgId);
            buffer.WriteText(u.KeyId);
            buffer.WriteText(u.Model);
            buffer.WriteText(u.Pool);
            buffer.WriteInt16((short)u.Outcome);
            buffer.WriteInt32(u.PromptTokens);
            buffer.WriteInt32(u.CompletionTokens);
            buffer.WriteBoolean(u.TokensEstimated);
            buffer.WriteBoolean(u.Stream);
        }
        else
        {
            buffer.WriteText(l!.RequestId);
            buffer.WriteTimestampTz(l.OccurredAt);
            buffer.WriteText(l.OrgId);
            buffer.WriteText(l.KeyId);
            buffer.WriteText(l.Model);
            for (var i = 0; i < 6; i++)
            {
                buffer.WriteNull();
            }
        }

        if (l is null)
        {
            for (var i = 0; i < 11; i++)
            {
                buffer.WriteNull();
            }

            return;
        }

        buffer.WriteText(l.Method);
        buffer.WriteText(l.Path);
        buffer.WriteInt32(l.StatusCode);
        buffer.WriteText(l.ErrorCode);
        buffer.WriteInt32(l.LatencyMs);
        buffer.WriteText(l.RouterId);
        buffer.WriteInt32(l.UpstreamStatus);
        if (row.Detached)
        {
            buffer.WriteTimestampTz(l.OccurredAt);
            buffer.WriteText(l.OrgId);
            buffer.WriteText(l.KeyId);
            buffer.WriteText(l.Model);
        }
        else
        {
            for (var i = 0; i < 4; i++)
            {
                buffer.WriteNull();
            }
        }
    }

    private static string? GetNullableString(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    /// <summary>
    /// One row per request id, sorted by id (ordinal) so keys are claimed in a fixed order. The first usage event
    /// and the first log row of each id win; a usage event and a log row of the same id share a row.
    /// </summary>
    private static RequestRow[] ToRows(IReadOnlyList<UsageRecord> batch)
    {
        var paired = true;
        foreach (var record in batch)
        {
            ArgumentNullException.ThrowIfNull(record);
            ArgumentNullException.ThrowIfNull(record.Usage);
            ArgumentNullException.ThrowIfNull(record.Log);
            paired &= string.Equals(record.Usage.RequestId, record.Log.RequestId, StringComparison.Ordinal);
        }

        return paired ? ToRowsPaired(batch) : ToRowsUnpaired(batch);
    }

    /// <summary>Every record's two parts share its id (what the gateway writes): sort, then keep each id's first record.</summary>
    private static RequestRow[] ToRowsPaired(IReadOnlyList<UsageRecord> batch)
    {
        var ids = new string[batch.Count];
        var order = new int[batch.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = batch[i].Usage.RequestId;
            order[i] = i;
        }

        Array.Sort(ids, order, StringComparer.Ordinal);
        var rows = new RequestRow[ids.Length];
        var count = 0;
        for (var i = 0; i < ids.Length;)
        {
            // The sort is not stable: the smallest index of a run of equal ids is the first occurrence.
            var first = order[i];
            var j = i + 1;
            for (; j < ids.Length && string.Equals(ids[j], ids[i], StringComparison.Ordinal); j++)
            {
                first = Math.Min(first, order[j]);
            }

            var record = batch[first];
            rows[count++] = new RequestRow(record.Usage, record.Log);
            i = j;
        }

        return count == rows.Length ? rows : rows[..count];
    }

    /// <summary>Some record's log names another id than its usage event: pair the parts by id.</summary>
    private static RequestRow[] ToRowsUnpaired(IReadOnlyList<UsageRecord> batch)
    {
        var usages = new Dictionary<string, UsageEvent>(batch.Count, StringComparer.Ordinal);
        var logs = new Dictionary<string, RequestLogEntry>(batch.Count, StringComparer.Ordinal);
        foreach (var record in batch)
        {
            usages.TryAdd(record.Usage.RequestId, record.Usage);
            logs.TryAdd(record.Log.RequestId, record.Log);
        }

        var rows = new List<RequestRow>(usages.Count + logs.Count);
        foreach (var usage in usages.Values)
        {
            logs.Remove(usage.RequestId, out var log);
            rows.Add(new RequestRow(usage, log));
        }

        foreach (var log in logs.Values)
        {
            rows.Add(new RequestRow(null, log));
        }

        rows.Sort(static (a, b) => string.CompareOrdinal(a.RequestId, b.RequestId));
        return [.. rows];
    }

    /// <summary>What writing some rows did.</summary>
    private readonly record struct WriteResult(bool Merged, long Inserted, long Filled);

    /// <summary>A request's row: its usage event and/or its log row (at least one), same request id.</summary>
    private readonly record struct RequestRow(UsageEvent? Usage, RequestLogEntry? Log)
    {
        public string RequestId => Usage?.RequestId ?? Log!.RequestId;

        /// <summary>The row's key time: the usage event's, else the log's.</summary>
        public DateTimeOffset OccurredAt => Usage?.OccurredAt ?? Log!.OccurredAt;

        /// <summary>The log disagrees with the usage event on a shared column: it keeps its own in <c>log_*</c>.</summary>
        public bool Detached => Usage is { } u && Log is { } l
            && (u.OccurredAt != l.OccurredAt
                || !string.Equals(u.OrgId, l.OrgId, StringComparison.Ordinal)
                || !string.Equals(u.KeyId, l.KeyId, StringComparison.Ordinal)
                || !string.Equals(u.Model, l.Model, StringComparison.Ordinal));
    }
}
