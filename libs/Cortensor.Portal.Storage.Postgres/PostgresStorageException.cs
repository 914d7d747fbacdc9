namespace Cortensor.Portal.Storage.Postgres;

/// <summary>Why the Postgres store could not start or run.</summary>
public enum PostgresStorageError
{
    /// <summary>Something else went wrong; see the inner exception.</summary>
    Unknown = 0,

    /// <summary>The connection string cannot be parsed or is a <c>postgresql://</c> URI.</summary>
    InvalidConnectionString,

    /// <summary>No connection to the host and port (DNS, refused, timed out, TLS).</summary>
    Unreachable,

    /// <summary>The server refused the user name or password (SQLSTATE 28P01 or 28000).</summary>
    AuthenticationFailed,

    /// <summary>The database named in the connection string does not exist (SQLSTATE 3D000).</summary>
    DatabaseMissing,

    /// <summary>The user lacks a privilege the store needs, for example CREATE on the database (SQLSTATE 42501).</summary>
    PermissionDenied,

    /// <summary>The database holds a schema version this code does not know (a newer release migrated it).</summary>
    SchemaNewerThanCode,

    /// <summary>The database is behind the code and migrations are not applied on start.</summary>
    SchemaOutdated,
}

/// <summary>
/// A start-up or connection problem of the Postgres store, with a message that says what to fix. Messages
/// name host, port, database, user and schema but never the password.
/// </summary>
public sealed class PostgresStorageException : InvalidOperationException
{
    public PostgresStorageException()
    {
    }

    public PostgresStorageException(string message)
        : base(message)
    {
    }

    public PostgresStorageException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    public PostgresStorageException(PostgresStorageError error, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
    }

    /// <summary>What went wrong, for code that reacts differently per cause.</summary>
    public PostgresStorageError Error { get; }
}
