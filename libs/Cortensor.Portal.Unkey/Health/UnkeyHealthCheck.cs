using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Portal.Unkey.Health;

/// <summary>
/// Readiness of the Unkey provider (<see cref="UnkeyRootKeyProbe"/>): Healthy when the root key fits the configured
/// API; the registration's failure status (Unhealthy unless changed) when Unkey says the root key or the API id is
/// wrong (401, 404, a disabled root key); Degraded when the root key only lacks <c>read_api</c>/<c>read_key</c>
/// (verification may still work, so the replica stays in rotation) or when Unkey cannot be asked (the provider serves
/// recently verified keys meanwhile, so an Unkey outage alone should not take every replica out of rotation).
/// </summary>
/// <remarks>
/// A not-healthy description is a generic reason: the gateway shows it in the anonymous health body, and the probe's
/// detail (API id, permission, Unkey's error and request id) is for the log only (events 8330-8332).
/// </remarks>
public sealed class UnkeyHealthCheck(UnkeyRootKeyProbe probe) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorUnkey</c> registers this check under.</summary>
    public const string Name = "unkey";

    internal const string MisconfiguredReason = "Unkey refused the root key or the API id; see the logs";
    internal const string LacksReadPermissionReason = "the Unkey root key lacks a permission; see the logs";
    internal const string UnreachableReason = "Unkey could not be asked about the root key; see the logs";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var result = await probe.CheckAsync(cancellationToken).ConfigureAwait(false);
        return result.Status switch
        {
            UnkeyProbeStatus.Ready => HealthCheckResult.Healthy(result.Description),
            UnkeyProbeStatus.LacksReadPermission => HealthCheckResult.Degraded(LacksReadPermissionReason),
            UnkeyProbeStatus.Unreachable => HealthCheckResult.Degraded(UnreachableReason),
            _ => new HealthCheckResult(context.Registration.FailureStatus, MisconfiguredReason),
        };
    }
}
