using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Cortensor.Portal.Storage.Postgres.Migrations;

/// <summary>What <see cref="PostgresMigrator.MigrateAsync"/> did.</summary>
/// <param name="PreviousVersion">Version found before migrating (0 for an empty schema).</param>
/// <param name="CurrentVersion">Version after migrating.</param>
/// <param name="Applied">Versions this call applied, in order (empty when another replica got there first).</param>
public sealed record PostgresMigrationResult(int PreviousVersion, int CurrentVersion, IReadOnlyList<int> Applied);

/// <summary>
/// Applies the embedded <c>V0001__*.sql</c>, <c>V0002__*.sql</c>, … scripts to the configured schema.
/// </summary>
/// <remarks>
/// <para>
/// Creates the schema and <c>schema_version</c> when missing. Each version runs in its own transaction that
/// first takes <c>pg_advisory_xact_lock</c> on a key derived from the schema name, re-reads the version under
/// the lock, applies the script and records it. The lock is transaction-scoped, so it works behind
/// transaction-mode poolers and serialises replicas that start at the same time: the first applies, the others
/// find the version already recorded.
/// </para>
/// <para>
/// Refuses (with <see cref="PostgresStorageError.SchemaNewerThanCode"/>) to touch a schema whose version is
/// higher than the newest script in this build. Connection failures become <see cref="PostgresStorageException"/>s
/// that say what to fix.
/// </para>
/// </remarks>
public sealed partial class PostgresMigrator
{
    private static readonly TimeSpan MigrationCommandTimeout = TimeSpan.FromMinutes(10);

    private readonly NpgsqlDataSource _dataSource;
    private readonly StoreSchema _schema;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly IReadOnlyList<PostgresMigration> _migrations;

    public PostgresMigrator(
        NpgsqlDataSource dataSource,
        IOptions<PostgresStorageOptions> options,
        TimeProvider timeProvider,
        ILogger<PostgresMigrator>? logger = null)
        : this(dataSource, options, timeProvider, logger, EmbeddedMigrations.All)
    {
    }

