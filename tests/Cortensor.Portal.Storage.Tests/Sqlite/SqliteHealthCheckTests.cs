using Cortensor.Portal.Storage.Sqlite.Health;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>The <c>sqlite</c> readiness check on a real database file.</summary>
public sealed class SqliteHealthCheckTests
{
    private static Task<HealthCheckResult> CheckAsync(SqliteTestDatabase db) => CheckAsync(new SqliteHealthCheck(db.Database, TimeProvider.System));

    private static Task<HealthCheckResult> CheckAsync(SqliteHealthCheck check)
    {
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

    [Fact]
    public async Task Check_ReadBlockedByALock_TimesOutAndTheReadGivesUp()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();
        SqliteConnection.ClearAllPools(); // an idle pooled connection keeps the WAL open, and exclusive mode needs it closed
        var check = new SqliteHealthCheck(db.Database, TimeProvider.System);
        Task read;
        await using (var blocker = new SqliteConnection(db.Database.ConnectionString + ";Pooling=False"))
        {
            // Exclusive locking mode keeps the write lock after the write, so every other reader gets SQLITE_BUSY.
            await blocker.OpenAsync();
            await using (var hold = blocker.CreateCommand())
            {
                hold.CommandText = "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; DELETE FROM schema_version WHERE version < 0;";
                await hold.ExecuteNonQueryAsync();
            }

            var result = await CheckAsync(check);

            Assert.Equal(HealthStatus.Unhealthy, result.Status);
            Assert.Equal("SQLite did not answer within 2 s", result.Description);

            // The lock is still held: the read ends only because it gives up. Before, it waited busy_timeout (5 s) and
            // then retried until the command timeout (30 s). The bound is there to fail, not to time anything.
            read = check.LastRead!;
            Assert.True(await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(15))) == read, "the timed-out read was still waiting for the lock");
        }

        var failure = Assert.IsType<SqliteException>(read.Exception?.InnerException);
        Assert.Equal(5, failure.SqliteErrorCode); // SQLITE_BUSY
    }

    [Fact]
    public async Task Check_ReadThatNeverEnds_TimesOutAndIsInterrupted()
    {
        await using var db = new SqliteTestDatabase();
        await db.CreateMigrator().MigrateAsync();
        await using (var connection = await db.Database.OpenConnectionAsync())
        await using (var replace = connection.CreateCommand())
        {
            // The check reads max(version) FROM schema_version: make that an endless scan (no lock, just work).
            replace.CommandText = """
                DROP TABLE schema_version;
                CREATE VIEW schema_version AS WITH RECURSIVE n(version) AS (SELECT 1 UNION ALL SELECT version + 1 FROM n) SELECT version FROM n;
                """;
            await replace.ExecuteNonQueryAsync();
        }

        var check = new SqliteHealthCheck(db.Database, TimeProvider.System);

        var result = await CheckAsync(check);

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Equal("SQLite did not answer within 2 s", result.Description);
        var read = check.LastRead!;
        Assert.True(await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(15))) == read, "the timed-out read was still running");
        if (!read.IsCanceled) // on a loaded machine the deadline may pass before the statement even starts
        {
            var failure = Assert.IsType<SqliteException>(read.Exception?.InnerException);
            Assert.Equal(9, failure.SqliteErrorCode); // SQLITE_INTERRUPT: stopped by the deadline
        }
    }
}
