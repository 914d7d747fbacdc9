using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Portal.Storage.Sqlite.Migrations;

/// <summary>
/// Brings a SQLite database to <see cref="SqliteMigration.LatestVersion"/> by running the embedded
/// <c>V####__*.sql</c> scripts in order, each in its own <c>BEGIN IMMEDIATE</c> transaction together with its
/// <c>schema_version</c> row.
/// </summary>
/// <remarks>
/// Safe to run concurrently from several processes: the write lock taken by <c>BEGIN IMMEDIATE</c> serialises
/// them, and each re-reads the version inside its transaction, so a script runs exactly once. A second run is
/// a no-op. A database at a higher version than the code knows is refused with
/// <see cref="SqliteSchemaVersionException"/>. Also switches the file to WAL journal mode (persistent).
/// </remarks>
public sealed partial class SqliteMigrator
{
    private const string CreateVersionTable =
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at INTEGER NOT NULL, description TEXT NOT NULL) STRICT;";

    private const string SelectVersion = "SELECT coalesce(max(version), 0) FROM schema_version;";

    private readonly SqliteDatabase _database;
    private readonly IReadOnlyList<SqliteMigration> _migrations;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public SqliteMigrator(SqliteDatabase database, TimeProvider? timeProvider = null, ILogger<SqliteMigrator>? logger = null)
        : this(database, SqliteMigration.All, timeProvider, logger)
    {
    }

    internal SqliteMigrator(SqliteDatabase database, IReadOnlyList<SqliteMigration> migrations, TimeProvider? timeProvider, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(migrations);
        _database = database;
        _migrations = migrations;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Highest schema version this code knows.</summary>
    public int LatestVersion => _migrations.Count == 0 ? 0 : _migrations[^1].Version;

    /// <summary>Applies every pending migration. Does nothing when the database is current.</summary>
    /// <exception cref="SqliteSchemaVersionException">The database is at a higher version than <see cref="LatestVersion"/>.</exception>
    /// <exception cref="SqliteStorageException">The database file cannot be opened, created or written.</exception>
    public async Task MigrateAsync(CancellationToken cancellationToken = default)
    {
        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            try
            {
                await EnableWalAsync(connection, cancellationToken).ConfigureAwait(false);

                var version = await RunInImmediateTransactionAsync(
                    connection,
                    async (tx, ct) =>
                    {
                        await ExecuteAsync(connection, tx, CreateVersionTable, ct).ConfigureAwait(false);
                        return await ReadVersionAsync(connection, tx, ct).ConfigureAwait(false);
                    },
                    cancellationToken).ConfigureAwait(false);
                ThrowIfNewer(version);

                foreach (var migration in _migrations)
                {
                    if (migration.Version <= version)
                    {
                        continue;
                    }

                    version = await ApplyAsync(connection, migration, cancellationToken).ConfigureAwait(false);
                }

                Log.SchemaCurrent(_logger, _database.DatabasePath, version);
            }
            catch (SqliteException ex)
            {
                throw _database.TranslateOpenFailure(ex);
            }
        }
    }

    /// <summary>Version recorded in <c>schema_version</c>; 0 for a database that was never migrated.</summary>
    /// <exception cref="SqliteStorageException">The database file cannot be opened.</exception>
    public async Task<int> GetSchemaVersionAsync(CancellationToken cancellationToken = default)
    {
        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            try
            {
                using var exists = connection.CreateCommand();
                exists.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version';";
                if ((long)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))! == 0)
                {
                    return 0;
                }

                return await ReadVersionAsync(connection, null, cancellationToken).ConfigureAwait(false);
            }
            catch (SqliteException ex)
            {
                throw _database.TranslateOpenFailure(ex);
            }
        }
    }

    /// <summary>Checks, without changing anything, that the database is exactly at <see cref="LatestVersion"/>.</summary>
    /// <exception cref="SqliteSchemaVersionException">The database is at another version.</exception>
    public async Task EnsureCurrentAsync(CancellationToken cancellationToken = default)
    {
        var version = await GetSchemaVersionAsync(cancellationToken).ConfigureAwait(false);
        ThrowIfNewer(version);
        if (version < LatestVersion)
        {
            throw new SqliteSchemaVersionException(
                $"The SQLite database '{_database.DatabasePath}' is at schema version {version} but this code needs version {LatestVersion}, and migrations on start are off. Turn on {nameof(Configuration.SqliteStorageOptions)}.{nameof(Configuration.SqliteStorageOptions.ApplyMigrationsOnStart)} or migrate the database first.")
            {
                DatabasePath = _database.DatabasePath,
                DatabaseVersion = version,
                CodeVersion = LatestVersion,
            };
        }
    }

    private async Task<int> ApplyAsync(SqliteConnection connection, SqliteMigration migration, CancellationToken cancellationToken)
    {
        var script = migration.ReadScript();
        return await RunInImmediateTransactionAsync(
            connection,
            async (tx, ct) =>
            {
                // Another process may have applied it while this one waited for the write lock.
                var current = await ReadVersionAsync(connection, tx, ct).ConfigureAwait(false);
                ThrowIfNewer(current);
                if (current >= migration.Version)
                {
                    return current;
                }

                Log.ApplyingMigration(_logger, migration.Version, migration.Description, _database.DatabasePath);
                await ExecuteAsync(connection, tx, script, ct).ConfigureAwait(false);

                using var record = connection.CreateCommand();
                record.Transaction = tx;
                record.CommandText = "INSERT INTO schema_version (version, applied_at, description) VALUES ($version, $applied_at, $description);";
                record.Parameters.AddWithValue("$version", migration.Version);
                record.Parameters.AddWithValue("$applied_at", UnixMicroseconds.From(_timeProvider.GetUtcNow()));
                record.Parameters.AddWithValue("$description", migration.Description);
                await record.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                return migration.Version;
            },
            cancellationToken).ConfigureAwait(false);
    }

    private void ThrowIfNewer(int databaseVersion)
    {
        if (databaseVersion > LatestVersion)
        {
            throw new SqliteSchemaVersionException(
                $"The SQLite database '{_database.DatabasePath}' is at schema version {databaseVersion}, newer than version {LatestVersion}, the highest this code knows. It was migrated by a newer release; run that release or restore a backup. Refusing to start.")
            {
                DatabasePath = _database.DatabasePath,
                DatabaseVersion = databaseVersion,
                CodeVersion = LatestVersion,
            };
        }
    }

    private async Task EnableWalAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode = WAL;";
        var mode = (string?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
        {
            Log.WalNotEnabled(_logger, _database.DatabasePath, mode ?? "(none)");
        }
    }

    private static async Task<T> RunInImmediateTransactionAsync<T>(
        SqliteConnection connection,
        Func<SqliteTransaction, CancellationToken, Task<T>> work,
        CancellationToken cancellationToken)
    {
        // deferred: false => BEGIN IMMEDIATE: takes the write lock now (waiting up to busy_timeout), so
        // concurrent migrators queue here instead of deadlocking on a read-to-write upgrade.
        var tx = connection.BeginTransaction(deferred: false);
        await using (tx.ConfigureAwait(false))
        {
            var result = await work(tx, cancellationToken).ConfigureAwait(false);
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            return result;
        }
    }

    private static async Task ExecuteAsync(SqliteConnection connection, SqliteTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<int> ReadVersionAsync(SqliteConnection connection, SqliteTransaction? tx, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = SelectVersion;
        return checked((int)(long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!);
    }
}
