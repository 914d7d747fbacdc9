using System.Text.Json;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Sqlite.Keys;

/// <summary>
/// <see cref="IApiKeyStore"/> over the <c>api_keys</c> table. Lookups use the unique <c>hash</c> index;
/// scopes and allowed models are JSON text; timestamps are Unix microseconds (UTC). Thread-safe: every call
/// uses its own pooled connection.
/// </summary>
public sealed class SqliteApiKeyStore : IApiKeyStore
{
    private const int HashSize = 32;

    private const string Columns =
        "key_id, org_id, name, environment, hash, display_prefix, scopes, allowed_models, created_at, expires_at, revoked_at";

    private readonly SqliteDatabase _database;

    public SqliteApiKeyStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
    }

    public async ValueTask<ApiKeyRecord?> FindByHashAsync(ReadOnlyMemory<byte> hash, CancellationToken cancellationToken = default)
    {
        if (hash.Length != HashSize)
        {
            return null;
        }

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {Columns} FROM api_keys WHERE hash = $hash;";
            command.Parameters.Add("$hash", SqliteType.Blob).Value = hash.ToArray();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadRecord(reader) : null;
            }
        }
    }

    /// <exception cref="ArgumentException">The hash is not 32 bytes, or the key id or org id is empty.</exception>
    /// <exception cref="InvalidOperationException">A record with the same key id or hash is already stored.</exception>
    public async Task AddAsync(ApiKeyRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.Hash is not { Length: HashSize })
        {
            throw new ArgumentException($"The hash must be {HashSize} bytes.", nameof(record));
        }

        ArgumentException.ThrowIfNullOrEmpty(record.KeyId, nameof(record));
        ArgumentException.ThrowIfNullOrEmpty(record.OrgId, nameof(record));

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                INSERT INTO api_keys ({Columns}, provider)
                VALUES ($key_id, $org_id, $name, $environment, $hash, $display_prefix, $scopes, $allowed_models, $created_at, $expires_at, $revoked_at, 'local');
                """;
            var p = command.Parameters;
            p.AddWithValue("$key_id", record.KeyId);
            p.AddWithValue("$org_id", record.OrgId);
            p.AddWithValue("$name", record.Name ?? "");
            p.AddWithValue("$environment", ToText(record.Environment));
            p.Add("$hash", SqliteType.Blob).Value = record.Hash;
            p.AddWithValue("$display_prefix", record.DisplayPrefix);
            p.AddWithValue("$scopes", ToJson(record.Scopes ?? []));
            p.AddWithValue("$allowed_models", record.AllowedModels is null ? DBNull.Value : ToJson(record.AllowedModels));
            p.AddWithValue("$created_at", UnixMicroseconds.From(record.CreatedAt));
            p.AddWithValue("$expires_at", UnixMicroseconds.FromNullable(record.ExpiresAt));
            p.AddWithValue("$revoked_at", UnixMicroseconds.FromNullable(record.RevokedAt));
            try
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteErrorCodes.Constraint)
            {
                throw new InvalidOperationException($"A key with id '{record.KeyId}' or the same hash is already stored.", ex);
            }
        }
    }

    public async Task<bool> RevokeAsync(string orgId, string keyId, DateTimeOffset revokedAt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(keyId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = "UPDATE api_keys SET revoked_at = $revoked_at WHERE key_id = $key_id AND org_id = $org_id AND revoked_at IS NULL;";
            command.Parameters.AddWithValue("$revoked_at", UnixMicroseconds.From(revokedAt));
            command.Parameters.AddWithValue("$key_id", keyId);
            command.Parameters.AddWithValue("$org_id", orgId);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }
    }

    /// <summary>The org's keys, revoked ones included, ordered by creation time then key id.</summary>
    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {Columns} FROM api_keys WHERE org_id = $org_id ORDER BY created_at, key_id;";
            command.Parameters.AddWithValue("$org_id", orgId);
            var records = new List<ApiKeyRecord>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    records.Add(ReadRecord(reader));
                }
            }

            return records;
        }
    }

    private static ApiKeyRecord ReadRecord(SqliteDataReader reader) => new()
    {
        KeyId = reader.GetString(0),
        OrgId = reader.GetString(1),
        Name = reader.GetString(2),
        Environment = FromText(reader.GetString(3)),
        Hash = (byte[])reader.GetValue(4),
        DisplayPrefix = reader.GetString(5),
        Scopes = FromJson(reader.GetString(6)),
        AllowedModels = reader.IsDBNull(7) ? null : FromJson(reader.GetString(7)),
        CreatedAt = UnixMicroseconds.ToDateTimeOffset(reader.GetInt64(8)),
        ExpiresAt = reader.IsDBNull(9) ? null : UnixMicroseconds.ToDateTimeOffset(reader.GetInt64(9)),
        RevokedAt = reader.IsDBNull(10) ? null : UnixMicroseconds.ToDateTimeOffset(reader.GetInt64(10)),
    };

    private static string ToText(ApiKeyEnvironment environment) => environment switch
    {
        ApiKeyEnvironment.Live => "live",
        ApiKeyEnvironment.Test => "test",
        _ => throw new ArgumentOutOfRangeException(nameof(environment), environment, "Unknown key environment."),
    };

    private static ApiKeyEnvironment FromText(string text) => text switch
    {
        "live" => ApiKeyEnvironment.Live,
        "test" => ApiKeyEnvironment.Test,
        _ => throw new InvalidOperationException($"Unknown key environment '{text}' in api_keys."),
    };

    private static string ToJson(IReadOnlyList<string> values) =>
        JsonSerializer.Serialize(values as string[] ?? [.. values], SqliteStorageJsonContext.Default.StringArray);

    private static string[] FromJson(string json) =>
        JsonSerializer.Deserialize(json, SqliteStorageJsonContext.Default.StringArray) ?? [];
}
