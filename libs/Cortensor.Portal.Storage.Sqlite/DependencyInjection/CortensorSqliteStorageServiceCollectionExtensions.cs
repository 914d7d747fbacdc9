using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Sqlite.Configuration;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Health;
using Cortensor.Portal.Storage.Sqlite.Hosting;
using Cortensor.Portal.Storage.Sqlite.Keys;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Cortensor.Portal.Storage.Sqlite.Usage;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the embedded SQLite durable store.</summary>
public static class CortensorSqliteStorageServiceCollectionExtensions
{
    /// <summary>
    /// Makes SQLite the durable store: replaces <see cref="IApiKeyStore"/> and <see cref="IUsageSink"/> with
    /// <see cref="SqliteApiKeyStore"/> and <see cref="SqliteUsageStore"/>, registers <see cref="IUsageReader"/>, the account,
    /// plan, model-access-policy, audit, ledger and fleet-configuration stores (as their interfaces),
    /// <see cref="SqliteDatabase"/>, <see cref="SqliteMigrator"/> and a hosted service that migrates the database
    /// in <see cref="IHostedLifecycleService.StartingAsync"/>, before any other hosted service starts; and the
    /// <c>sqlite</c> readiness check (<see cref="SqliteHealthCheck"/>).
    /// </summary>
    /// <remarks>
    /// Options are validated at start-up (<see cref="SqliteStorageOptions.DatabasePath"/> is required). Call it
    /// after or before <c>AddCortensorApiKeys</c>: either way the SQLite store wins. Safe to call more than once
    /// (each call adds its <paramref name="configure"/>; nothing else is registered twice).
    /// </remarks>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the database path and migration behaviour.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddCortensorSqliteStorage(this IServiceCollection services, Action<SqliteStorageOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.Configure(configure);
        return AddCore(services);
    }

    /// <inheritdoc cref="AddCortensorSqliteStorage(IServiceCollection, Action{SqliteStorageOptions})"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the database path and migration behaviour, with access to other services (for example the host environment's content root).</param>
    public static IServiceCollection AddCortensorSqliteStorage(this IServiceCollection services, Action<SqliteStorageOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<SqliteStorageOptions>().Configure<IServiceProvider>(configure);
        return AddCore(services);
    }

    private static IServiceCollection AddCore(IServiceCollection services)
    {
        // ValidateOnStart adds a registration on every call, so do it once.
        if (!services.Any(static d => d.ServiceType == typeof(SqliteStorageMarker)))
        {
            services.AddSingleton<SqliteStorageMarker>();
            services.AddOptions<SqliteStorageOptions>().ValidateOnStart();

            // Readiness: a small read of the database file, bounded (SqliteHealthCheck).
            // Only the check: the health check service that runs it comes with AddHealthChecks() (AddCortensorGateway calls it).
            services.Configure<HealthCheckServiceOptions>(static o => o.Registrations.Add(new HealthCheckRegistration(
                SqliteHealthCheck.Name,
                static sp => new SqliteHealthCheck(sp.GetRequiredService<SqliteDatabase>(), sp.GetRequiredService<TimeProvider>()),
                failureStatus: null,
                tags: null)));
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SqliteStorageOptions>, SqliteStorageOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SqliteStorageOptions>, SqliteStoragePathValidator>());
        services.TryAddSingleton(TimeProvider.System);

        services.TryAddSingleton(static sp => new SqliteDatabase(sp.GetRequiredService<IOptions<SqliteStorageOptions>>()));
        services.TryAddSingleton(static sp => new SqliteMigrator(
            sp.GetRequiredService<SqliteDatabase>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<SqliteMigrator>>()));
        services.TryAddSingleton(static sp => new SqliteApiKeyStore(sp.GetRequiredService<SqliteDatabase>()));
        services.TryAddSingleton(static sp => new SqliteUsageStore(sp.GetRequiredService<SqliteDatabase>()));

        services.Replace(ServiceDescriptor.Singleton<IApiKeyStore>(static sp => sp.GetRequiredService<SqliteApiKeyStore>()));
        services.Replace(ServiceDescriptor.Singleton<IUsageSink>(static sp => sp.GetRequiredService<SqliteUsageStore>()));
        services.Replace(ServiceDescriptor.Singleton<IUsageReader>(static sp => sp.GetRequiredService<SqliteUsageStore>()));
        CortensorSqliteAccountStorageRegistration.AddSqliteAccountLedgerAndFleetStores(services);

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SqliteMigrationHostedService>(
            static sp => new SqliteMigrationHostedService(
                sp.GetRequiredService<SqliteMigrator>(),
                sp.GetRequiredService<IOptions<SqliteStorageOptions>>())));
        return services;
    }

    /// <summary>Marks a collection that <see cref="AddCore"/> has already set up.</summary>
    private sealed class SqliteStorageMarker;
}
