using Cortensor.Portal.Storage.Postgres.Accounts;
using Cortensor.Portal.Storage.Postgres.Fleet;
using Cortensor.Portal.Storage.Postgres.Ledger;
using Cortensor.Portal.Storage.Tests.Contract;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>Builds every account, plan, policy, audit, ledger and fleet store over one fresh schema, dropped on dispose.</summary>
internal static class PostgresExtendedStores
{
    public static async Task<ExtendedStoreUnderTest> CreateAsync()
    {
        var database = await PostgresTestDatabase.CreateAsync();
        return Over(database);
    }

    /// <summary>The stores over an existing (already migrated) schema; disposing them drops it.</summary>
    public static ExtendedStoreUnderTest Over(PostgresTestDatabase database) => new()
    {
        Accounts = new PostgresAccountStore(database.DataSource, database.Options),
        Plans = new PostgresPlanStore(database.DataSource, database.Options),
        Policies = new PostgresModelAccessPolicyStore(database.DataSource, database.Options),
        Audit = new PostgresAuditLog(database.DataSource, database.Options),
        Ledger = new PostgresLedgerStore(database.DataSource, database.Options),
        Fleet = new PostgresFleetConfigurationStore(database.DataSource, database.Options, database.TimeProvider),
        CleanupAsync = database.DisposeAsync,
    };
}

/// <summary>The shared account contract against Postgres; every test gets its own schema, dropped afterwards.</summary>
public sealed class PostgresAccountStoreContractTests : AccountStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => PostgresExtendedStores.CreateAsync();
}

/// <summary>The shared plan contract against Postgres.</summary>
public sealed class PostgresPlanStoreContractTests : PlanStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => PostgresExtendedStores.CreateAsync();
}

/// <summary>The shared model access policy contract against Postgres.</summary>
public sealed class PostgresModelAccessPolicyStoreContractTests : ModelAccessPolicyStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => PostgresExtendedStores.CreateAsync();
}

/// <summary>The shared audit log contract against Postgres.</summary>
public sealed class PostgresAuditLogContractTests : AuditLogContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => PostgresExtendedStores.CreateAsync();
}

/// <summary>The shared ledger contract against Postgres.</summary>
public sealed class PostgresLedgerStoreContractTests : LedgerStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => PostgresExtendedStores.CreateAsync();
}

/// <summary>The shared fleet configuration contract against Postgres.</summary>
public sealed class PostgresFleetConfigurationStoreContractTests : FleetConfigurationStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => PostgresExtendedStores.CreateAsync();
}
