using Cortensor.Portal.Storage.Tests.Contract;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>Runs the shared store contract against SQLite, one temp file per test.</summary>
public sealed class SqliteStoreContractTests : StoreContractTests
{
    protected override Task<StoreUnderTest> CreateStoreAsync() => new SqliteTestDatabase().CreateStoreAsync();
}
