using System.CommandLine;
using System.Diagnostics;
using Cortensor.Portal.Storage.Tests.Postgres;
using Npgsql;

namespace Cortensor.Portal.Cli.Tests;

public sealed class MigrateCommandTests
{
    private static async Task<(int Exit, string Output, string Error)> RunAsync(string args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await CliApplication.BuildRootCommand().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Migrate_Sqlite_AppliesThenIsUpToDate()
    {
        var path = Path.Combine(Path.GetTempPath(), "cportal-cli-" + Guid.NewGuid().ToString("N")[..8] + ".db");
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
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var file in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(path) + "*"))
            {
                File.Delete(file);
            }
        }
    }

    [Theory]
    [InlineData("migrate")]
    [InlineData("migrate --sqlite a.db --postgres Host=x")]
    public async Task Migrate_NeitherOrBothTargets_IsAUsageError(string args)
    {
        Environment.SetEnvironmentVariable("PORTAL_POSTGRES", null);

        var result = await RunAsync(args);

        Assert.Equal(1, result.Exit);
        Assert.Contains("exactly one of --postgres or --sqlite", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_UnreachablePostgres_ExitsTwoWithoutPassword()
    {
        var result = await RunAsync("migrate --postgres \"Host=127.0.0.1;Port=1;Username=u;Password=hunter2-secret;Timeout=2\"");

        Assert.Equal(2, result.Exit);
        Assert.StartsWith("migrate failed:", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", result.Error + result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_TwoProcessesAtOnce_BothSucceedAndEachVersionIsAppliedOnce()
    {
        var configured = Environment.GetEnvironmentVariable("PG_CONNECTION");
        var connection = string.IsNullOrWhiteSpace(configured) ? LocalPostgresServer.ConnectionString : configured;
        var schema = "cli_" + Guid.NewGuid().ToString("N")[..8];
        var cli = typeof(CliApplication).Assembly.Location;
        try
        {
            var runs = Enumerable.Range(0, 2).Select(_ => RunProcessAsync(cli, "migrate", "--postgres", connection, "--schema", schema)).ToArray();
            var results = await Task.WhenAll(runs);

            Assert.All(results, r => Assert.True(r.Exit == 0, r.Output));
            await using var dataSource = NpgsqlDataSource.Create(connection);
            await using var command = dataSource.CreateCommand($"SELECT count(*), count(DISTINCT version), max(version) FROM \"{schema}\".schema_version");
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(reader.GetInt64(0), reader.GetInt64(1)); // no version applied twice
            Assert.Equal(Storage.Postgres.Migrations.PostgresMigrator.LatestVersion, reader.GetInt32(2));
            // Between them the two processes applied every version exactly once (either may apply any of them).
            var applied = results
                .Select(r => System.Text.RegularExpressions.Regex.Match(r.Output, @"\(applied ([\d, ]+)\)"))
                .Where(m => m.Success)
                .SelectMany(m => m.Groups[1].Value.Split(", ").Select(int.Parse))
                .Order()
                .ToList();
            Assert.Equal(Enumerable.Range(1, Storage.Postgres.Migrations.PostgresMigrator.LatestVersion), applied);
        }
        finally
        {
            await using var dataSource = NpgsqlDataSource.Create(connection);
            await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            await drop.ExecuteNonQueryAsync();
        }
    }

    private static async Task<(int Exit, string Output)> RunProcessAsync(string dll, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
