using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Health;

/// <summary>
/// Readiness of the Redis hot path: PING through the Portal's own multiplexer within <see cref="Timeout"/>. Failing,
/// it reports the registration's failure status (Unhealthy unless changed; the gateway still answers while Redis is
/// down, by the rate limits' fallback and the store, so a host that prefers to keep replicas in rotation can lower
/// it to Degraded) with a short reason that never carries the connection string or endpoints.
/// </summary>
public sealed class RedisHealthCheck(Func<IConnectionMultiplexer> multiplexer, TimeProvider timeProvider) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorRedis</c> registers this check under.</summary>
    public const string Name = "redis";

    /// <summary>How long PING may take before Redis counts as down.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            // The multiplexer is created on first use, which can wait for a first connect: bounded as well.
            await Task.Run(() => multiplexer().GetDatabase().PingAsync(), cancellationToken)
                .WaitAsync(Timeout, timeProvider, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy();
        }
        catch (TimeoutException ex)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"Redis did not answer PING within {Timeout.TotalSeconds:0} s", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Every failure is answered here: a check that throws would show the exception's message, which names endpoints.
            var reason = ex is RedisConnectionException connection
                ? $"cannot reach Redis ({connection.FailureType})"
                : $"Redis PING failed ({ex.GetType().Name})";
            return new HealthCheckResult(context.Registration.FailureStatus, reason, ex);
        }
    }
}
