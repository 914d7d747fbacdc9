using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Hosting;
using Cortensor.Portal.Fleet.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

#pragma warning disable IDE0130 // Extension methods live where IServiceCollection does, by .NET convention.
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Chains fleet configuration off <see cref="CortensorFleetServiceCollectionExtensions.AddCortensorFleet"/>.</summary>
public interface ICortensorFleetBuilder
{
    IServiceCollection Services { get; }
}

public static class CortensorFleetServiceCollectionExtensions
{
    /// <summary>
    /// Adds the model catalog, router selection, router protocol clients, the simulator host and the
    /// <c>fleet</c> readiness check (<see cref="FleetHealthCheck"/>).
    /// Options are validated on start: a fleet with no routers refuses to start unless
    /// <see cref="FleetOptions.UseSimulatedRouters"/> is set, which serves the simulated default catalog
    /// (<see cref="FleetDefaults"/>) when nothing else is configured. Router keys given as <c>env:NAME</c>
    /// references (<see cref="RouterOptions.ApiKeyRef"/>) are read from the environment before validation.
    /// </summary>
    public static ICortensorFleetBuilder AddCortensorFleet(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);

        services.AddOptions<FleetOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FleetOptions>, FleetOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<FleetOptions>, DefaultCatalogPostConfigure>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<FleetOptions>, RouterKeyReferencePostConfigure>(static _ => new RouterKeyReferencePostConfigure()));

        services.AddCortensorRouterClients();
        services.TryAddSingleton(TimeProvider.System);

        services.AddMetrics();
        services.TryAddSingleton<FleetTelemetry>();
        services.TryAddSingleton<IRouterMemberHealth, RouterMemberHealth>();
        services.TryAddSingleton<FleetRuntime>();
        services.TryAddSingleton<IStreamLeases>(sp => sp.GetRequiredService<FleetRuntime>());
        services.TryAddSingleton<IModelCatalog>(sp => sp.GetRequiredService<FleetRuntime>());
        services.TryAddSingleton<IRouterSelector>(sp => sp.GetRequiredService<FleetRuntime>());
        services.TryAddSingleton<IPoolRoutability>(sp => sp.GetRequiredService<FleetRuntime>());

        // Readiness: every catalog model can reach a router (FleetHealthCheck). Once per collection: a second
        // registration under the same name would make the health check service refuse to start.
        if (!services.Any(d => d.ServiceType == typeof(FleetHealthCheck)))
        {
            services.AddSingleton<FleetHealthCheck>();

            // Only the check: the health check service that runs it comes with AddHealthChecks() (AddCortensorGateway calls it).
            services.Configure<HealthCheckServiceOptions>(static o => o.Registrations.Add(new HealthCheckRegistration(
                FleetHealthCheck.Name,
                static sp => sp.GetRequiredService<FleetHealthCheck>(),
                failureStatus: null,
                tags: null)));
        }

        if (!services.Any(d => d.ServiceType == typeof(SimulatedRouterHost)))
        {
            services.AddSingleton<SimulatedRouterHost>();
            services.AddSingleton<ISimulatedRouterDirectory>(sp => sp.GetRequiredService<SimulatedRouterHost>());
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<SimulatedRouterHost>());
        }

        return new FleetBuilder(services);
    }

    /// <summary>Binds routers, pools and models from a configuration section (for example <c>Cortensor:Fleet</c>).</summary>
    public static ICortensorFleetBuilder Configure(this ICortensorFleetBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        builder.Services.AddOptions<FleetOptions>().Bind(section);
        return builder;
    }

    public static ICortensorFleetBuilder Configure(this ICortensorFleetBuilder builder, Action<FleetOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(configure);
        return builder;
    }

    /// <summary>
    /// Serves the default catalog from built-in simulated routers when nothing else is configured
    /// (<see cref="FleetOptions.UseSimulatedRouters"/>); for development, samples and tests. A warning is logged on start.
    /// </summary>
    public static ICortensorFleetBuilder UseSimulatedRouters(this ICortensorFleetBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure<FleetOptions>(static o => o.UseSimulatedRouters = true);
        return builder;
    }

    private sealed record FleetBuilder(IServiceCollection Services) : ICortensorFleetBuilder;

    private sealed class DefaultCatalogPostConfigure : IPostConfigureOptions<FleetOptions>
    {
        public void PostConfigure(string? name, FleetOptions options)
        {
            // Only on request: an empty or mistyped section must fail validation, not quietly serve canned answers.
            if (options.UseSimulatedRouters && options.Models.Count == 0 && options.Pools.Count == 0 && options.Routers.Count == 0)
            {
                FleetDefaults.ApplySimulatedDefaults(options);
            }
        }
    }
}
