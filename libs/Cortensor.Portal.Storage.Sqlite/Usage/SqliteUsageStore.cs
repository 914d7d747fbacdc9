using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Sqlite.Usage;

/// <summary>
/// The SQLite end of the metering pipeline: writes <c>usage_events</c> and <c>request_logs</c> and reads them back.
/// </summary>
/// <remarks>
/// <see cref="WriteBatchAsync"/> writes a whole batch in one <c>BEGIN IMMEDIATE</c> transaction with
/// <c>INSERT OR IGNORE</c> on the <c>request_id</c> primary keys, so replays and overlapping batches change
/// nothing for ids already stored (the first write wins). The two insert commands are prepared once per batch
/// and their parameters rebound for every row. Thread-safe.
/// </remarks>
public sealed class SqliteUsageStore : IUsageSink, IUsageReader
{
    private const string InsertUsage = """
        INSERT OR IGNORE INTO usage_events
            (request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream)
        VALUES ($request_id, $occurred_at, $org_id, $key_id, $model, $pool, $outcome, $prompt_tokens, $completion_tokens, $tokens_estimated, $stream);
        """;

    private const string InsertLog = """
        INSERT OR IGNORE INTO request_logs
            (request_id, occurred_at, org_id, key_id, method, path, model, status_code, error_code, latency_ms, router_id, upstream_status)
        VALUES ($request_id, $occurred_at, $org_id, $key_id, $method, $path, $model, $status_code, $error_code, $latency_ms, $router_id, $upstream_status);
        """;

    private readonly SqliteDatabase _database;

    public SqliteUsageStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Runs on a thread of its own. Microsoft.Data.Sqlite is synchronous underneath (its async methods complete
    /// inline), so a batch would otherwise hold a thread-pool worker for its whole transaction, including any wait
    /// for the write lock; on a small machine that worker is one of the few serving requests.
    /// </remarks>
    public Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0)
        {
            return Task.CompletedTask;
        }

