using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Accounts.Organizations;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Metering.Ledger;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Accounts;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Fleet;
using Cortensor.Portal.Storage.Postgres.Ledger;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// The account, plan, policy, audit, ledger and fleet-configuration part of the Postgres store; called by
/// <see cref="CortensorPostgresStorageServiceCollectionExtensions.AddCortensorPostgresStorage(IServiceCollection, Action{PostgresStorageOptions})"/>.
/// </summary>
internal static class CortensorPostgresAccountStorageServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="PostgresAccountStore"/>, <see cref="PostgresPlanStore"/>,
    /// <see cref="PostgresModelAccessPolicyStore"/>, <see cref="PostgresAuditLog"/>, <see cref="PostgresLedgerStore"/>
    /// and <see cref="PostgresFleetConfigurationStore"/> as singletons (TryAdd) and makes each the implementation of
    /// its interface (Replace, so Postgres wins over a store registered earlier). Idempotent.
    /// </summary>
    internal static void AddPostgresAccountStores(IServiceCollection services)
    {
        services.TryAddSingleton(static sp => new PostgresAccountStore(DataSource(sp), Options(sp)));
        services.TryAddSingleton(static sp => new PostgresPlanStore(DataSource(sp), Options(sp)));
        services.TryAddSingleton(static sp => new PostgresModelAccessPolicyStore(DataSource(sp), Options(sp)));
        services.TryAddSingleton(static sp => new PostgresAuditLog(DataSource(sp), Options(sp)));
        services.TryAddSingleton(static sp => new PostgresLedgerStore(
            DataSource(sp),
            Options(sp),
            sp.GetService<ILogger<PostgresLedgerStore>>()));
        services.TryAddSingleton(static sp => new PostgresFleetConfigurationStore(
            DataSource(sp),
            Options(sp),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<PostgresFleetConfigurationStore>>()));

        services.Replace(ServiceDescriptor.Singleton<IAccountStore>(static sp => sp.GetRequiredService<PostgresAccountStore>()));
        services.Replace(ServiceDescriptor.Singleton<IPlanStore>(static sp => sp.GetRequiredService<PostgresPlanStore>()));
        services.Replace(ServiceDescriptor.Singleton<IModelAccessPolicyStore>(static sp => sp.GetRequiredService<PostgresModelAccessPolicyStore>()));
        services.Replace(ServiceDescriptor.Singleton<IAuditLog>(static sp => sp.GetRequiredService<PostgresAuditLog>()));
        services.Replace(ServiceDescriptor.Singleton<ILedgerStore>(static sp => sp.GetRequiredService<PostgresLedgerStore>()));
        services.Replace(ServiceDescriptor.Singleton<IFleetConfigurationStore>(static sp => sp.GetRequiredService<PostgresFleetConfigurationStore>()));
    }

    private static NpgsqlDataSource DataSource(IServiceProvider services) =>
        services.GetRequiredKeyedService<NpgsqlDataSource>(PostgresStorageServiceKeys.DataSource);

    private static IOptions<PostgresStorageOptions> Options(IServiceProvider services) =>
        services.GetRequiredService<IOptions<PostgresStorageOptions>>();
}
