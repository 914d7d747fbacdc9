using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Accounts.Organizations;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Metering.Ledger;
using Cortensor.Portal.Storage.Sqlite.Accounts;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Fleet;
using Cortensor.Portal.Storage.Sqlite.Ledger;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// The account, plan, policy, audit, ledger and fleet-configuration stores of the SQLite durable store; called by
/// <see cref="CortensorSqliteStorageServiceCollectionExtensions.AddCortensorSqliteStorage(IServiceCollection, Action{Cortensor.Portal.Storage.Sqlite.Configuration.SqliteStorageOptions})"/>.
/// </summary>
internal static class CortensorSqliteAccountStorageRegistration
{
    /// <summary>
    /// Registers each store as a singleton of its concrete type (TryAdd) and replaces the interface registration with it,
    /// so SQLite wins over any earlier registration. Safe to call more than once.
    /// </summary>
    public static IServiceCollection AddSqliteAccountLedgerAndFleetStores(IServiceCollection services)
    {
        services.TryAddSingleton(static sp => new SqliteAccountStore(sp.GetRequiredService<SqliteDatabase>()));
        services.TryAddSingleton(static sp => new SqlitePlanStore(sp.GetRequiredService<SqliteDatabase>()));
        services.TryAddSingleton(static sp => new SqliteModelAccessPolicyStore(sp.GetRequiredService<SqliteDatabase>()));
        services.TryAddSingleton(static sp => new SqliteAuditLog(sp.GetRequiredService<SqliteDatabase>()));
        services.TryAddSingleton(static sp => new SqliteLedgerStore(
            sp.GetRequiredService<SqliteDatabase>(),
            sp.GetService<ILogger<SqliteLedgerStore>>()));
        services.TryAddSingleton(static sp => new SqliteFleetConfigurationStore(
            sp.GetRequiredService<SqliteDatabase>(),
            sp.GetService<TimeProvider>(),
            sp.GetService<ILogger<SqliteFleetConfigurationStore>>()));

        services.Replace(ServiceDescriptor.Singleton<IAccountStore>(static sp => sp.GetRequiredService<SqliteAccountStore>()));
        services.Replace(ServiceDescriptor.Singleton<IPlanStore>(static sp => sp.GetRequiredService<SqlitePlanStore>()));
        services.Replace(ServiceDescriptor.Singleton<IModelAccessPolicyStore>(static sp => sp.GetRequiredService<SqliteModelAccessPolicyStore>()));
        services.Replace(ServiceDescriptor.Singleton<IAuditLog>(static sp => sp.GetRequiredService<SqliteAuditLog>()));
        services.Replace(ServiceDescriptor.Singleton<ILedgerStore>(static sp => sp.GetRequiredService<SqliteLedgerStore>()));
        services.Replace(ServiceDescriptor.Singleton<IFleetConfigurationStore>(static sp => sp.GetRequiredService<SqliteFleetConfigurationStore>()));
        return services;
    }
}
