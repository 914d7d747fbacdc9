using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Health;
using Cortensor.Portal.Storage.Postgres.Hosting;
using Cortensor.Portal.Storage.Postgres.Keys;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Postgres.Usage;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Postgres durable store.</summary>
public static class CortensorPostgresStorageServiceCollectionExtensions
{
    /// <summary>
    /// Makes Postgres the durable store: <see cref="IApiKeyStore"/> and <see cref="IUsageSink"/> are replaced
    /// (whatever was registered before, for example the in-memory key store), <see cref="IUsageReader"/> is
    /// set, and a hosted service migrates the schema in <c>StartingAsync</c> (before other hosted services
    /// start) and maintains the monthly partitions daily.
    /// </summary>
    /// <remarks>
    /// Also registers <see cref="PostgresStorageOptions"/> (validated at start-up), one
    /// <see cref="NpgsqlDataSource"/> keyed <see cref="PostgresStorageServiceKeys.DataSource"/>,
    /// <see cref="PostgresMigrator"/>, <see cref="PostgresPartitionMaintenance"/>, <see cref="PostgresApiKeyStore"/>,
    /// <see cref="PostgresUsageStore"/>, the <c>postgres</c> readiness check (<see cref="PostgresHealthCheck"/>) and
    /// <see cref="TimeProvider.System"/> (if none). Safe to call more than
    /// once: nothing is registered twice, and every <paramref name="configure"/> applies in order.
    /// </remarks>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the connection string and other options.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddCortensorPostgresStorage(this IServiceCollection services, Action<PostgresStorageOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        AddCore(services);
        services.Configure(configure);
        return services;
    }

    /// <inheritdoc cref="AddCortensorPostgresStorage(IServiceCollection, Action{PostgresStorageOptions})"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options, with access to other services (for example configuration or a secret store).</param>
    public static IServiceCollection AddCortensorPostgresStorage(this IServiceCollection services, Action<PostgresStorageOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        AddCore(services);
        services.AddOptions<PostgresStorageOptions>().Configure<IServiceProvider>(configure);
        return services;
    }

    private static void AddCore(IServiceCollection services)
    {
        // ValidateOnStart and the hosted service would be added again on every call, so add them once.
        if (!services.Any(static d => d.ServiceType == typeof(PostgresStorageMarker)))
        {
            services.AddSingleton<PostgresStorageMarker>();
            services.AddOptions<PostgresStorageOptions>().ValidateOnStart();
            services.AddSingleton<IHostedService>(static sp => new PostgresStorageHostedService(
                sp.GetRequiredService<PostgresMigrator>(),
                sp.GetRequiredService<PostgresPartitionMaintenance>(),
                sp.GetRequiredService<IOptions<PostgresStorageOptions>>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<ILogger<PostgresStorageHostedService>>()));

            // Readiness: SELECT 1 through the store's data source, bounded (PostgresHealthCheck).
            // Only the check: the health check service that runs it comes with AddHealthChecks() (AddCortensorGateway calls it).
            services.Configure<HealthCheckServiceOptions>(static o => o.Registrations.Add(new HealthCheckRegistration(
                PostgresHealthCheck.Name,
                static sp => new PostgresHealthCheck(DataSource(sp), sp.GetRequiredService<TimeProvider>()),
                failureStatus: null,
                tags: null)));
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PostgresStorageOptions>, PostgresStorageOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddKeyedSingleton<NpgsqlDataSource>(
            PostgresStorageServiceKeys.DataSource,
            static (sp, _) => PostgresDataSourceFactory.Create(
                sp.GetRequiredService<IOptions<PostgresStorageOptions>>().Value,
                sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton(static sp => new PostgresMigrator(
            DataSource(sp),
            sp.GetRequiredService<IOptions<PostgresStorageOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<PostgresMigrator>>()));
        services.TryAddSingleton(static sp => new PostgresPartitionMaintenance(
            DataSource(sp),
            sp.GetRequiredService<IOptions<PostgresStorageOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<PostgresPartitionMaintenance>>()));
        services.TryAddSingleton(static sp => new PostgresApiKeyStore(
            DataSource(sp),
            sp.GetRequiredService<IOptions<PostgresStorageOptions>>()));
        services.TryAddSingleton(static sp => new PostgresUsageStore(
            DataSource(sp),
            sp.GetRequiredService<IOptions<PostgresStorageOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<PostgresUsageStore>>()));

        services.Replace(ServiceDescriptor.Singleton<IApiKeyStore>(static sp => sp.GetRequiredService<PostgresApiKeyStore>()));
        services.Replace(ServiceDescriptor.Singleton<IUsageSink>(static sp => sp.GetRequiredService<PostgresUsageStore>()));
        services.Replace(ServiceDescriptor.Singleton<IUsageReader>(static sp => sp.GetRequiredService<PostgresUsageStore>()));

        CortensorPostgresAccountStorageServiceCollectionExtensions.AddPostgresAccountStores(services);
    }

    private static NpgsqlDataSource DataSource(IServiceProvider services) =>
        services.GetRequiredKeyedService<NpgsqlDataSource>(PostgresStorageServiceKeys.DataSource);

    /// <summary>Marks a collection that already has the Postgres store.</summary>
    private sealed class PostgresStorageMarker;
}
