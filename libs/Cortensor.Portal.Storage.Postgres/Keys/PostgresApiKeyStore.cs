using Cortensor.Portal.Keys;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Cortensor.Portal.Storage.Postgres.Keys;

/// <summary>
/// <see cref="IApiKeyStore"/> over the <c>api_keys</c> table: the 32-byte SHA-256 is a unique <c>bytea</c>,
/// scopes and allowed models are <c>text[]</c> (a null <c>allowed_models</c> means every model).
/// </summary>
/// <remarks>Each call is one statement on a pooled connection: no prepared statements, no session state.</remarks>
public sealed class PostgresApiKeyStore : IApiKeyStore
{
    private const string Columns =
        "key_id, org_id, name, environment, hash, display_prefix, scopes, allowed_models, created_at, expires_at, revoked_at";

    private const int HashSizeInBytes = 32;

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _findByHashSql;
    private readonly string _insertSql;
    private readonly string _revokeSql;
    private readonly string _listSql;

    public PostgresApiKeyStore(NpgsqlDataSource dataSource, IOptions<PostgresStorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        var table = new StoreSchema(options.Value.Schema).Table("api_keys");
        _findByHashSql = $"SELECT {Columns} FROM {table} WHERE hash = $1";
        _insertSql = $"INSERT INTO {table} ({Columns}, provider) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'local')";
        _revokeSql = $"UPDATE {table} SET revoked_at = $3 WHERE org_id = $1 AND key_id = $2 AND revoked_at IS NULL";
        _listSql = $"SELECT {Columns} FROM {table} WHERE org_id = $1 ORDER BY created_at, key_id COLLATE \"C\"";
    }

    public async ValueTask<ApiKeyRecord?> FindByHashAsync(ReadOnlyMemory<byte> hash, CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(_findByHashSql);
        command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { TypedValue = hash, NpgsqlDbType = NpgsqlDbType.Bytea });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    /// <exception cref="ArgumentException">The hash is not 32 bytes, or a field is missing.</exception>
    /// <exception cref="InvalidOperationException">A record with the same key id or hash exists.</exception>
    public async Task AddAsync(ApiKeyRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.Hash is not { Length: HashSizeInBytes })
        {
            throw new ArgumentException($"The hash must be {HashSizeInBytes} bytes.", nameof(record));
        }

        ArgumentException.ThrowIfNullOrEmpty(record.KeyId, nameof(record));
        ArgumentException.ThrowIfNullOrEmpty(record.OrgId, nameof(record));

        await using var command = _dataSource.CreateCommand(_insertSql);
        var p = command.Parameters;
        p.Add(new NpgsqlParameter<string> { TypedValue = record.KeyId, NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter<string> { TypedValue = record.OrgId, NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter<string> { TypedValue = record.Name ?? "", NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter<string> { TypedValue = ToText(record.Environment), NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter<byte[]> { TypedValue = record.Hash, NpgsqlDbType = NpgsqlDbType.Bytea });
        p.Add(new NpgsqlParameter<string> { TypedValue = record.DisplayPrefix, NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter<string[]> { TypedValue = [.. record.Scopes ?? []], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter { Value = record.AllowedModels is { } models ? models.ToArray() : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = record.CreatedAt.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        p.Add(NullableTimestamp(record.ExpiresAt));
        p.Add(NullableTimestamp(record.RevokedAt));
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrors.UniqueViolation)
        {
            throw new InvalidOperationException($"A key with id '{record.KeyId}' or the same hash is already stored.", ex);
        }
    }

    public async Task<bool> RevokeAsync(string orgId, string keyId, DateTimeOffset revokedAt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(keyId);
        await using var command = _dataSource.CreateCommand(_revokeSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = orgId, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = keyId, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = revokedAt.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        await using var command = _dataSource.CreateCommand(_listSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = orgId, NpgsqlDbType = NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var records = new List<ApiKeyRecord>();
        while (await reader.ReadAsync(cancellationToken))
        {
            records.Add(Read(reader));
        }

        return records;
    }

    private static ApiKeyRecord Read(NpgsqlDataReader reader) => new()
    {
        KeyId = reader.GetString(0),
        OrgId = reader.GetString(1),
        Name = reader.GetString(2),
        Environment = FromText(reader.GetString(3)),
        Hash = reader.GetFieldValue<byte[]>(4),
        DisplayPrefix = reader.GetString(5),
        Scopes = reader.GetFieldValue<string[]>(6),
        AllowedModels = reader.IsDBNull(7) ? null : reader.GetFieldValue<string[]>(7),
        CreatedAt = reader.GetFieldValue<DateTimeOffset>(8),
        ExpiresAt = reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9),
        RevokedAt = reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10),
    };

    private static NpgsqlParameter NullableTimestamp(DateTimeOffset? value) => new()
    {
        Value = value is { } v ? v.ToUniversalTime() : DBNull.Value,
        NpgsqlDbType = NpgsqlDbType.TimestampTz,
    };

    private static string ToText(ApiKeyEnvironment environment) => environment switch
    {
        ApiKeyEnvironment.Live => "live",
        ApiKeyEnvironment.Test => "test",
        _ => throw new ArgumentOutOfRangeException(nameof(environment), environment, "Unknown key environment."),
    };

    private static ApiKeyEnvironment FromText(string value) => value switch
    {
        "live" => ApiKeyEnvironment.Live,
        "test" => ApiKeyEnvironment.Test,
        _ => throw new InvalidOperationException($"api_keys.environment holds an unknown value '{value}'."),
    };
}
