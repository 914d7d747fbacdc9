using Cortensor.Portal.Storage.Sqlite.Migrations;
using Microsoft.Data.Sqlite;
using static Cortensor.Portal.Cli.Tests.Migrate.MigrateCli;

namespace Cortensor.Portal.Cli.Tests.Migrate;

/// <summary><c>migrate</c> on SQLite, its options and its help. Postgres: <see cref="MigratePostgresTests"/>.</summary>
public sealed class MigrateCommandTests
{
    private const string Secret = "hunter2-secret";
    private const string ConnectionWithPassword = "Host=db.example;Port=5432;Database=portal;Username=portal;Password=" + Secret;

    [Theory]
    [InlineData("PORTAL_POSTGRES", "migrate --help")]
    [InlineData("ConnectionStrings__Portal", "migrate --help")]
    [InlineData("PORTAL_POSTGRES", "migrate --no-such-option")] // a parse error prints help too
    [InlineData("PORTAL_POSTGRES", "migrate --status --check")]
    public async Task Help_WithConnectionStringInEnvironment_NeverPrintsIt(string variable, string args)
    {
        var result = await RunAsync(args, new Dictionary<string, string> { [variable] = ConnectionWithPassword });

        Assert.Contains("--postgres", result.All, StringComparison.Ordinal); // it did print help
        Assert.DoesNotContain(Secret, result.All, StringComparison.Ordinal);
        Assert.DoesNotContain("db.example", result.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_DocumentsVariablesAndExitCodes()
    {
        var result = await RunAsync("migrate --help");

        Assert.Equal(0, result.Exit);
        foreach (var expected in new[] { "PORTAL_POSTGRES", "ConnectionStrings__Portal", "Cortensor__Storage__Postgres__Schema", "Cortensor__Storage__DataDirectory", "--check", "Exit codes:", "3 --check: migrations pending", "4 the database is newer" })
        {
            Assert.Contains(expected, result.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Help_InAProcessWithPortalPostgresSet_NeverPrintsIt()
    {
        var result = await RunProcessAsync(new Dictionary<string, string> { ["PORTAL_POSTGRES"] = ConnectionWithPassword }, "migrate", "--help");

        Assert.Equal(0, result.Exit);
        Assert.Contains("PORTAL_POSTGRES", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, result.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_Sqlite_AppliesThenIsUpToDate()
    {
        var path = NewSqlitePath();
        try
        {
            var first = await RunAsync($"migrate --sqlite {path}");
            Assert.Equal(0, first.Exit);
            Assert.Matches(@"version 0 -> [1-9]\d*$", first.Output.Trim());

            var status = await RunAsync($"migrate --sqlite {path} --status");
            Assert.Equal(0, status.Exit);
            Assert.Matches(@"version (\d+), latest \1$", status.Output.Trim());

            var again = await RunAsync($"migrate --sqlite {path}");
            Assert.EndsWith("(up to date)", again.Output.Trim(), StringComparison.Ordinal);
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    [Theory]
    [InlineData("--status")]
    [InlineData("--check")]
    public async Task StatusOrCheck_MistypedSqlitePath_ExitsTwoAndCreatesNothing(string mode)
    {
        var path = NewSqlitePath();
        try
        {
            var result = await RunAsync($"migrate --sqlite {path} {mode}");

            Assert.Equal(2, result.Exit);
            Assert.Contains("no SQLite database at", result.Error, StringComparison.Ordinal);
            Assert.Equal(string.Empty, result.Output);
            Assert.False(Directory.Exists(Path.GetDirectoryName(path)), "the folder was created");
            Assert.False(File.Exists(path), "the file was created");
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    [Fact]
    public async Task Check_Sqlite_FreshDatabaseIsBehindThenCurrentAfterMigrate()
    {
        var path = NewSqlitePath();
        try
        {
            await CreateUnmigratedDatabaseAsync(path);

            var behind = await RunAsync($"migrate --check --sqlite {path}");
            Assert.Equal(3, behind.Exit);
            Assert.EndsWith($"version 0, latest {SqliteMigration.LatestVersion} ({SqliteMigration.LatestVersion} pending)", behind.Output.Trim(), StringComparison.Ordinal);
            Assert.Contains("pending", behind.Error, StringComparison.Ordinal);

            var status = await RunAsync($"migrate --status --sqlite {path}");
            Assert.Equal(0, status.Exit); // --status reports, only --check gates

            Assert.Equal(0, (await RunAsync($"migrate --sqlite {path}")).Exit);

            var current = await RunAsync($"migrate --check --sqlite {path}");
            Assert.Equal(0, current.Exit);
            Assert.EndsWith($"version {SqliteMigration.LatestVersion}, latest {SqliteMigration.LatestVersion}", current.Output.Trim(), StringComparison.Ordinal);
            Assert.Equal(string.Empty, current.Error);
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    [Theory]
    [InlineData("--check")]
    [InlineData("--status")]
    [InlineData("")]
    public async Task AnyMode_SqliteNewerThanCode_ExitsFour(string mode)
    {
        var path = NewSqlitePath();
        try
        {
            Assert.Equal(0, (await RunAsync($"migrate --sqlite {path}")).Exit);
            await ExecuteSqliteAsync(path, $"INSERT INTO schema_version (version, applied_at, description) VALUES ({SqliteMigration.LatestVersion + 1}, 0, 'from_the_future');");

            var result = await RunAsync($"migrate --sqlite {path} {mode}");

            Assert.Equal(4, result.Exit);
            Assert.Contains("newer", result.Error, StringComparison.Ordinal);
            Assert.Single(result.Error.Trim().Split('\n'));
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    [Fact]
    public async Task Migrate_SqliteFlag_WinsOverPostgresVariables()
    {
        var path = NewSqlitePath();
        try
        {
            var environment = new Dictionary<string, string>
            {
                ["PORTAL_POSTGRES"] = "Host=127.0.0.1;Port=1;Password=" + Secret,
                ["ConnectionStrings__Portal"] = "Host=127.0.0.1;Port=1;Password=" + Secret,
            };

            var result = await RunAsync($"migrate --sqlite {path}", environment);

            Assert.Equal(0, result.Exit);
            Assert.StartsWith($"sqlite '{path}': version 0 -> ", result.Output, StringComparison.Ordinal);
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    [Fact]
    public async Task Migrate_HostDataDirectoryVariable_UsesPortalDbInIt()
    {
        var path = NewSqlitePath();
        try
        {
            var environment = new Dictionary<string, string> { ["Cortensor__Storage__DataDirectory"] = Path.GetDirectoryName(path)! };

            var result = await RunAsync("migrate", environment);

            Assert.Equal(0, result.Exit);
            Assert.StartsWith($"sqlite '{path}' (from Cortensor__Storage__DataDirectory): version 0 -> {SqliteMigration.LatestVersion}", result.Output, StringComparison.Ordinal);
            Assert.True(File.Exists(path));
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    [Theory]
    [InlineData("--status")]
    [InlineData("--check")]
    public async Task StatusOrCheck_MistypedPathHoldingAVariablesPassword_ErrorLineIsMasked(string mode)
    {
        // The "no SQLite database at '…'" line quotes the path: it too goes through the masking, like every line.
        var path = Path.Combine(Path.GetDirectoryName(NewSqlitePath())!, Secret, "portal.db");
        try
        {
            var result = await RunAsync($"migrate --sqlite {path} {mode}", new Dictionary<string, string> { ["PORTAL_POSTGRES"] = ConnectionWithPassword });

            Assert.Equal(2, result.Exit);
            Assert.Contains("no SQLite database at", result.Error, StringComparison.Ordinal);
            Assert.Contains($"{Path.DirectorySeparatorChar}***{Path.DirectorySeparatorChar}portal.db", result.Error, StringComparison.Ordinal);
            Assert.DoesNotContain(Secret, result.All, StringComparison.Ordinal);
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    [Fact]
    public async Task Migrate_NoDatabaseGiven_IsAUsageErrorNamingTheVariables()
    {
        var result = await RunAsync("migrate");

        Assert.Equal(1, result.Exit);
        Assert.Contains("--postgres or --sqlite", result.Error, StringComparison.Ordinal);
        Assert.Contains("PORTAL_POSTGRES", result.Error, StringComparison.Ordinal);
        Assert.Contains("ConnectionStrings__Portal", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("migrate --sqlite a.db --postgres Host=x", "only one of --postgres or --sqlite")]
    [InlineData("migrate --sqlite a.db --status --check", "only one of --status or --check")]
    public async Task Migrate_ConflictingOptions_IsAUsageError(string args, string message)
    {
        var result = await RunAsync(args);

        Assert.Equal(1, result.Exit);
        Assert.Contains(message, result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_ConnectionStringGivenAsSqlitePath_IsAUsageErrorWithoutThePassword()
    {
        var result = await RunAsync($"migrate --sqlite \"{ConnectionWithPassword}\"");

        Assert.Equal(1, result.Exit);
        Assert.Contains("not a connection string", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, result.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_UnexpectedSqliteError_OneLineAndStackTraceOnlyWhenVerbose()
    {
        var path = NewSqlitePath();
        try
        {
            // A schema_version table the migrator cannot read: a SQL error no store translates.
            await ExecuteSqliteAsync(path, "CREATE TABLE schema_version (something_else INTEGER);");

            var plain = await RunAsync($"migrate --status --sqlite {path}");
            Assert.Equal(2, plain.Exit);
            Assert.Single(plain.Error.Trim().Split('\n'));
            Assert.StartsWith("migrate failed: SqliteException: ", plain.Error, StringComparison.Ordinal);
            Assert.Contains("(--verbose shows details)", plain.Error, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", plain.Error, StringComparison.Ordinal);

            var verbose = await RunAsync($"migrate --status --verbose --sqlite {path}");
            Assert.Equal(2, verbose.Exit);
            Assert.Contains("   at ", verbose.Error, StringComparison.Ordinal);
        }
        finally
        {
            DeleteSqliteFolder(path);
        }
    }

    private static async Task CreateUnmigratedDatabaseAsync(string path)
    {
        // An existing database the Portal never migrated: it has a table, but no schema_version.
        await ExecuteSqliteAsync(path, "CREATE TABLE unrelated (x INTEGER);");
    }

    private static async Task ExecuteSqliteAsync(string path, string sql)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
