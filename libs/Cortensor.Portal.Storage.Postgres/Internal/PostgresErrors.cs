using System.Net.Sockets;
using System.Security.Authentication;
using Npgsql;

namespace Cortensor.Portal.Storage.Postgres.Internal;

/// <summary>Turns Npgsql connection failures into <see cref="PostgresStorageException"/>s that say what to fix.</summary>
internal static class PostgresErrors
{
    public const string InvalidPassword = "28P01";
    public const string InvalidAuthorization = "28000";
    public const string InvalidCatalogName = "3D000";
    public const string InsufficientPrivilege = "42501";
    public const string UniqueViolation = "23505";

    /// <summary>Opens a connection, translating the failures start-up cares about.</summary>
    public static async ValueTask<NpgsqlConnection> OpenAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        try
        {
            return await dataSource.OpenConnectionAsync(cancellationToken);
        }
        catch (Exception ex) when (Translate(ex, dataSource) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// Returns a <see cref="PostgresStorageException"/> for a known failure, or <see langword="null"/> when the
    /// exception is not a connection or privilege problem (or is a cancellation).
    /// </summary>
    public static PostgresStorageException? Translate(Exception exception, NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(dataSource);
        if (exception is OperationCanceledException or PostgresStorageException)
        {
            return null;
        }

        // NpgsqlDataSource.ConnectionString leaves the password out (unless Persist Security Info is set, so
        // read only the fields we name).
        var target = Describe(dataSource.ConnectionString, out var user, out var database);

        if (exception is PostgresException pg)
        {
            return pg.SqlState switch
            {
                InvalidPassword => new PostgresStorageException(
                    PostgresStorageError.AuthenticationFailed,
                    $"Postgres at {target} rejected the password for user '{user}' (SQLSTATE 28P01). Fix Username and Password in the connection string; behind Supabase's pooler the user name is 'postgres.<project-ref>'.",
                    exception),
                InvalidAuthorization => new PostgresStorageException(
                    PostgresStorageError.AuthenticationFailed,
                    $"Postgres at {target} refused the login of user '{user}' to database '{database}' (SQLSTATE 28000: {pg.MessageText}). Check the user name, SSL Mode and the server's pg_hba.conf.",
                    exception),
                InvalidCatalogName => new PostgresStorageException(
                    PostgresStorageError.DatabaseMissing,
                    $"Database '{database}' does not exist on {target} (SQLSTATE 3D000). Create it (CREATE DATABASE \"{database}\") or fix Database= in the connection string.",
                    exception),
                InsufficientPrivilege => new PostgresStorageException(
                    PostgresStorageError.PermissionDenied,
                    $"User '{user}' lacks a privilege on database '{database}' at {target} (SQLSTATE 42501: {pg.MessageText}). The store needs CREATE on the database (to create its schema) or ownership of the schema; run migrations as the schema owner.",
                    exception),
                _ => null,
            };
        }

        if (exception is NpgsqlException or SocketException or TimeoutException or IOException or AuthenticationException
            && IsConnectFailure(exception))
        {
            var reason = Innermost(exception).Message;
            return new PostgresStorageException(
                PostgresStorageError.Unreachable,
                $"Cannot reach Postgres at {target} ({reason}). Check Host and Port in the connection string, that the server is running and that the network allows the connection (Supabase's direct host is IPv6-only without the IPv4 add-on; use the session pooler URL instead).",
                exception);
        }

        return null;
    }

    /// <summary>Describes a connection string as <c>host:port</c>; never reads the password.</summary>
    public static string Describe(string connectionString, out string user, out string database)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException)
        {
            user = database = "?";
            return "?";
        }

        user = builder.Username ?? "(default user)";
        database = builder.Database ?? user;
        return $"{builder.Host ?? "localhost"}:{builder.Port}";
    }

    private static bool IsConnectFailure(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is SocketException or TimeoutException or IOException or AuthenticationException)
            {
                return true;
            }
        }

        return false;
    }

    private static Exception Innermost(Exception exception)
    {
        var e = exception;
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e;
    }
}
