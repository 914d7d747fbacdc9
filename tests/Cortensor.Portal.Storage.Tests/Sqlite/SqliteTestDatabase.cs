using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Keys;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Cortensor.Portal.Storage.Sqlite.Usage;
using Cortensor.Portal.Storage.Tests.Contract;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>A database file under a fresh temp folder; disposing clears its connection pool and deletes the folder.</summary>
public sealed class SqliteTestDatabase : IAsyncDisposable
{
    public SqliteTestDatabase()
    {
        Folder = Path.Combine(Path.GetTempPath(), "cportal-sqlite-tests", Guid.NewGuid().ToString("N"));
        DatabasePath = Path.Combine(Folder, "App_Data", "portal.db");
        Database = new SqliteDatabase(DatabasePath);
    }

    public string Folder { get; }

    public string DatabasePath { get; }

    public SqliteDatabase Database { get; }

    public SqliteMigrator CreateMigrator() => new(new SqliteDatabase(DatabasePath));

    /// <summary>Migrates the file and wraps it in a <see cref="StoreUnderTest"/> that deletes it when disposed.</summary>
    public async Task<StoreUnderTest> CreateStoreAsync()
    {
        var migrator = CreateMigrator();
        await migrator.MigrateAsync();
        var usage = new SqliteUsageStore(Database);
        return new StoreUnderTest
        {
            Keys = new SqliteApiKeyStore(Database),
            Sink = usage,
            Reader = usage,
            MigrateAgainAsync = () => CreateMigrator().MigrateAsync(),
            SchemaVersionAsync = () => migrator.GetSchemaVersionAsync(),
            CleanupAsync = DisposeAsync,
        };
    }

    public ValueTask DisposeAsync()
    {
        using (var connection = new SqliteConnection(Database.ConnectionString))
        {
            SqliteConnection.ClearPool(connection);
        }

        try
        {
            if (Directory.Exists(Folder))
            {
                Directory.Delete(Folder, recursive: true);
            }
        }
        catch (IOException)
        {
            // A temp folder left behind is harmless.
        }

        return ValueTask.CompletedTask;
    }
}
