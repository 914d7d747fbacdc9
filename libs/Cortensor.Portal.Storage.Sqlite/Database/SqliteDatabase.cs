using Cortensor.Portal.Storage.Sqlite.Configuration;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Sqlite.Database;

/// <summary>
/// One SQLite database file: hands out open connections (one per operation, pooled by Microsoft.Data.Sqlite)
/// with <c>busy_timeout</c> and <c>foreign_keys</c> set, creating the folder on first use.
/// </summary>
/// <remarks>
/// Connections use a private cache: shared-cache mode is not needed (WAL gives concurrent readers) and it
/// turns lock waits into immediate <c>SQLITE_LOCKED</c> errors. Journal mode WAL is persistent in the file and
/// is set once by <see cref="Migrations.SqliteMigrator"/>. Thread-safe.
/// </remarks>
public sealed class SqliteDatabase
{
    /// <summary>Milliseconds a connection waits for another writer before failing with <c>SQLITE_BUSY</c>.</summary>
    public const int BusyTimeoutMilliseconds = 5000;

    private const string PerConnectionPragmas = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

    private volatile bool _directoryReady;

    /// <summary>Uses the database file named by <paramref name="options"/>.</summary>
    public SqliteDatabase(IOptions<SqliteStorageOptions> options)
        : this((options ?? throw new ArgumentNullException(nameof(options))).Value.DatabasePath!)
    {
    }

    /// <summary>Uses the database file at <paramref name="databasePath"/>.</summary>
    /// <exception cref="ArgumentException">The path is empty or not a plain file path.</exception>
    public SqliteDatabase(string databasePath)
    {
        var failure = SqliteStoragePathValidator.GetFailure(databasePath);
        if (failure is not null)
        {
            throw new ArgumentException(failure, nameof(databasePath));
        }

        DatabasePath = Path.GetFullPath(databasePath);
        ConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = DatabasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    /// <summary>Full path of the database file.</summary>
    public string DatabasePath { get; }

    /// <summary>The connection string every connection uses.</summary>
    public string ConnectionString { get; }

    /// <summary>Opens a new connection with the per-connection pragmas applied. The caller disposes it.</summary>
    /// <exception cref="SqliteStorageException">The file or its folder cannot be created or opened, or is not a database.</exception>
    public async Task<SqliteConnection> OpenConnectionAsync(CancellationToken cancellationToken = default)
    {
        EnsureDirectory();
        var connection = new SqliteConnection(ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            using var pragmas = connection.CreateCommand();
            pragmas.CommandText = PerConnectionPragmas;
            await pragmas.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch (SqliteException ex)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw TranslateOpenFailure(ex);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Turns a <see cref="SqliteException"/> that means "this file cannot be used" into a
    /// <see cref="SqliteStorageException"/> naming the path; returns other exceptions unchanged.
    /// </summary>
    internal Exception TranslateOpenFailure(SqliteException exception)
    {
        var reason = exception.SqliteErrorCode switch
        {
            SqliteErrorCodes.CantOpen => "the file cannot be opened or created (does the folder exist and is it a folder, not a file?)",
            SqliteErrorCodes.Perm or SqliteErrorCodes.Auth => "permission denied (can this process read and write the file and its folder?)",
            SqliteErrorCodes.ReadOnly => "the file or its folder is read-only (the process needs write access to both, for the WAL and shared-memory files)",
            SqliteErrorCodes.NotADatabase => "the file exists but is not a SQLite database (or is encrypted)",
            SqliteErrorCodes.Corrupt => "the database file is corrupt",
            SqliteErrorCodes.IoError => "an I/O error occurred (disk full, or a file system that does not support locking?)",
            SqliteErrorCodes.Full => "the disk is full",
            _ => null,
        };

        return reason is null
            ? exception
            : new SqliteStorageException($"Cannot use the SQLite database '{DatabasePath}': {reason}. SQLite said: {exception.Message}", exception)
            {
                DatabasePath = DatabasePath,
            };
    }

    private void EnsureDirectory()
    {
        if (_directoryReady)
        {
            return;
        }

        var directory = Path.GetDirectoryName(DatabasePath);
        if (!string.IsNullOrEmpty(directory))
        {
            try
            {
                Directory.CreateDirectory(directory);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
            {
                throw new SqliteStorageException(
                    $"Cannot create the folder '{directory}' for the SQLite database '{DatabasePath}': {ex.Message} Check that the path is a folder (not a file) and that this process may create it.",
                    ex)
                {
                    DatabasePath = DatabasePath,
                };
            }
        }

        _directoryReady = true;
    }
}
