using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Portal metering pipeline.</summary>
public static class CortensorMeteringServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="UsageWriter"/> singleton as itself, as <see cref="IUsageRecorder"/> and as a hosted
    /// service; <see cref="InMemoryUsageSink"/> as <see cref="IUsageSink"/> unless a sink is registered (a durable store
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
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, UsageWriter>(static sp => sp.GetRequiredService<UsageWriter>()));
        return new Builder(services);
    }

    private sealed record Builder(IServiceCollection Services) : ICortensorMeteringBuilder;

    /// <summary>Marks a collection that <see cref="AddCortensorMetering(IServiceCollection)"/> has already set up.</summary>
    private sealed class MeteringMarker;
}
