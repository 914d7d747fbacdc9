using System.Globalization;
using Cortensor.Portal.Storage.Sqlite.Database;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using SQLitePCL;

namespace Cortensor.Portal.Storage.Sqlite.Health;

/// <summary>
/// Readiness of the SQLite store: reads the schema version (one small read of the migrated file) within
/// <see cref="Timeout"/>. Failing, it reports the registration's failure status (Unhealthy unless changed) with a
/// short reason that never names the file's path; the exception goes to the health check log for operators.
/// </summary>
public sealed class SqliteHealthCheck(SqliteDatabase database, TimeProvider timeProvider) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorSqliteStorage</c> registers this check under.</summary>
    public const string Name = "sqlite";

    /// <summary>How long the read may take before the store counts as down.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    /// <summary>The last read started by <see cref="CheckHealthAsync"/>, so tests can see that a timed-out read was stopped.</summary>
    internal Task? LastRead { get; private set; }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        using var deadline = new CancellationTokenSource(Timeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            // Microsoft.Data.Sqlite runs synchronously, so the read runs on the pool; the deadline stops the read itself
            // (ReadSchemaVersionAsync interrupts it) and WaitAsync bounds the wait should a read still not stop.
            var read = Task.Run(() => ReadSchemaVersionAsync(database, linked.Token), linked.Token);
            LastRead = read;
            await read.WaitAsync(Timeout, timeProvider, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && (ex is TimeoutException || deadline.IsCancellationRequested))
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"SQLite did not answer within {Timeout.TotalSeconds:0} s", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Every failure is answered here: a check that throws would show the exception's message, which names the file.
            return new HealthCheckResult(context.Registration.FailureStatus, Reason(ex), ex);
        }
    }

    private static async Task ReadSchemaVersionAsync(SqliteDatabase database, CancellationToken cancellationToken)
    {
        var connection = await database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Microsoft.Data.Sqlite looks at the token only before it starts, so the deadline has to reach SQLite itself:
            // - a read waiting on another connection's lock waits busy_timeout (5 s for the store's own operations), then
            //   Microsoft.Data.Sqlite retries until CommandTimeout (30 s): both are cut to the check's timeout here
            //   (OpenConnectionAsync sets busy_timeout again on the next use of this pooled connection);
            // - a statement that is running is stopped by sqlite3_interrupt when the token fires (that does not end a
            //   busy wait, hence the above). The registration is disposed, waiting for a running callback, before the
            //   connection goes back to the pool, so it never interrupts another operation's statement.
            var waitMilliseconds = (int)Timeout.TotalMilliseconds;
            SqliteException.ThrowExceptionForRC(raw.sqlite3_busy_timeout(connection.Handle, waitMilliseconds), connection.Handle);
            using var interrupt = cancellationToken.UnsafeRegister(
                static state => raw.sqlite3_interrupt(((SqliteConnection)state!).Handle),
                connection);
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT max(version) FROM schema_version";
            command.CommandTimeout = (int)Math.Ceiling(Timeout.TotalSeconds);
            await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    // The SQLite result code says enough; exception messages name the file's path.
    private static string Reason(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is SqliteException sqlite)
            {
                return string.Create(CultureInfo.InvariantCulture, $"SQLite read failed (SQLite error {sqlite.SqliteErrorCode})");
            }
        }

        return $"SQLite read failed ({exception.GetType().Name})";
    }
}
