using System.Diagnostics.CodeAnalysis;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the router protocol clients.</summary>
public static class CortensorRouterClientsServiceCollectionExtensions
{
    /// <summary>Name of the resilience pipeline on each router client's HTTP client.</summary>
    public const string ResiliencePipelineName = "cortensor-router";

    /// <summary>
    /// Registers <see cref="CortensorRouterClient"/> and <see cref="OpenAICompatibleRouterClient"/> as typed HTTP clients
    /// and as <see cref="IRouterProtocolClient"/>s, plus <see cref="IRouterProtocolClientResolver"/>,
    /// and <see cref="TimeProvider.System"/> (each only when not registered yet).
    /// The HTTP clients have no <see cref="HttpClient.Timeout"/> (the clients apply the request's own timeout) and a
    /// per-router (per-authority) circuit breaker, but no retry and no hedging: each attempt on a Cortensor router is a
    /// new on-chain task. Calling this twice registers nothing twice.
    /// </summary>
    public static IServiceCollection AddCortensorRouterClients(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(static d => d.ServiceType == typeof(RouterClientsMarker)))
        {
            return services;
        }

        services.AddSingleton<RouterClientsMarker>();
        services.TryAddSingleton<TimeProvider>(TimeProvider.System);

        AddRouterHttpClient<CortensorRouterClient>(services);
        AddRouterHttpClient<OpenAICompatibleRouterClient>(services);

        services.TryAddEnumerable(ServiceDescriptor.Transient<IRouterProtocolClient, CortensorRouterClient>(
            static sp => sp.GetRequiredService<CortensorRouterClient>()));
        services.TryAddEnumerable(ServiceDescriptor.Transient<IRouterProtocolClient, OpenAICompatibleRouterClient>(
            static sp => sp.GetRequiredService<OpenAICompatibleRouterClient>()));
        services.TryAddTransient<IRouterProtocolClientResolver, RouterProtocolClients>();
        services.TryAddTransient<RouterProtocolClients>();
        return services;
    }

    private static void AddRouterHttpClient<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TClient>(IServiceCollection services)
        where TClient : class
    {
        // The gateway holds these clients for the life of the process, so the handler is never rotated by the
        // factory; SocketsHttpHandler recycles pooled connections itself (and so picks up DNS changes).
        services.AddHttpClient<TClient>(static client => client.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(static () => new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                ConnectTimeout = TimeSpan.FromSeconds(10),

                // A router answers or fails; it never redirects us. And no cookie a router sets may ride along on
                // the next customer's request.
                AllowAutoRedirect = false,
                UseCookies = false,
            })
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)

            // The factory's per-request Information logs and logging scopes cost CPU on every call of the hot path;
            // the gateway logs router failures itself, with the request id.
            .RemoveAllLoggers()
            .AddResilienceHandler(ResiliencePipelineName, static builder => builder.AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
            {
                // Routers see little traffic compared with a web API: break on a high failure ratio over few calls.
                FailureRatio = 0.5,
                MinimumThroughput = 5,
                SamplingDuration = TimeSpan.FromSeconds(30),
                BreakDuration = TimeSpan.FromSeconds(15),
            }))
            .SelectPipelineByAuthority();
    }

    private sealed class RouterClientsMarker;
}
