using Cortensor.Portal.Storage.Sqlite.Accounts;
using Cortensor.Portal.Storage.Sqlite.Fleet;
using Cortensor.Portal.Storage.Sqlite.Ledger;
using Cortensor.Portal.Storage.Tests.Contract;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>Wraps a <see cref="SqliteTestDatabase"/> in an <see cref="ExtendedStoreUnderTest"/>.</summary>
public static class SqliteExtendedStores
{
    /// <summary>Migrates the file and returns the six stores over it; disposing the handle deletes the file.</summary>
    public static async Task<ExtendedStoreUnderTest> CreateExtendedStoreAsync(this SqliteTestDatabase db)
    {
        ArgumentNullException.ThrowIfNull(db);
        await db.CreateMigrator().MigrateAsync();
        return Wrap(db);
    }

    /// <summary>The six stores over an already migrated file; disposing the handle deletes the file.</summary>
    public static ExtendedStoreUnderTest Wrap(SqliteTestDatabase db)
    {
        ArgumentNullException.ThrowIfNull(db);
        return new ExtendedStoreUnderTest
        {
            Accounts = new SqliteAccountStore(db.Database),
            Plans = new SqlitePlanStore(db.Database),
            Policies = new SqliteModelAccessPolicyStore(db.Database),
            Audit = new SqliteAuditLog(db.Database),
            Ledger = new SqliteLedgerStore(db.Database),
            Fleet = new SqliteFleetConfigurationStore(db.Database),
            CleanupAsync = db.DisposeAsync,
        };
    }
}

/// <summary>The shared account contract against SQLite, one temp file per test.</summary>
public sealed class SqliteAccountStoreContractTests : AccountStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => new SqliteTestDatabase().CreateExtendedStoreAsync();
}

/// <summary>The shared plan contract against SQLite, one temp file per test.</summary>
public sealed class SqlitePlanStoreContractTests : PlanStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => new SqliteTestDatabase().CreateExtendedStoreAsync();
}

/// <summary>The shared model access policy contract against SQLite, one temp file per test.</summary>
public sealed class SqliteModelAccessPolicyStoreContractTests : ModelAccessPolicyStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => new SqliteTestDatabase().CreateExtendedStoreAsync();
}

/// <summary>The shared audit log contract against SQLite, one temp file per test.</summary>
public sealed class SqliteAuditLogContractTests : AuditLogContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => new SqliteTestDatabase().CreateExtendedStoreAsync();
}

/// <summary>The shared ledger contract against SQLite, one temp file per test.</summary>
public sealed class SqliteLedgerStoreContractTests : LedgerStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => new SqliteTestDatabase().CreateExtendedStoreAsync();
}

/// <summary>The shared fleet configuration contract against SQLite, one temp file per test.</summary>
public sealed class SqliteFleetConfigurationStoreContractTests : FleetConfigurationStoreContractTests
{
    protected override Task<ExtendedStoreUnderTest> CreateAsync() => new SqliteTestDatabase().CreateExtendedStoreAsync();
}
