namespace Cortensor.Portal.Storage.Sqlite.Database;

/// <summary>
/// The SQLite store cannot be used: the file cannot be opened or created, or it is not a database.
/// The message names the path and what to check; <see cref="Exception.InnerException"/> holds the cause.
/// </summary>
public class SqliteStorageException : Exception
{
    public SqliteStorageException()
    {
    }

    public SqliteStorageException(string message)
        : base(message)
    {
    }

    public SqliteStorageException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Full path of the database file concerned, when known.</summary>
    public string? DatabasePath { get; init; }
}

/// <summary>The database holds a schema version this code does not know (it was migrated by a newer release), or an older one when migrations are off.</summary>
public sealed class SqliteSchemaVersionException : SqliteStorageException
{
    public SqliteSchemaVersionException()
    {
    }

    public SqliteSchemaVersionException(string message)
        : base(message)
    {
    }

    public SqliteSchemaVersionException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Version recorded in the database's <c>schema_version</c> table.</summary>
    public int DatabaseVersion { get; init; }

    /// <summary>Highest version this code knows.</summary>
    public int CodeVersion { get; init; }
}
