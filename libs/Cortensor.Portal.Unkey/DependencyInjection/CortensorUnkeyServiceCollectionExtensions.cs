using System.Diagnostics.Metrics;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Unkey.Client;
using Cortensor.Portal.Unkey.Configuration;
using Cortensor.Portal.Unkey.Health;
using Cortensor.Portal.Unkey.Keys;
using Cortensor.Portal.Unkey.Telemetry;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

#pragma warning disable IDE0130 // Extension methods live where IServiceCollection does, by .NET convention.
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Makes Unkey the Portal's API key provider.</summary>
public static class CortensorUnkeyServiceCollectionExtensions
{
    /// <summary>
    /// Registers Unkey as the <see cref="IApiKeyProvider"/>. On top of <c>AddCortensorApiKeys()</c> (called here; safe
    /// to call again):
    /// <list type="bullet">
    /// <item><see cref="UnkeyClient"/>, a typed <see cref="HttpClient"/> with the <c>cortensor-unkey</c> resilience
    /// pipeline (total timeout → retry of calls that cannot double-spend → circuit breaker → attempt timeout) and with
    /// every logged header value redacted, so the root key never reaches a log;</item>
    /// <item><see cref="UnkeyApiKeyProvider"/> (serve-stale while Unkey is down), replacing the
    /// <see cref="IApiKeyProvider"/> that is registered (the local, store-backed one). Call this <em>after</em>
    /// <c>AddCortensorRedis</c> when both are used: limits and the change feed stay on Redis, keys move to Unkey;</item>
    /// <item><see cref="UnkeyMetrics"/> on the meter <see cref="UnkeyMetrics.MeterName"/>;</item>
    /// <item>the <c>unkey</c> readiness check (<see cref="UnkeyHealthCheck"/>: is the root key accepted and scoped to the
    /// API?), also run once at start-up so a wrong root key is logged before the first request.</item>
    /// </list>
    /// <see cref="UnkeyOptions"/> are validated at startup (the root key is required and never appears in messages).
    /// Safe to call more than once.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the API id, the root key and the other <see cref="UnkeyOptions"/>.</param>
    /// <returns>A builder for chaining.</returns>
    public static ICortensorUnkeyBuilder AddCortensorUnkey(this IServiceCollection services, Action<UnkeyOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.Configure(configure);
        return builder;
    }

    /// <inheritdoc cref="AddCortensorUnkey(IServiceCollection, Action{UnkeyOptions})"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the <see cref="UnkeyOptions"/>, with access to other services.</param>
    public static ICortensorUnkeyBuilder AddCortensorUnkey(this IServiceCollection services, Action<UnkeyOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.AddOptions<UnkeyOptions>().Configure<IServiceProvider>(configure);
        return builder;
    }

    private static UnkeyBuilder AddCore(IServiceCollection services)
    {
        services.AddCortensorApiKeys();

        // ValidateOnStart, the handlers and the replacement below add registrations on every call, so do them once.
        if (services.FirstOrDefault(static d => d.ServiceType == typeof(UnkeyMarker))?.ImplementationInstance is UnkeyMarker marker)
        {
            return new UnkeyBuilder(services, marker.HttpClient);
        }

        var httpClient = services.AddHttpClient(UnkeyClient.HttpClientName);
        services.AddSingleton(new UnkeyMarker(httpClient));
        services.AddOptions<UnkeyOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UnkeyOptions>, UnkeyOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UnkeyOptions>, UnkeyOptionsCustomValidator>());
        services.TryAddSingleton(TimeProvider.System);

        // The provider holds its client for the life of the process, so the handler is never rotated by the factory;
        // SocketsHttpHandler recycles pooled connections itself (and so picks up DNS changes).
        httpClient
            .ConfigureHttpClient(static client => client.Timeout = Timeout.InfiniteTimeSpan) // the pipeline owns timing
            .ConfigurePrimaryHttpMessageHandler(static sp => new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                ConnectTimeout = sp.GetRequiredService<IOptions<UnkeyOptions>>().Value.AttemptTimeout,
            })
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan)
            .RedactLoggedHeaders(static _ => true)
            .AddResilienceHandler(UnkeyResilience.PipelineName, static (pipeline, context) =>
                UnkeyResilience.Configure(pipeline, context.ServiceProvider.GetRequiredService<IOptions<UnkeyOptions>>().Value));
        httpClient.AddTypedClient(static (http, sp) => new UnkeyClient(http, sp.GetRequiredService<IOptions<UnkeyOptions>>()));

        services.TryAddSingleton(static sp => new UnkeyMetrics(sp.GetService<IMeterFactory>()));
        services.TryAddSingleton(static sp => new UnkeyApiKeyProvider(
            sp.GetRequiredService<UnkeyClient>(),
            sp.GetRequiredService<ApiKeyFormat>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<UnkeyOptions>>(),
            sp.GetRequiredService<IHotPathChangeFeed>(),
            sp.GetRequiredService<UnkeyMetrics>(),
            sp.GetService<ILogger<UnkeyApiKeyProvider>>() ?? NullLogger<UnkeyApiKeyProvider>.Instance));

        // Readiness and a start-up run of the root key probe. Only the check: the health check service that runs it
        // comes with AddHealthChecks() (AddCortensorGateway calls it).
        services.TryAddSingleton(static sp => new UnkeyRootKeyProbe(
            sp.GetRequiredService<UnkeyClient>(),
            sp.GetRequiredService<IOptions<UnkeyOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<UnkeyRootKeyProbe>>() ?? NullLogger<UnkeyRootKeyProbe>.Instance));
        services.Configure<HealthCheckServiceOptions>(static o => o.Registrations.Add(new HealthCheckRegistration(
            UnkeyHealthCheck.Name,
            static sp => new UnkeyHealthCheck(sp.GetRequiredService<UnkeyRootKeyProbe>()),
            failureStatus: null,
            tags: null)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, UnkeyStartupProbe>());

        // No in-process CachingApiKeyProvider in front: it checks the Portal's own checksum format, which Unkey keys do
        // not have; the Unkey provider keeps its own (optional) cache and serve-stale memory.
        services.Replace(ServiceDescriptor.Singleton<IApiKeyProvider>(static sp => sp.GetRequiredService<UnkeyApiKeyProvider>()));
        return new UnkeyBuilder(services, httpClient);
    }

    private sealed record UnkeyBuilder(IServiceCollection Services, IHttpClientBuilder HttpClient) : ICortensorUnkeyBuilder;

    /// <summary>Marks a collection that <see cref="AddCortensorUnkey(IServiceCollection, Action{UnkeyOptions})"/> has already set up.</summary>
    private sealed class UnkeyMarker(IHttpClientBuilder httpClient)
    {
        public IHttpClientBuilder HttpClient { get; } = httpClient;
    }
}
