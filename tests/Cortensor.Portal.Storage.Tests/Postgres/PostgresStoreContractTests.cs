using Cortensor.Portal.Storage.Tests.Contract;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>The shared store contract against Postgres; every test gets its own schema, dropped afterwards.</summary>
public sealed class PostgresStoreContractTests : StoreContractTests
{
    protected override async Task<StoreUnderTest> CreateStoreAsync()
    {
        var database = await PostgresTestDatabase.CreateAsync();
        var usage = database.CreateUsageStore();
        return new StoreUnderTest
        {
            Keys = database.CreateKeyStore(),
            Sink = usage,
            Reader = usage,
            MigrateAgainAsync = async () =>
            {
                await database.CreateMigrator().MigrateAsync();
                await database.CreateMaintenance().MaintainPartitionsAsync();
            },
            SchemaVersionAsync = () => database.CreateMigrator().GetSchemaVersionAsync(),
            CleanupAsync = database.DisposeAsync,
        };
    }
}
