using System.Net.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace Cortensor.Portal.Storage.Postgres.Health;

/// <summary>
/// Readiness of the Postgres store: <c>SELECT 1</c> through the store's own data source (so it also proves a pooled
/// connection can be had) within <see cref="Timeout"/>. Failing, it reports the registration's failure status
/// (Unhealthy unless changed) with a short reason (an SQLSTATE or a socket error name) that never carries the
/// connection string, host or port; the exception goes to the health check log for operators.
/// </summary>
public sealed class PostgresHealthCheck(NpgsqlDataSource dataSource, TimeProvider timeProvider) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorPostgresStorage</c> registers this check under.</summary>
    public const string Name = "postgres";

    /// <summary>How long the query may take, connecting included, before the store counts as down.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        using var deadline = new CancellationTokenSource(Timeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            // The token bounds connecting and the query; WaitAsync bounds a driver call that ignores it.
            await SelectOneAsync(linked.Token).WaitAsync(Timeout, timeProvider, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && (ex is TimeoutException || deadline.IsCancellationRequested))
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"Postgres did not answer within {Timeout.TotalSeconds:0} s", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Every failure is answered here: a check that throws would show the exception's message, which can name the server.
            return new HealthCheckResult(context.Registration.FailureStatus, Reason(ex), ex);
        }
    }

    private async Task SelectOneAsync(CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand("SELECT 1");
        await using (command.ConfigureAwait(false))
        {
            await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static string Reason(Exception exception)
    {
        var innermost = exception;
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case PostgresException postgres:
                    return $"Postgres refused the query (SQLSTATE {postgres.SqlState})";
                case SocketException socket:
                    return $"cannot reach Postgres ({socket.SocketErrorCode})";
                case IOException io:
                    // A pooled connection the server dropped (restart, failover, idle timeout).
                    return $"connection to Postgres lost ({io.GetType().Name})";
                default:
                    innermost = e;
                    break;
            }
        }

        return $"Postgres query failed ({innermost.GetType().Name})";
    }
}
