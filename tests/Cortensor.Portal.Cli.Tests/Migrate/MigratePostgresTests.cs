using System.Text.RegularExpressions;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Tests.Postgres;
using Npgsql;
using static Cortensor.Portal.Cli.Tests.Migrate.MigrateCli;

namespace Cortensor.Portal.Cli.Tests.Migrate;

/// <summary>
/// <c>migrate</c> against a real Postgres: <c>PG_CONNECTION</c> when set, else a throwaway server
/// (<see cref="LocalPostgresServer"/>). Each test works in its own schema and drops it.
/// </summary>
public sealed class MigratePostgresTests
{
    private const string Secret = "hunter2-secret";

    private static string Connection
    {
        get
        {
            var configured = Environment.GetEnvironmentVariable("PG_CONNECTION");
            return string.IsNullOrWhiteSpace(configured) ? LocalPostgresServer.ConnectionString : configured;
        }
    }

    [Fact]
    public async Task Check_PortalPostgresVariable_FreshSchemaIsBehindThenCurrentAfterMigrate()
    {
        var schema = NewSchema();
        var environment = new Dictionary<string, string> { ["PORTAL_POSTGRES"] = Connection };
        try
        {
            var behind = await RunAsync($"migrate --check --schema {schema}", environment);
            Assert.Equal(3, behind.Exit);
            Assert.Matches($@"^postgres \S+ schema '{schema}' \(from PORTAL_POSTGRES\): version 0, latest {PostgresMigrator.LatestVersion} \({PostgresMigrator.LatestVersion} pending\)$", behind.Output.Trim());
            Assert.False(await SchemaExistsAsync(schema), "--check created the schema");

            var migrated = await RunAsync($"migrate --schema {schema}", environment);
            Assert.True(migrated.Exit == 0, migrated.All);
            Assert.EndsWith($"version 0 -> {PostgresMigrator.LatestVersion} (applied {string.Join(", ", Enumerable.Range(1, PostgresMigrator.LatestVersion))})", migrated.Output.Trim(), StringComparison.Ordinal);

            var current = await RunAsync($"migrate --check --schema {schema}", environment);
            Assert.Equal(0, current.Exit);
            Assert.EndsWith($"version {PostgresMigrator.LatestVersion}, latest {PostgresMigrator.LatestVersion}", current.Output.Trim(), StringComparison.Ordinal);
        }
        finally
        {
            await DropSchemaAsync(schema);
        }
    }

