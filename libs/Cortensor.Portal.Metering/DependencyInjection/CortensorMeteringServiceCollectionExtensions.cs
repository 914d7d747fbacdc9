using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Portal metering pipeline and rate limiting.</summary>
public static class CortensorMeteringServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="UsageWriter"/> singleton as itself, as <see cref="IUsageRecorder"/>, as
    /// <see cref="IUsageJournal"/> and as a hosted
    /// service; the <see cref="UsageWriterHealthCheck"/> (named <c>usage-writer</c>); <see cref="InMemoryUsageSink"/> as <see cref="IUsageSink"/> unless a sink is registered (a durable store
    /// replaces it with <c>services.Replace(...)</c>); <see cref="TimeProvider.System"/> unless a time provider is
    /// registered; and metrics. <see cref="UsageWriterOptions"/> are validated at startup. Safe to call more than once.
    /// </summary>
    public static ICortensorMeteringBuilder AddCortensorMetering(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return AddCore(services);
    }

    /// <inheritdoc cref="AddCortensorMetering(IServiceCollection)"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the writer options (queue capacity, batching, spill folder, retry backoff).</param>
    public static ICortensorMeteringBuilder AddCortensorMetering(this IServiceCollection services, Action<UsageWriterOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.Configure(configure);
        return builder;
    }

    /// <inheritdoc cref="AddCortensorMetering(IServiceCollection)"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the writer options, with access to other services.</param>
    public static ICortensorMeteringBuilder AddCortensorMetering(this IServiceCollection services, Action<UsageWriterOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.AddOptions<UsageWriterOptions>().Configure<IServiceProvider>(configure);
        return builder;
    }

    private static Builder AddCore(IServiceCollection services)
    {
        // ValidateOnStart and AddMetrics add registrations on every call, so do them once.
        if (!services.Any(static d => d.ServiceType == typeof(MeteringMarker)))
        {
            services.AddSingleton<MeteringMarker>();
            services.AddOptions<UsageWriterOptions>().ValidateOnStart();
            services.AddMetrics();

            // Readiness: the usage backlog (queue fill, spilling, replay); see UsageWriterHealthCheck.
            // Only the check: the health check service that runs it comes with AddHealthChecks() (AddCortensorGateway calls it).
            services.Configure<HealthCheckServiceOptions>(static o => o.Registrations.Add(new HealthCheckRegistration(
                UsageWriterHealthCheck.Name,
                static sp => new UsageWriterHealthCheck(sp.GetRequiredService<UsageWriter>()),
                failureStatus: null,
                tags: null)));
        }
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UsageWriterOptions>, UsageWriterOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<UsageWriterOptions>, UsageWriterOptionsCustomValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<InMemoryUsageSink>();
        services.TryAddSingleton<IUsageSink>(static sp => sp.GetRequiredService<InMemoryUsageSink>());
        services.TryAddSingleton(static sp => new UsageWriter(
            sp.GetRequiredService<IUsageSink>(),
            sp.GetRequiredService<IOptions<UsageWriterOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IMeterFactory>(),
            sp.GetService<ILogger<UsageWriter>>() ?? NullLogger<UsageWriter>.Instance));
        services.TryAddSingleton<IUsageRecorder>(static sp => sp.GetRequiredService<UsageWriter>());
        services.TryAddSingleton<IUsageJournal>(static sp => sp.GetRequiredService<UsageWriter>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, UsageWriter>(static sp => sp.GetRequiredService<UsageWriter>()));
        return new Builder(services);
    }

    /// <summary>
    /// Registers rate limiting: <see cref="RateLimitingOptions"/> (validated at startup), <see cref="RateLimitPlanner"/>,
    /// one <see cref="InProcessRateLimiter"/> singleton as itself and as <see cref="IRateLimiter"/> unless a limiter is
    /// registered (a shared store replaces it, see <see cref="UseSharedStore"/>), <see cref="TimeProvider.System"/>
    /// unless a time provider is registered, and metrics. Options are not bound here: bind section
    /// <see cref="RateLimitingOptions.SectionName"/> in the host. Safe to call more than once.
    /// </summary>
    public static ICortensorRateLimitingBuilder AddCortensorRateLimiting(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return AddRateLimitingCore(services);
    }

    /// <inheritdoc cref="AddCortensorRateLimiting(IServiceCollection)"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the rate limit options (tiers, overrides, failure modes).</param>
    public static ICortensorRateLimitingBuilder AddCortensorRateLimiting(this IServiceCollection services, Action<RateLimitingOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddRateLimitingCore(services);
        services.Configure(configure);
        return builder;
    }

    /// <summary>
    /// Makes <see cref="IRateLimiter"/> a <see cref="FallbackRateLimiter"/> (also registered as itself) over the shared
    /// limiter that <paramref name="primaryFactory"/> creates, replacing the in-process default. Calling it again
    /// replaces the previous shared limiter.
    /// </summary>
    /// <param name="builder">The builder from <see cref="AddCortensorRateLimiting(IServiceCollection)"/>.</param>
    /// <param name="primaryFactory">Creates the shared limiter (for example the Redis one); called once.</param>
    /// <returns>The same builder.</returns>
    public static ICortensorRateLimitingBuilder UseSharedStore(this ICortensorRateLimitingBuilder builder, Func<IServiceProvider, IRateLimiter> primaryFactory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(primaryFactory);
        builder.Services.Replace(ServiceDescriptor.Singleton(sp => new FallbackRateLimiter(
            primaryFactory(sp),
            sp.GetRequiredService<IOptionsMonitor<RateLimitingOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IMeterFactory>(),
            sp.GetService<ILogger<FallbackRateLimiter>>() ?? NullLogger<FallbackRateLimiter>.Instance)));
        builder.Services.Replace(ServiceDescriptor.Singleton<IRateLimiter>(static sp => sp.GetRequiredService<FallbackRateLimiter>()));
        return builder;
    }

    private static RateLimitingBuilder AddRateLimitingCore(IServiceCollection services)
    {
        if (!services.Any(static d => d.ServiceType == typeof(RateLimitingMarker)))
        {
            services.AddSingleton<RateLimitingMarker>();
            services.AddOptions<RateLimitingOptions>().ValidateOnStart();
            services.AddMetrics();
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RateLimitingOptions>, RateLimitingOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(static sp => new InProcessRateLimiter(
            sp.GetRequiredService<IOptionsMonitor<RateLimitingOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IMeterFactory>()));
        services.TryAddSingleton<IRateLimiter>(static sp => sp.GetRequiredService<InProcessRateLimiter>());
        services.TryAddSingleton(static sp => new RateLimitPlanner(sp.GetRequiredService<IOptionsMonitor<RateLimitingOptions>>()));
        return new RateLimitingBuilder(services);
    }

    private sealed record Builder(IServiceCollection Services) : ICortensorMeteringBuilder;

    private sealed record RateLimitingBuilder(IServiceCollection Services) : ICortensorRateLimitingBuilder;

    /// <summary>Marks a collection that <see cref="AddCortensorRateLimiting(IServiceCollection)"/> has already set up.</summary>
    private sealed class RateLimitingMarker;

    /// <summary>Marks a collection that <see cref="AddCortensorMetering(IServiceCollection)"/> has already set up.</summary>
    private sealed class MeteringMarker;
}
