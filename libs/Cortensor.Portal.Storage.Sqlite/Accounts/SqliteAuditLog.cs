using System.Text.Json;
using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Sqlite.Accounts;

/// <summary>
/// <see cref="IAuditLog"/> over the append-only <c>audit_log</c> table. <c>details</c> is JSON text, checked with
/// <c>json_valid</c>; it is stored as given. <see cref="ListAsync"/> uses the <c>(org_id, occurred_at)</c> index.
/// Thread-safe: every call uses its own pooled connection.
/// </summary>
public sealed class SqliteAuditLog : IAuditLog
{
    private const string Columns = "id, occurred_at, actor_type, actor_id, action, org_id, target_id, details";

    private readonly SqliteDatabase _database;

    public SqliteAuditLog(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
    }

    /// <exception cref="ArgumentException"><see cref="AuditEntry.DetailsJson"/> is not valid JSON, or a required field is empty.</exception>
    /// <exception cref="InvalidOperationException">An entry with this id is already stored.</exception>
    public async Task AppendAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentException.ThrowIfNullOrEmpty(entry.Id, nameof(entry));
        ArgumentException.ThrowIfNullOrEmpty(entry.Action, nameof(entry));
        ArgumentNullException.ThrowIfNull(entry.ActorId, nameof(entry));
        var actorType = ToText(entry.ActorType);
        if (entry.DetailsJson is not null)
        {
            EnsureJson(entry.DetailsJson);
        }

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                INSERT INTO audit_log ({Columns})
                VALUES ($id, $occurred_at, $actor_type, $actor_id, $action, $org_id, $target_id, $details);
                """;
            var p = command.Parameters;
            p.AddWithValue("$id", entry.Id);
            p.AddWithValue("$occurred_at", UnixMicroseconds.From(entry.OccurredAt));
            p.AddWithValue("$actor_type", actorType);
            p.AddWithValue("$actor_id", entry.ActorId);
            p.AddWithValue("$action", entry.Action);
            p.AddWithValue("$org_id", SqliteValues.OrDbNull(entry.OrgId));
            p.AddWithValue("$target_id", SqliteValues.OrDbNull(entry.TargetId));
            p.AddWithValue("$details", SqliteValues.OrDbNull(entry.DetailsJson));
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex) when (SqliteValues.IsConstraintViolation(ex))
            {
                throw new InvalidOperationException($"An audit entry with id '{entry.Id}' is already stored.", ex);
            }
        }
    }

    /// <remarks>Entries at the same time come by id, descending.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is less than 1.</exception>
    public async Task<IReadOnlyList<AuditEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                SELECT {Columns} FROM audit_log
                WHERE org_id = $org_id AND occurred_at >= $from AND occurred_at < $to
                ORDER BY occurred_at DESC, id DESC
                LIMIT $limit;
                """;
            command.Parameters.AddWithValue("$org_id", orgId);
            command.Parameters.AddWithValue("$from", UnixMicroseconds.From(from));
            command.Parameters.AddWithValue("$to", UnixMicroseconds.From(to));
            command.Parameters.AddWithValue("$limit", limit);
            var entries = new List<AuditEntry>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    entries.Add(new AuditEntry
                    {
                        Id = reader.GetString(0),
                        OccurredAt = reader.GetTimestamp(1),
                        ActorType = ActorTypeFromText(reader.GetString(2)),
                        ActorId = reader.GetNullableString(3) ?? "",
                        Action = reader.GetString(4),
                        OrgId = reader.GetNullableString(5),
                        TargetId = reader.GetNullableString(6),
                        DetailsJson = reader.GetNullableString(7),
                    });
                }
            }

            return entries;
        }
    }

    private static void EnsureJson(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new ArgumentException("DetailsJson is not valid JSON.", nameof(json), ex);
        }
    }

    private static string ToText(AuditActorType type) => type switch
    {
        AuditActorType.User => "user",
        AuditActorType.Admin => "admin",
        AuditActorType.System => "system",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown audit actor type."),
    };

    private static AuditActorType ActorTypeFromText(string text) => text switch
    {
        "user" => AuditActorType.User,
        "admin" => AuditActorType.Admin,
        "system" => AuditActorType.System,
        _ => throw new InvalidOperationException($"Unknown actor type '{text}' in audit_log."),
    };
}
