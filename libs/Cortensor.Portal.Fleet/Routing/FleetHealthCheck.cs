using Cortensor.Portal.Fleet.Configuration;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Cortensor.Portal.Fleet.Routing;

/// <summary>
/// Readiness of the fleet: every model in the catalog has at least one routable member in its pool
/// (<see cref="IPoolRoutability"/>: an enabled member of an enabled router).
/// <list type="bullet">
/// <item>Healthy: every model can be served, by real routers (simulated ones count only in Development).</item>
/// <item>Degraded: some models cannot (they answer 503 until a member is enabled), or the catalog is empty. The
/// others still work, and every replica shares the fleet configuration, so taking replicas out of rotation would
/// not help. Also, outside the Development environment, when a model may be served by a simulated router: its
/// answers are canned, so "ready" would hide an outage that looks like success.</item>
/// <item>The registration's failure status (Unhealthy unless changed): no model can be served at all, for example
/// before the simulated routers have started.</item>
/// </list>
/// The description names model aliases only (they are public), never pools, routers or their addresses. The result's
/// <see cref="HealthCheckResult.Data"/> (for operators' own health publishers; the gateway's anonymous health body never
/// writes it) holds each pool's stream load under <c>streams:{pool}</c> (<see cref="PoolStreamLoad"/>: mode, stream
/// capacity, open and queued streams, waits and refusals).
/// </summary>
/// <param name="catalog">The public catalog.</param>
/// <param name="routability">Routable (and simulated) members per pool.</param>
/// <param name="environment">The host's environment; without one the check assumes Production, as hosts do.</param>
/// <param name="streams">Stream slots per pool; without them the data holds no stream load.</param>
public sealed class FleetHealthCheck(IModelCatalog catalog, IPoolRoutability routability, IHostEnvironment? environment = null, IStreamLeases? streams = null) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorFleet</c> registers this check under.</summary>
    public const string Name = "fleet";

    /// <summary>How many unservable aliases the description lists before it only counts the rest.</summary>
    private const int ListedAliases = 10;

    /// <summary>The switch that serves simulated routers; named in the reason so an operator knows what to turn off.</summary>
    private const string SimulatedSetting = $"{FleetOptions.SectionName}:UseSimulatedRouters";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var models = catalog.Models;
        if (models.Count == 0)
        {
            return Task.FromResult(HealthCheckResult.Degraded("the model catalog has no enabled model"));
        }

        var data = StreamData(models);
        var unservable = models.Where(m => routability.CountRoutableMembers(m.Pool) == 0).Select(m => m.Alias).ToList();
        if (unservable.Count == models.Count)
        {
            return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, $"no router can serve model(s): {List(unservable)}", data: data));
        }

        // Simulated routers are for development: elsewhere they serve canned text while looking ready.
        var simulated = environment?.IsDevelopment() == true
            ? []
            : models.Where(m => routability.CountSimulatedRoutableMembers(m.Pool) > 0).Select(m => m.Alias).ToList();

        if (unservable.Count == 0 && simulated.Count == 0)
        {
            return Task.FromResult(HealthCheckResult.Healthy(data: data));
        }

        var reasons = new List<string>(2);
        if (unservable.Count > 0)
        {
            reasons.Add($"no router can serve model(s): {List(unservable)}");
        }

        if (simulated.Count > 0)
        {
            reasons.Add($"routers are simulated ({SimulatedSetting}), canned answers for model(s): {List(simulated)}");
        }

        return Task.FromResult(HealthCheckResult.Degraded(string.Join("; ", reasons), data: data));
    }

    private Dictionary<string, object> StreamData(IReadOnlyList<CatalogModel> models)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        if (streams is not null)
        {
            foreach (var pool in models.Select(m => m.Pool).Distinct(StringComparer.OrdinalIgnoreCase))
            {
                data["streams:" + pool] = streams.GetLoad(pool);
            }
        }

        return data;
    }

    private static string List(List<string> aliases)
    {
        var listed = string.Join(", ", aliases.Take(ListedAliases));
        return aliases.Count > ListedAliases ? $"{listed} and {aliases.Count - ListedAliases} more" : listed;
    }
}
