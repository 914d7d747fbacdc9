using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Portal.Unkey.Health;

/// <summary>
/// Readiness of the Unkey provider (<see cref="UnkeyRootKeyProbe"/>): Healthy when the root key fits the configured
/// API; the registration's failure status (Unhealthy unless changed) when Unkey says the root key or the API id is
/// wrong, with a message naming the missing permission; Degraded when Unkey cannot be asked (the provider serves
/// recently verified keys meanwhile, so an Unkey outage alone should not take every replica out of rotation).
/// </summary>
public sealed class UnkeyHealthCheck(UnkeyRootKeyProbe probe) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorUnkey</c> registers this check under.</summary>
    public const string Name = "unkey";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var result = await probe.CheckAsync(cancellationToken).ConfigureAwait(false);
        return result.Status switch
        {
            UnkeyProbeStatus.Ready => HealthCheckResult.Healthy(result.Description),
            UnkeyProbeStatus.Unreachable => HealthCheckResult.Degraded(result.Description),
            _ => new HealthCheckResult(context.Registration.FailureStatus, result.Description),
        };
    }
}
