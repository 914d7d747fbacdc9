using System.Globalization;
using System.Runtime.CompilerServices;
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
        Task? read = null;
        try
        {
            // Microsoft.Data.Sqlite runs synchronously, so the read runs on the pool; the deadline stops the read itself
            // (ReadSchemaVersionAsync interrupts it) and WaitAsync bounds the wait should a read still not stop.
            read = Task.Run(() => ReadSchemaVersionAsync(database, linked.Token), linked.Token);
            LastRead = read;
            await read.WaitAsync(Timeout, timeProvider, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested
            && (ex is TimeoutException || deadline.IsCancellationRequested || IsLockWait(ex)))
        {
            // A read that gave up on another connection's lock waited the whole timeout (busy_timeout) too: which of the
            // two equal timers fired first says nothing, so both read the same.
            return new HealthCheckResult(context.Registration.FailureStatus, $"SQLite did not answer within {Timeout.TotalSeconds:0} s", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Every failure is answered here: a check that throws would show the exception's message, which names the file.
            return new HealthCheckResult(context.Registration.FailureStatus, Reason(ex), ex);
        }
        finally
        {
            // WaitAsync's timer may beat the deadline's: a read still running must see its token cancelled before the
            // sources are disposed (a disposed, uncancelled source never cancels, and the read would run on).
            if (read is { IsCompleted: false })
            {
                await linked.CancelAsync().ConfigureAwait(false);
            }
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
            // - a statement that is running asks SQLite's progress handler every 1,000 VM steps whether the deadline
            //   has passed, and stops with SQLITE_INTERRUPT once it has. (sqlite3_interrupt from the token's callback
            //   raced the statement's start: fired between prepare and the first step, it was lost and the read ran
            //   on.) The handler is removed before the connection goes back to the pool.
            var waitMilliseconds = (int)Timeout.TotalMilliseconds;
            SqliteException.ThrowExceptionForRC(raw.sqlite3_busy_timeout(connection.Handle, waitMilliseconds), connection.Handle);
            raw.sqlite3_progress_handler(connection.Handle, 1_000, StopWhenCancelled, new StrongBox<CancellationToken>(cancellationToken));
            try
            {
                using var command = connection.CreateCommand();
                command.CommandText = "SELECT max(version) FROM schema_version";
                command.CommandTimeout = (int)Math.Ceiling(Timeout.TotalSeconds);
                await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                raw.sqlite3_progress_handler(connection.Handle, 0, null, null);
            }
        }
    }

    // Non-zero stops the running statement (SQLITE_INTERRUPT).
    private static int StopWhenCancelled(object state) => ((StrongBox<CancellationToken>)state).Value.IsCancellationRequested ? 1 : 0;

    private static bool IsLockWait(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is SqliteException { SqliteErrorCode: SqliteErrorCodes.Busy or SqliteErrorCodes.Locked })
            {
                return true;
            }
        }

        return false;
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
