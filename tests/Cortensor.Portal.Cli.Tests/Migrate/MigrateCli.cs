using System.CommandLine;
using System.Diagnostics;

namespace Cortensor.Portal.Cli.Tests.Migrate;

/// <summary>Runs <c>cortensor-portal</c> in-process (with its own environment) or as a real process.</summary>
internal static class MigrateCli
{
    /// <summary>Every variable migrate reads; a child process gets none of them from the test run's environment.</summary>
    public static readonly string[] Variables =
    [
        "PORTAL_POSTGRES",
        "ConnectionStrings__Portal",
        "Cortensor__Storage__Postgres__Schema",
        "Cortensor__Storage__DataDirectory",
    ];

    public sealed record Result(int Exit, string Output, string Error)
    {
        public string All => Output + Error;
    }

    /// <summary>In-process; <paramref name="environment"/> replaces the process's variables (so tests can run in parallel).</summary>
    public static async Task<Result> RunAsync(string args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var root = CliApplication.BuildRootCommand(name => environment?.GetValueOrDefault(name));
        var exit = await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return new Result(exit, output.ToString(), error.ToString());
    }

    /// <summary>As a process (<c>dotnet Cortensor.Portal.Cli.dll …</c>), with real environment variables.</summary>
    public static async Task<Result> RunProcessAsync(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(typeof(CliApplication).Assembly.Location);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var name in Variables)
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>A path for a SQLite file in a fresh temp folder (the folder is not created).</summary>
    public static string NewSqlitePath() =>
        Path.Combine(Path.GetTempPath(), "cportal-cli-" + Guid.NewGuid().ToString("N")[..8], "portal.db");

    /// <summary>Deletes the folder of <paramref name="sqlitePath"/> and everything in it.</summary>
    public static void DeleteSqliteFolder(string sqlitePath)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var folder = Path.GetDirectoryName(sqlitePath)!;
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
