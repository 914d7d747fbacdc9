using Cortensor.Portal.Storage.Sqlite.Health;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>The <c>sqlite</c> readiness check on a real database file.</summary>
public sealed class SqliteHealthCheckTests
{
    private static Task<HealthCheckResult> CheckAsync(SqliteTestDatabase db)
    {
        var check = new SqliteHealthCheck(db.Database, TimeProvider.System);
        return check.CheckHealthAsync(new HealthCheckContext
        {
            Registration = new HealthCheckRegistration(SqliteHealthCheck.Name, check, HealthStatus.Unhealthy, null),
        });
    }

    [Fact]
    public async Task Check_MigratedDatabase_Healthy()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();

        var result = await CheckAsync(db);

        Assert.Equal(HealthStatus.Healthy, result.Status);
    }

    [Fact]
    public async Task Check_FileWithoutTheSchema_UnhealthyWithSqliteCode_AndNoPath()
    {
        await using var db = new SqliteTestDatabase(); // never migrated: the file is created empty on first open

        var result = await CheckAsync(db);

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Equal("SQLite read failed (SQLite error 1)", result.Description); // SQLITE_ERROR: no such table
        Assert.NotNull(result.Exception); // the detail goes to the health check log, not to the body
    }

    [Fact]
    public async Task Check_PathIsAFolder_UnhealthyWithoutThePath()
    {
        await using var db = new SqliteTestDatabase();
        Directory.CreateDirectory(db.DatabasePath); // a folder where the file should be

        var result = await CheckAsync(db);

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.StartsWith("SQLite read failed (", result.Description, StringComparison.Ordinal);
        Assert.DoesNotContain(db.Folder, result.Description, StringComparison.Ordinal);
        Assert.DoesNotContain("portal.db", result.Description, StringComparison.Ordinal);
    }
}