    /// <summary>For tests: runs <paramref name="migrations"/> instead of the embedded scripts.</summary>
    internal PostgresMigrator(
        NpgsqlDataSource dataSource,
        IOptions<PostgresStorageOptions> options,
        TimeProvider timeProvider,
        ILogger? logger,
        IEnumerable<PostgresMigration> migrations)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(migrations);
        _dataSource = dataSource;
        _schema = new StoreSchema(options.Value.Schema);
        _timeProvider = timeProvider;
        _logger = logger ?? NullLogger.Instance;
        _migrations = EmbeddedMigrations.Validate(migrations);
    }

    /// <summary>The newest schema version the embedded scripts produce.</summary>
    public static int LatestVersion => EmbeddedMigrations.All.Count;

    /// <summary>The version this migrator migrates to (equals <see cref="LatestVersion"/> outside tests).</summary>
    public int TargetVersion => _migrations.Count;

    /// <summary>The schema this migrator works on.</summary>
    public string Schema => _schema.Name;

    /// <summary>Creates the schema if needed and applies every pending version.</summary>
    /// <exception cref="PostgresStorageException">
    /// The server is unreachable, the credentials or database are wrong, a privilege is missing, or the schema is
    /// newer than this code.
    /// </exception>
    public async Task<PostgresMigrationResult> MigrateAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await PostgresErrors.OpenAsync(_dataSource, cancellationToken);
            await BootstrapAsync(connection, cancellationToken);

            var previous = await ReadVersionAsync(connection, null, cancellationToken);
            ThrowIfNewer(previous);

            var applied = new List<int>();
            var current = previous;
            foreach (var migration in _migrations)
            {
                if (migration.Version <= current)
                {
                    continue;
                }

                var ran = await ApplyAsync(connection, migration, cancellationToken);
                if (ran)
                {
                    applied.Add(migration.Version);
                }

                current = migration.Version;
            }

            if (applied.Count == 0)
            {
                Log.SchemaUpToDate(_logger, _schema.Name, current);
            }

            return new PostgresMigrationResult(previous, current, applied);
        }
        catch (Exception ex) when (PostgresErrors.Translate(ex, _dataSource) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>The highest version recorded in <c>schema_version</c>; 0 when the schema or the table does not exist.</summary>
    /// <exception cref="PostgresStorageException">The server cannot be reached or refuses the login.</exception>
    public async Task<int> GetSchemaVersionAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await PostgresErrors.OpenAsync(_dataSource, cancellationToken);
            return await ReadVersionAsync(connection, null, cancellationToken);
        }
        catch (Exception ex) when (PostgresErrors.Translate(ex, _dataSource) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// Checks, without changing anything, that the schema is exactly at <see cref="TargetVersion"/>. Used at
    /// start-up when <see cref="PostgresStorageOptions.ApplyMigrationsOnStart"/> is off.
    /// </summary>
    /// <exception cref="PostgresStorageException">The schema is older or newer than this code, or the server cannot be used.</exception>
    public async Task EnsureCurrentAsync(CancellationToken cancellationToken = default)
    {
        var version = await GetSchemaVersionAsync(cancellationToken);
        ThrowIfNewer(version);
        if (version < TargetVersion)
        {
            throw new PostgresStorageException(
                PostgresStorageError.SchemaOutdated,
                $"The database schema \"{_schema.Name}\" is at version {version}, but this code needs version {TargetVersion}, and {nameof(PostgresStorageOptions)}.{nameof(PostgresStorageOptions.ApplyMigrationsOnStart)} is false. Run the migrations (for example with {nameof(PostgresStorageOptions.ApplyMigrationsOnStart)}=true over a direct or session-pooler connection) and start again.");
        }
    }

    private void ThrowIfNewer(int version)
    {
        if (version > TargetVersion)
        {
            throw new PostgresStorageException(
                PostgresStorageError.SchemaNewerThanCode,
                $"The database schema \"{_schema.Name}\" is at version {version}, but this build of Cortensor Portal knows versions up to {TargetVersion}. A newer release has migrated this database: run that release (or a newer one), or restore a backup taken before the upgrade. Refusing to start.");
        }
    }

    private async Task BootstrapAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);

        // Check first: CREATE … IF NOT EXISTS still needs the CREATE privilege, which an app role that uses an
        // existing schema may lack.
        bool schemaExists;
        bool tableExists;
        await using (var check = new NpgsqlCommand(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1), pg_catalog.to_regclass($2) IS NOT NULL",
            connection,
            transaction))
        {
            check.Parameters.Add(new NpgsqlParameter { Value = _schema.Name, NpgsqlDbType = NpgsqlDbType.Text });
            check.Parameters.Add(new NpgsqlParameter { Value = _schema.Table("schema_version"), NpgsqlDbType = NpgsqlDbType.Text });
            await using var reader = await check.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            schemaExists = reader.GetBoolean(0);
            tableExists = reader.GetBoolean(1);
        }

        if (!schemaExists)
        {
            await ExecuteAsync(connection, transaction, $"CREATE SCHEMA IF NOT EXISTS {_schema.Quoted}", cancellationToken);
            Log.SchemaCreated(_logger, _schema.Name);
        }

        if (!tableExists)
        {
            await ExecuteAsync(
                connection,
                transaction,
                $"""
                CREATE TABLE IF NOT EXISTS {_schema.Table("schema_version")} (
                    version      integer     PRIMARY KEY,
                    applied_at   timestamptz NOT NULL,
                    description  text        NOT NULL
                )
                """,
                cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private async Task<bool> ApplyAsync(NpgsqlConnection connection, PostgresMigration migration, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, transaction, cancellationToken);

        // Another replica may have applied it while this one waited for the lock.
        var current = await ReadVersionAsync(connection, transaction, cancellationToken);
        ThrowIfNewer(current);
        if (current >= migration.Version)
        {
            await transaction.RollbackAsync(cancellationToken);
            Log.MigrationAppliedElsewhere(_logger, _schema.Name, migration.Version);
            return false;
        }

        if (current != migration.Version - 1)
        {
            throw new PostgresStorageException(
                PostgresStorageError.Unknown,
                $"The database schema \"{_schema.Name}\" is at version {current}; version {migration.Version} cannot be applied before {current + 1}.");
        }

        var started = _timeProvider.GetTimestamp();
        await using (var command = new NpgsqlCommand(migration.Render(_schema.Quoted), connection, transaction))
        {
            command.CommandTimeout = (int)MigrationCommandTimeout.TotalSeconds;
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var record = new NpgsqlCommand(
            $"INSERT INTO {_schema.Table("schema_version")} (version, applied_at, description) VALUES ($1, $2, $3)",
            connection,
            transaction))
        {
            record.Parameters.Add(new NpgsqlParameter { Value = migration.Version, NpgsqlDbType = NpgsqlDbType.Integer });
            record.Parameters.Add(new NpgsqlParameter { Value = _timeProvider.GetUtcNow(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
            record.Parameters.Add(new NpgsqlParameter { Value = migration.Description, NpgsqlDbType = NpgsqlDbType.Text });
            await record.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        Log.MigrationApplied(_logger, _schema.Name, migration.Version, migration.Description, _timeProvider.GetElapsedTime(started).TotalMilliseconds);
        return true;
    }

    private async Task<int> ReadVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        // Two statements: the second would not parse if the table were missing.
        await using (var exists = new NpgsqlCommand("SELECT pg_catalog.to_regclass($1) IS NOT NULL", connection, transaction))
        {
            exists.Parameters.Add(new NpgsqlParameter { Value = _schema.Table("schema_version"), NpgsqlDbType = NpgsqlDbType.Text });
            if (await exists.ExecuteScalarAsync(cancellationToken) is not true)
            {
                return 0;
            }
        }

        await using var command = new NpgsqlCommand(
            $"SELECT COALESCE(MAX(version), 0) FROM {_schema.Table("schema_version")}",
            connection,
            transaction);
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    private async Task LockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_catalog.pg_advisory_xact_lock($1)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = _schema.MigrationLockKey, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.CommandTimeout = (int)MigrationCommandTimeout.TotalSeconds;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
