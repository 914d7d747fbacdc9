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
/// nothing for ids already stored (the first write wins). The two insert statements are prepared once per batch
/// and rebound for every row (see <see cref="RawStatement"/>). Thread-safe.
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

            // The batch binds 23 values per record. Through SqliteCommand each bind allocates a binder object
            // (and boxes numbers, and encodes strings to a new UTF-8 array), and each execute a data reader:
            // about 3 KiB of garbage per record, a few milliseconds of a core per batch. The statements are
            // prepared on the connection's own handle instead and bound in place (text as UTF-16, which
            // SQLite copies), so a batch allocates nothing per record.
            using var usage = new RawStatement(connection.Handle!, InsertUsage);
            using var log = new RawStatement(connection.Handle!, InsertLog);
            foreach (var record in batch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ArgumentNullException.ThrowIfNull(record, nameof(batch));
                var e = record.Usage;
                usage.Text(1, e.RequestId);
                usage.Integer(2, UnixMicroseconds.From(e.OccurredAt));
                usage.Text(3, e.OrgId);
                usage.Text(4, e.KeyId);
                usage.Text(5, e.Model);
                usage.Text(6, e.Pool);
                usage.Integer(7, (int)e.Outcome);
                usage.Integer(8, e.PromptTokens);
                usage.Integer(9, e.CompletionTokens);
                usage.Integer(10, e.TokensEstimated ? 1 : 0);
                usage.Integer(11, e.Stream ? 1 : 0);
                usage.Execute();

                var r = record.Log;
                log.Text(1, r.RequestId);
                log.Integer(2, UnixMicroseconds.From(r.OccurredAt));
                log.Text(3, r.OrgId);
                log.Text(4, r.KeyId);
                log.Text(5, r.Method);
                log.Text(6, r.Path);
                log.Text(7, r.Model);
                log.Integer(8, r.StatusCode);
                log.Text(9, r.ErrorCode);
                log.Integer(10, r.LatencyMs);
                log.Text(11, r.RouterId);
                log.Integer(12, r.UpstreamStatus);
                log.Execute();
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

    private static string? NullableString(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
