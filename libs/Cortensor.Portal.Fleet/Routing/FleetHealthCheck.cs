using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Portal.Fleet.Routing;

/// <summary>
/// Readiness of the fleet: every model in the catalog has at least one routable member in its pool
/// (<see cref="IPoolRoutability"/>: an enabled member of an enabled router).
/// <list type="bullet">
/// <item>Healthy: every model can be served.</item>
/// <item>Degraded: some models cannot (they answer 503 until a member is enabled), or the catalog is empty. The
/// others still work, and every replica shares the fleet configuration, so taking replicas out of rotation would
/// not help.</item>
/// <item>The registration's failure status (Unhealthy unless changed): no model can be served at all, for example
/// before the simulated routers have started.</item>
/// </list>
/// The description names model aliases only (they are public), never pools, routers or their addresses.
/// </summary>
public sealed class FleetHealthCheck(IModelCatalog catalog, IPoolRoutability routability) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorFleet</c> registers this check under.</summary>
    public const string Name = "fleet";

    /// <summary>How many unservable aliases the description lists before it only counts the rest.</summary>
    private const int ListedAliases = 10;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var models = catalog.Models;
        if (models.Count == 0)
        {
            return Task.FromResult(HealthCheckResult.Degraded("the model catalog has no enabled model"));
        }

        var unservable = models.Where(m => routability.CountRoutableMembers(m.Pool) == 0).Select(m => m.Alias).ToList();
        if (unservable.Count == 0)
        {
            return Task.FromResult(HealthCheckResult.Healthy());
        }

        var listed = string.Join(", ", unservable.Take(ListedAliases));
        var more = unservable.Count > ListedAliases ? $" and {unservable.Count - ListedAliases} more" : "";
        var status = unservable.Count == models.Count ? context.Registration.FailureStatus : HealthStatus.Degraded;
        return Task.FromResult(new HealthCheckResult(status, $"no router can serve model(s): {listed}{more}"));
    }
}
