using Cortensor.Portal.Gateway.Health;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Routing;

#pragma warning disable IDE0130 // Endpoint mapping extensions live with IEndpointRouteBuilder, by ASP.NET Core convention.
namespace Microsoft.AspNetCore.Builder;
#pragma warning restore IDE0130

/// <summary>Maps the Portal's liveness and readiness endpoints.</summary>
public static class CortensorHealthEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Tag of the checks <c>/health/live</c> runs. The Portal's libraries register none: liveness only says the
    /// process answers HTTP. A host may tag a check of its own with it (a deadlock detector, say).
    /// </summary>
    public const string LiveTag = "live";

    /// <summary>
    /// Maps, under <paramref name="pattern"/> (default <c>/health</c>), three endpoints that need no API key and are
    /// never rate limited:
    /// <list type="bullet">
    /// <item><c>{pattern}/live</c>: liveness. Runs only checks tagged <see cref="LiveTag"/> (none by default), so it
    /// answers 200 while the process can serve HTTP, whatever its dependencies do. For restart probes.</item>
    /// <item><c>{pattern}/ready</c>: readiness. Runs every registered check (durable store, Redis in Redis mode, the
    /// usage writer's backlog, the fleet). 200 when healthy or degraded, 503 when any check is unhealthy. For load
    /// balancers and traffic probes.</item>
    /// <item><c>{pattern}</c>: the same as <c>{pattern}/ready</c>, the useful default for a load balancer.</item>
    /// </list>
    /// Bodies are JSON: <c>{"status","duration_ms","checks":[{"name","status","duration_ms","reason"}]}</c>, with
    /// <c>reason</c> only for a check that is not healthy, and no exception, connection string or router address.
    /// <c>AddCortensorGateway</c> and the storage, Redis and metering registrations add the checks.
    /// </summary>
    /// <param name="endpoints">The endpoint route builder.</param>
    /// <param name="pattern">Where to map them.</param>
    /// <returns>The three endpoints' conventions, for further configuration (for example a host filter).</returns>
    public static IEndpointConventionBuilder MapCortensorHealth(this IEndpointRouteBuilder endpoints, string pattern = "/health")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(pattern);
        var trimmed = pattern.TrimEnd('/');

        var ready = new HealthCheckOptions { ResponseWriter = HealthResponseWriter.WriteAsync };
        var live = new HealthCheckOptions
        {
            Predicate = static registration => registration.Tags.Contains(LiveTag),
            ResponseWriter = HealthResponseWriter.WriteAsync,
        };

        return new CompositeConventionBuilder(
        [
            Open(endpoints.MapHealthChecks(trimmed.Length == 0 ? "/" : trimmed, ready).WithName("CortensorHealth")),
            Open(endpoints.MapHealthChecks(trimmed + "/ready", ready).WithName("CortensorHealthReady")),
            Open(endpoints.MapHealthChecks(trimmed + "/live", live).WithName("CortensorHealthLive")),
        ]);
    }

    // Probes come from load balancers and orchestrators: no key, no rate limit, whatever the host sets globally.
    private static IEndpointConventionBuilder Open(IEndpointConventionBuilder endpoint)
        => endpoint.AllowAnonymous().DisableRateLimiting();

    private sealed class CompositeConventionBuilder(IEndpointConventionBuilder[] builders) : IEndpointConventionBuilder
    {
        public void Add(Action<EndpointBuilder> convention)
        {
            foreach (var builder in builders)
            {
                builder.Add(convention);
            }
        }

        public void Finally(Action<EndpointBuilder> finallyConvention)
        {
            foreach (var builder in builders)
            {
                builder.Finally(finallyConvention);
            }
        }
    }
}