    [Fact]
    public async Task Migrate_HostVariables_ConnectionStringsPortalAndSchema()
    {
        var schema = NewSchema();
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__Portal"] = Connection,
            ["Cortensor__Storage__Postgres__Schema"] = schema,
        };
        try
        {
            var result = await RunAsync("migrate", environment);

            Assert.True(result.Exit == 0, result.All);
            Assert.Contains($"schema '{schema}' (from ConnectionStrings__Portal): version 0 -> {PostgresMigrator.LatestVersion}", result.Output, StringComparison.Ordinal);
            Assert.Equal(PostgresMigrator.LatestVersion, await ReadVersionAsync(schema));
        }
        finally
        {
            await DropSchemaAsync(schema);
        }
    }

    [Fact]
    public async Task Migrate_PortalPostgresVariable_WinsOverConnectionStringsPortal()
    {
        var schema = NewSchema();
        var environment = new Dictionary<string, string>
        {
            ["PORTAL_POSTGRES"] = Connection,
            ["ConnectionStrings__Portal"] = "Host=127.0.0.1;Port=1;Timeout=2;Password=" + Secret,
        };
        try
        {
            var result = await RunAsync($"migrate --status --schema {schema}", environment);

            Assert.True(result.Exit == 0, result.All);
            Assert.Contains("(from PORTAL_POSTGRES)", result.Output, StringComparison.Ordinal);
        }
        finally
        {
            await DropSchemaAsync(schema);
        }
    }

    [Fact]
    public async Task Migrate_PostgresFlag_WinsOverVariables()
    {
        var schema = NewSchema();
        var environment = new Dictionary<string, string>
        {
            ["PORTAL_POSTGRES"] = "Host=127.0.0.1;Port=1;Timeout=2;Password=" + Secret,
            ["Cortensor__Storage__Postgres__Schema"] = "not_this_one",
        };
        try
        {
            var result = await RunAsync($"migrate --status --postgres \"{Connection}\" --schema {schema}", environment);

            Assert.True(result.Exit == 0, result.All);
            Assert.Contains($"schema '{schema}': version 0", result.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("(from", result.Output, StringComparison.Ordinal);
        }
        finally
        {
            await DropSchemaAsync(schema);
        }
    }

    [Fact]
    public async Task Status_InAProcessWithPortalPostgresSet_UsesIt()
    {
        // The reported bug, end to end: PORTAL_POSTGRES=… cortensor-portal migrate --status.
        var schema = NewSchema();
        try
        {
            var result = await RunProcessAsync(
                new Dictionary<string, string> { ["PORTAL_POSTGRES"] = Connection, ["Cortensor__Storage__Postgres__Schema"] = schema },
                "migrate",
                "--status");

            Assert.True(result.Exit == 0, result.All);
            Assert.Contains($"schema '{schema}' (from PORTAL_POSTGRES): version 0, latest {PostgresMigrator.LatestVersion}", result.Output, StringComparison.Ordinal);
        }
        finally
        {
            await DropSchemaAsync(schema);
        }
    }

    [Theory]
    [InlineData("--check")]
    [InlineData("--status")]
    [InlineData("")]
    public async Task AnyMode_SchemaNewerThanCode_ExitsFour(string mode)
    {
        var schema = NewSchema();
        try
        {
            Assert.Equal(0, (await RunAsync($"migrate --postgres \"{Connection}\" --schema {schema}")).Exit);
            await ExecuteAsync($"INSERT INTO \"{schema}\".schema_version (version, applied_at, description) VALUES ({PostgresMigrator.LatestVersion + 1}, now(), 'from_the_future')");

            var result = await RunAsync($"migrate --postgres \"{Connection}\" --schema {schema} {mode}");

            Assert.Equal(4, result.Exit);
            Assert.Contains("newer", result.Error, StringComparison.Ordinal);
            Assert.Single(result.Error.Trim().Split('\n'));
            Assert.Equal(PostgresMigrator.LatestVersion + 1, await ReadVersionAsync(schema)); // nothing changed
        }
        finally
        {
            await DropSchemaAsync(schema);
        }
    }

    [Fact]
    public async Task Status_DatabaseDoesNotExist_ClearErrorWithoutPasswordAndNothingCreated()
    {
        var database = "cli_missing_" + Guid.NewGuid().ToString("N")[..8];
        var connection = new NpgsqlConnectionStringBuilder(Connection) { Database = database, Password = Secret }.ConnectionString;

        var result = await RunAsync($"migrate --status --postgres \"{connection}\"");

        Assert.Equal(2, result.Exit);
        Assert.Single(result.Error.Trim().Split('\n'));
        Assert.Contains($"Database '{database}' does not exist", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, result.All, StringComparison.Ordinal);
        Assert.Equal(0L, await ScalarAsync<long>($"SELECT count(*) FROM pg_database WHERE datname = '{database}'"));
    }

    [Fact]
    public async Task Migrate_LoginRefused_OneLineWithoutPassword()
    {
        // The throwaway server trusts every login, so refuse one the way any server can: a role without LOGIN.
        var role = "cli_nologin_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync($"CREATE ROLE {role} NOLOGIN PASSWORD '{Secret}'");
        try
        {
            var connection = new NpgsqlConnectionStringBuilder(Connection) { Username = role, Password = Secret }.ConnectionString;

            var result = await RunAsync($"migrate --postgres \"{connection}\"");

            Assert.Equal(2, result.Exit);
            Assert.Single(result.Error.Trim().Split('\n'));
            Assert.StartsWith("migrate failed: ", result.Error, StringComparison.Ordinal);
            Assert.Contains(role, result.Error, StringComparison.Ordinal);
            Assert.DoesNotContain(Secret, result.All, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", result.Error, StringComparison.Ordinal);
        }
        finally
        {
            await ExecuteAsync($"DROP ROLE IF EXISTS {role}");
        }
    }

    [Fact]
    public async Task Migrate_UnreachablePostgres_ExitsTwoWithoutPassword()
    {
        var result = await RunAsync($"migrate --postgres \"Host=127.0.0.1;Port=1;Username=u;Password={Secret};Timeout=2\" --verbose");

        Assert.Equal(2, result.Exit);
        Assert.StartsWith("migrate failed: Cannot reach Postgres at 127.0.0.1:1", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, result.All, StringComparison.Ordinal); // not even in the --verbose details
    }

    [Fact]
    public async Task Migrate_TwoProcessesAtOnce_BothSucceedAndEachVersionIsAppliedOnce()
    {
        var schema = NewSchema();
        try
        {
            var runs = Enumerable.Range(0, 2).Select(_ => RunProcessAsync(null, "migrate", "--postgres", Connection, "--schema", schema)).ToArray();
            var results = await Task.WhenAll(runs);

            Assert.All(results, r => Assert.True(r.Exit == 0, r.All));
            Assert.Equal(0L, await ScalarAsync<long>($"SELECT count(*) - count(DISTINCT version) FROM \"{schema}\".schema_version")); // no version applied twice
            Assert.Equal(PostgresMigrator.LatestVersion, await ReadVersionAsync(schema));

            // Between them the two processes applied every version exactly once (either may apply any of them).
            var applied = results
                .Select(r => Regex.Match(r.Output, @"\(applied ([\d, ]+)\)"))
                .Where(m => m.Success)
                .SelectMany(m => m.Groups[1].Value.Split(", ").Select(int.Parse))
                .Order()
                .ToList();
            Assert.Equal(Enumerable.Range(1, PostgresMigrator.LatestVersion), applied);
        }
        finally
        {
            await DropSchemaAsync(schema);
        }
    }

    private static string NewSchema() => "cli_" + Guid.NewGuid().ToString("N")[..8];

    private static async Task<bool> SchemaExistsAsync(string schema) =>
        await ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{schema}')");

    private static async Task<int> ReadVersionAsync(string schema) =>
        await ScalarAsync<int>($"SELECT max(version) FROM \"{schema}\".schema_version");

    private static Task DropSchemaAsync(string schema) => ExecuteAsync($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");

    private static async Task ExecuteAsync(string sql)
    {
        await using var dataSource = NpgsqlDataSource.Create(Connection);
        await using var command = dataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(string sql)
    {
        await using var dataSource = NpgsqlDataSource.Create(Connection);
        await using var command = dataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
