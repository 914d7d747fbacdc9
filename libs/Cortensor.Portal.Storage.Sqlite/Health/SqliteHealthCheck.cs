using System.Globalization;
using Cortensor.Portal.Storage.Sqlite.Database;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Diagnostics.HealthChecks;

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

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            // Microsoft.Data.Sqlite runs synchronously, so the read runs on the pool and only the wait is bounded.
            await Task.Run(() => ReadSchemaVersionAsync(cancellationToken), cancellationToken)
                .WaitAsync(Timeout, timeProvider, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy();
        }
        catch (TimeoutException ex)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"SQLite did not answer within {Timeout.TotalSeconds:0} s", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Every failure is answered here: a check that throws would show the exception's message, which names the file.
            return new HealthCheckResult(context.Registration.FailureStatus, Reason(ex), ex);
        }
    }

    private async Task ReadSchemaVersionAsync(CancellationToken cancellationToken)
    {
        var connection = await database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT max(version) FROM schema_version";
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
