using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Gateway.Entitlements;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Inference;
using Cortensor.Portal.Gateway.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

#pragma warning disable IDE0130 // Extension methods live where IServiceCollection does, by .NET convention.
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Chains gateway features off <see cref="CortensorGatewayServiceCollectionExtensions.AddCortensorGateway(IServiceCollection)"/>.</summary>
public interface ICortensorGatewayBuilder
{
    IServiceCollection Services { get; }

    /// <summary>The fleet (catalog, pools, routers) behind the gateway.</summary>
    ICortensorFleetBuilder Fleet { get; }

    /// <summary>API keys (format, provider, store).</summary>
    ICortensorApiKeysBuilder Keys { get; }
}

public static class CortensorGatewayServiceCollectionExtensions
{
    /// <summary>
    /// Adds the OpenAI-compatible gateway with its key provider and fleet; keys are kept in memory until a store is
    /// added. The fleet must be configured (<see cref="BindConfiguration"/> or <c>Fleet.Configure</c>), or set to the
    /// simulated default catalog with <c>Fleet.UseSimulatedRouters()</c>; an empty fleet fails on start. Safe to call
    /// more than once.
    /// </summary>
    public static ICortensorGatewayBuilder AddCortensorGateway(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);

        var keys = services.AddCortensorApiKeys();
        var fleet = services.AddCortensorFleet();
        services.AddCortensorMetering();
        services.AddCortensorRateLimiting();

        services.AddOptions<CortensorGatewayOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Options.IValidateOptions<CortensorGatewayOptions>, CortensorGatewayOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Options.IValidateOptions<CortensorGatewayOptions>, SpeculativeAdmissionOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Options.IValidateOptions<CortensorGatewayOptions>, FailedAuthenticationOptionsValidator>());
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<GatewayTelemetry>();
        services.TryAddSingleton<FailedAuthenticationGuard>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, FailedAuthenticationReporter>());
        services.TryAddSingleton<ApiKeyAuthenticator>();
        services.TryAddSingleton<InferenceService>();
        services.AddOptions<EntitlementCacheOptions>();
        services.TryAddSingleton<EntitlementCache>();
        services.TryAddSingleton<AdmissionHeadroom>();
        services.TryAddSingleton<HotPathEnforcer>();
        // A factory, so an app without a durable store still builds (and validates) its container; asking for
        // administration then says what is missing.
        services.TryAddSingleton(static sp => new ModelAccessAdministration(
            sp.GetService<Cortensor.Portal.Accounts.Policies.IModelAccessPolicyStore>()
                ?? throw new InvalidOperationException("ModelAccessAdministration needs a durable store: add AddCortensorSqliteStorage or AddCortensorPostgresStorage (or register an IModelAccessPolicyStore)."),
            sp.GetRequiredService<Cortensor.Portal.Keys.Changes.IHotPathChangeFeed>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetServices<Cortensor.Portal.Accounts.Audit.IAuditLog>()));
        services.TryAddSingleton<GatewayEndpointFilter>();

        // The health check service behind /health; the fleet and metering registrations above add their checks,
        // the durable store and Redis registrations add theirs.
        services.AddHealthChecks();
        return new GatewayBuilder(services, fleet, keys);
    }

    /// <summary>Adds the gateway and configures it in one call.</summary>
    public static ICortensorGatewayBuilder AddCortensorGateway(this IServiceCollection services, Action<CortensorGatewayOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = services.AddCortensorGateway();
        services.Configure(configure);
        return builder;
    }

    /// <summary>
    /// Binds gateway, fleet, key and rate limit settings from configuration: sections <c>Cortensor:Gateway</c>,
    /// <c>Cortensor:Fleet</c>, <c>Cortensor:Keys</c>, <c>Cortensor:RateLimits</c>, <c>Cortensor:Gateway:Entitlements</c>
    /// and <c>Cortensor:DevelopmentKey</c> (read by <see cref="AddDevelopmentBootstrap"/>) of <paramref name="configuration"/>.
    /// </summary>
    public static ICortensorGatewayBuilder BindConfiguration(this ICortensorGatewayBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        builder.Services.AddOptions<CortensorGatewayOptions>().Bind(configuration.GetSection(CortensorGatewayOptions.SectionName));
        builder.Fleet.Configure(configuration.GetSection(Cortensor.Portal.Fleet.Configuration.FleetOptions.SectionName));
        builder.Services.AddOptions<Cortensor.Portal.Keys.Format.ApiKeyFormatOptions>().Bind(configuration.GetSection("Cortensor:Keys"));
        builder.Services.AddOptions<Cortensor.Portal.Metering.RateLimiting.RateLimitingOptions>().Bind(configuration.GetSection(Cortensor.Portal.Metering.RateLimiting.RateLimitingOptions.SectionName));
        builder.Services.AddOptions<EntitlementCacheOptions>().Bind(configuration.GetSection("Cortensor:Gateway:Entitlements"));

        // By hand: the options also carry the output TextWriter, which is not a configuration value.
        var developmentKey = configuration.GetSection(DevelopmentBootstrapOptions.SectionName);
        builder.Services.AddOptions<DevelopmentBootstrapOptions>().Configure(o =>
        {
            o.Enabled = developmentKey.GetValue<bool?>(nameof(DevelopmentBootstrapOptions.Enabled)) ?? o.Enabled;
            o.OrgId = developmentKey[nameof(DevelopmentBootstrapOptions.OrgId)] is { Length: > 0 } orgId ? orgId : o.OrgId;
        });
        return builder;
    }

    /// <summary>
    /// On start, when no key exists for <see cref="DevelopmentBootstrapOptions.OrgId"/>, issues a <c>pk_test_</c> key
    /// and prints it once to standard output (never to the logs). Only in the Development environment, unless
    /// <see cref="DevelopmentBootstrapOptions.Enabled"/> (<c>Cortensor:DevelopmentKey:Enabled</c>) says otherwise.
    /// </summary>
    public static ICortensorGatewayBuilder AddDevelopmentBootstrap(this ICortensorGatewayBuilder builder, Action<DevelopmentBootstrapOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<DevelopmentBootstrapOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, DevelopmentBootstrapService>());
        return builder;
    }

    private sealed record GatewayBuilder(IServiceCollection Services, ICortensorFleetBuilder Fleet, ICortensorApiKeysBuilder Keys) : ICortensorGatewayBuilder;
}
