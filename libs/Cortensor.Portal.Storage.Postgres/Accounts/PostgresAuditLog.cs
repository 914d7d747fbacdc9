using System.Text;
using System.Text.Json;
using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Options;
using Npgsql;
using static Cortensor.Portal.Storage.Postgres.Accounts.PostgresParameters;

namespace Cortensor.Portal.Storage.Postgres.Accounts;

/// <summary>
/// <see cref="IAuditLog"/> over the append-only <c>audit_log</c> table; <see cref="AuditEntry.DetailsJson"/> is a
/// <c>jsonb</c> value.
/// </summary>
/// <remarks>
/// <para>
/// Each call is one statement on a pooled connection: no prepared statements, no session state.
/// </para>
/// <para>
/// <c>jsonb</c> keeps the JSON value, not its text: details come back compact (no insignificant whitespace) with
/// the object keys in <c>jsonb</c>'s order. A null <see cref="AuditEntry.DetailsJson"/> is stored as <c>{}</c>
/// (the column is <c>NOT NULL DEFAULT '{}'</c>) and an empty object reads back as <see langword="null"/>.
/// Details must be valid JSON (else <see cref="ArgumentException"/>); a duplicate id throws
/// <see cref="InvalidOperationException"/>.
/// </para>
/// </remarks>
public sealed class PostgresAuditLog : IAuditLog
{
    private const string Columns = "id, occurred_at, actor_type, actor_id, action, org_id, target_id, details";
    private const string EmptyObject = "{}";

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _insertSql;
    private readonly string _listSql;

    public PostgresAuditLog(NpgsqlDataSource dataSource, IOptions<PostgresStorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        var table = new StoreSchema(options.Value.Schema).Table("audit_log");
        _insertSql = $"INSERT INTO {table} ({Columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        _listSql =
            $"SELECT {Columns} FROM {table} WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 " +
            "ORDER BY occurred_at DESC, id COLLATE \"C\" DESC LIMIT $4";
    }

    /// <exception cref="ArgumentException">A field is missing, or the details are not valid JSON.</exception>
    /// <exception cref="InvalidOperationException">An entry with this id exists.</exception>
    public async Task AppendAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentException.ThrowIfNullOrEmpty(entry.Id, nameof(entry));
        ArgumentNullException.ThrowIfNull(entry.ActorId, nameof(entry));
        ArgumentException.ThrowIfNullOrEmpty(entry.Action, nameof(entry));
        if (entry.DetailsJson is { } json)
        {
            Validate(json, nameof(entry));
        }

        await using var command = _dataSource.CreateCommand(_insertSql);
        var p = command.Parameters;
        p.Add(Text(entry.Id));
        p.Add(Timestamp(entry.OccurredAt));
        p.Add(Text(ToText(entry.ActorType)));
        p.Add(Text(entry.ActorId));
        p.Add(Text(entry.Action));
        p.Add(NullableText(entry.OrgId));
        p.Add(NullableText(entry.TargetId));
        p.Add(Jsonb(entry.DetailsJson ?? EmptyObject));
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrors.UniqueViolation)
        {
            throw new InvalidOperationException($"An audit entry with id '{entry.Id}' is already stored.", ex);
        }
    }

    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is below 1.</exception>
    public async Task<IReadOnlyList<AuditEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        if (from >= to)
        {
            return [];
        }

        await using var command = _dataSource.CreateCommand(_listSql);
        command.Parameters.Add(Text(orgId));
        command.Parameters.Add(Timestamp(from));
        command.Parameters.Add(Timestamp(to));
        command.Parameters.Add(Integer(limit));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var entries = new List<AuditEntry>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var details = Compact(reader.GetString(7));
            entries.Add(new AuditEntry
            {
                Id = reader.GetString(0),
                OccurredAt = reader.GetTimestamp(1),
                ActorType = ActorFromText(reader.GetString(2)),
                ActorId = reader.GetString(3),
                Action = reader.GetString(4),
                OrgId = reader.GetNullableString(5),
                TargetId = reader.GetNullableString(6),
                DetailsJson = details == EmptyObject ? null : details,
            });
        }

        return entries;
    }

    /// <summary>Throws unless <paramref name="json"/> is one valid JSON value.</summary>
    private static void Validate(string json, string paramName)
    {
        try
        {
            var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json));
            if (!reader.Read())
            {
                throw new ArgumentException("DetailsJson is empty.", paramName);
            }

            reader.Skip();
            if (reader.Read())
            {
                throw new ArgumentException("DetailsJson holds more than one JSON value.", paramName);
            }
        }
        catch (JsonException ex)
        {
            throw new ArgumentException("DetailsJson is not valid JSON.", paramName, ex);
        }
    }

    /// <summary>Drops the whitespace <c>jsonb</c> output puts after <c>:</c> and <c>,</c> (and any other outside strings).</summary>
    internal static string Compact(string json)
    {
        var builder = new StringBuilder(json.Length);
        var inString = false;
        var escaped = false;
        foreach (var c in json)
        {
            if (inString)
            {
                builder.Append(c);
                if (escaped)
                {
                    escaped = false;
                }
                else if (c == '\\')
                {
                    escaped = true;
                }
                else if (c == '"')
                {
                    inString = false;
                }
            }
            else if (c is not (' ' or '\t' or '\n' or '\r'))
            {
                builder.Append(c);
                inString = c == '"';
            }
        }

        return builder.ToString();
    }

    private static string ToText(AuditActorType actorType) => actorType switch
    {
        AuditActorType.User => "user",
        AuditActorType.Admin => "admin",
        AuditActorType.System => "system",
        _ => throw new ArgumentOutOfRangeException(nameof(actorType), actorType, "Unknown audit actor type."),
    };

    private static AuditActorType ActorFromText(string value) => value switch
    {
        "user" => AuditActorType.User,
        "admin" => AuditActorType.Admin,
        "system" => AuditActorType.System,
        _ => throw new InvalidOperationException($"audit_log.actor_type holds an unknown value '{value}'."),
    };
}