        return Task.Factory.StartNew(
            () => WriteAsync(batch, cancellationToken),
            cancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default).Unwrap();
    }

    private async Task WriteAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
    {
        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var tx = connection.BeginTransaction(deferred: false);
            using var usage = connection.CreateCommand();
            usage.Transaction = tx;
            usage.CommandText = InsertUsage;
            var u = usage.Parameters;
            var uRequestId = u.Add("$request_id", SqliteType.Text);
            var uOccurredAt = u.Add("$occurred_at", SqliteType.Integer);
            var uOrgId = u.Add("$org_id", SqliteType.Text);
            var uKeyId = u.Add("$key_id", SqliteType.Text);
            var uModel = u.Add("$model", SqliteType.Text);
            var uPool = u.Add("$pool", SqliteType.Text);
            var uOutcome = u.Add("$outcome", SqliteType.Integer);
            var uPrompt = u.Add("$prompt_tokens", SqliteType.Integer);
            var uCompletion = u.Add("$completion_tokens", SqliteType.Integer);
            var uEstimated = u.Add("$tokens_estimated", SqliteType.Integer);
            var uStream = u.Add("$stream", SqliteType.Integer);
            usage.Prepare();

            using var log = connection.CreateCommand();
            log.Transaction = tx;
            log.CommandText = InsertLog;
            var l = log.Parameters;
            var lRequestId = l.Add("$request_id", SqliteType.Text);
            var lOccurredAt = l.Add("$occurred_at", SqliteType.Integer);
            var lOrgId = l.Add("$org_id", SqliteType.Text);
            var lKeyId = l.Add("$key_id", SqliteType.Text);
            var lMethod = l.Add("$method", SqliteType.Text);
            var lPath = l.Add("$path", SqliteType.Text);
            var lModel = l.Add("$model", SqliteType.Text);
            var lStatus = l.Add("$status_code", SqliteType.Integer);
            var lError = l.Add("$error_code", SqliteType.Text);
            var lLatency = l.Add("$latency_ms", SqliteType.Integer);
            var lRouter = l.Add("$router_id", SqliteType.Text);
            var lUpstream = l.Add("$upstream_status", SqliteType.Integer);
            log.Prepare();

            foreach (var record in batch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ArgumentNullException.ThrowIfNull(record, nameof(batch));
                var e = record.Usage;
                uRequestId.Value = e.RequestId;
                uOccurredAt.Value = UnixMicroseconds.From(e.OccurredAt);
                uOrgId.Value = OrNull(e.OrgId);
                uKeyId.Value = OrNull(e.KeyId);
                uModel.Value = OrNull(e.Model);
                uPool.Value = OrNull(e.Pool);
                uOutcome.Value = (int)e.Outcome;
                uPrompt.Value = e.PromptTokens;
                uCompletion.Value = e.CompletionTokens;
                uEstimated.Value = e.TokensEstimated ? 1 : 0;
                uStream.Value = e.Stream ? 1 : 0;
                await usage.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);

                var r = record.Log;
                lRequestId.Value = r.RequestId;
                lOccurredAt.Value = UnixMicroseconds.From(r.OccurredAt);
                lOrgId.Value = OrNull(r.OrgId);
                lKeyId.Value = OrNull(r.KeyId);
                lMethod.Value = r.Method;
                lPath.Value = r.Path;
                lModel.Value = OrNull(r.Model);
                lStatus.Value = r.StatusCode;
                lError.Value = OrNull(r.ErrorCode);
                lLatency.Value = r.LatencyMs;
                lRouter.Value = OrNull(r.RouterId);
                lUpstream.Value = r.UpstreamStatus is { } upstream ? upstream : DBNull.Value;
                await log.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async Task<UsageTotals> GetTotalsAsync(string orgId, DateTimeOffset from, DateTimeOffset to, string? keyId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = keyId is null
                ? """
                  SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
                  FROM usage_events
                  WHERE org_id = $org_id AND occurred_at >= $from AND occurred_at < $to;
                  """
                : """
                  SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
                  FROM usage_events
                  WHERE key_id = $key_id AND org_id = $org_id AND occurred_at >= $from AND occurred_at < $to;
                  """;
            command.Parameters.AddWithValue("$org_id", orgId);
            command.Parameters.AddWithValue("$from", UnixMicroseconds.From(from));
            command.Parameters.AddWithValue("$to", UnixMicroseconds.From(to));
            if (keyId is not null)
            {
                command.Parameters.AddWithValue("$key_id", keyId);
            }

            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                return new UsageTotals(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
            }
        }
    }

    /// <inheritdoc/>
    public async Task<UsageEvent?> FindUsageEventAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                SELECT request_id, occurred_at, org_id, key_id, model, pool, outcome, prompt_tokens, completion_tokens, tokens_estimated, stream
                FROM usage_events WHERE request_id = $request_id;
                """;
            command.Parameters.AddWithValue("$request_id", requestId);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }

                return new UsageEvent
                {
                    RequestId = reader.GetString(0),
                    OccurredAt = UnixMicroseconds.ToDateTimeOffset(reader.GetInt64(1)),
                    OrgId = NullableString(reader, 2),
                    KeyId = NullableString(reader, 3),
                    Model = NullableString(reader, 4),
                    Pool = NullableString(reader, 5),
                    Outcome = (UsageOutcome)reader.GetInt32(6),
                    PromptTokens = reader.GetInt32(7),
                    CompletionTokens = reader.GetInt32(8),
                    TokensEstimated = reader.GetInt64(9) != 0,
                    Stream = reader.GetInt64(10) != 0,
                };
            }
        }
    }

    /// <inheritdoc/>
    public async Task<RequestLogEntry?> FindRequestLogAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                SELECT request_id, occurred_at, org_id, key_id, method, path, model, status_code, error_code, latency_ms, router_id, upstream_status
                FROM request_logs WHERE request_id = $request_id;
                """;
            command.Parameters.AddWithValue("$request_id", requestId);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }

                return new RequestLogEntry
                {
                    RequestId = reader.GetString(0),
                    OccurredAt = UnixMicroseconds.ToDateTimeOffset(reader.GetInt64(1)),
                    OrgId = NullableString(reader, 2),
                    KeyId = NullableString(reader, 3),
                    Method = reader.GetString(4),
                    Path = reader.GetString(5),
                    Model = NullableString(reader, 6),
                    StatusCode = reader.GetInt32(7),
                    ErrorCode = NullableString(reader, 8),
                    LatencyMs = reader.GetInt32(9),
                    RouterId = NullableString(reader, 10),
                    UpstreamStatus = reader.IsDBNull(11) ? null : reader.GetInt32(11),
                };
            }
        }
    }

    private static object OrNull(string? value) => (object?)value ?? DBNull.Value;

    private static string? NullableString(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
