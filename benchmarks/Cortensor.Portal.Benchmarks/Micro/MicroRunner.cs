using System.Diagnostics;
using System.Text;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Cortensor.Portal.Benchmarks.Micro;

/// <summary>
/// <c>micro [--quick] [--filter pattern] [--artifacts folder]</c>: BenchmarkDotNet over <see cref="KeyBenchmarks"/>,
/// <see cref="PromptBenchmarks"/>, <see cref="SseBenchmarks"/> and <see cref="RateLimitBenchmarks"/>, in process (no
/// generated project to build), GitHub-Markdown reports in <c>benchmarks/BenchmarkDotNet.Artifacts/results</c>.
/// Other BenchmarkDotNet options pass through.
/// </summary>
internal static class MicroRunner
{
    public const string Usage = "usage: micro [--quick] [--filter *Key*] [--artifacts folder] [BenchmarkDotNet options]";

    private static readonly Type[] Types = [typeof(KeyBenchmarks), typeof(PromptBenchmarks), typeof(SseBenchmarks), typeof(RateLimitBenchmarks)];

    public static int Run(string[] args)
    {
        var quick = args.Contains("--quick");
        var artifacts = Path.Combine(Suite.SuiteBenchmark.RepoRoot(), "benchmarks", "BenchmarkDotNet.Artifacts");
        var passed = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--quick")
            {
                continue;
            }

            if (args[i] == "--artifacts" && i + 1 < args.Length)
            {
                artifacts = args[++i];
                continue;
            }

            passed.Add(args[i]);
        }

        if (!passed.Contains("--filter"))
        {
            passed.AddRange(["--filter", "*"]);
        }

        var job = (quick
                ? Job.Default.WithWarmupCount(2).WithIterationCount(5).WithIterationTime(TimeInterval.FromMilliseconds(100))
                : Job.Default.WithWarmupCount(4).WithIterationCount(15).WithIterationTime(TimeInterval.FromMilliseconds(250)))
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithId(quick ? "quick" : "suite");
        var config = ManualConfig.Create(DefaultConfig.Instance)
            .AddJob(job)
            .WithArtifactsPath(artifacts)
            .WithOptions(ConfigOptions.DisableLogFile);
        var summaries = BenchmarkSwitcher.FromTypes(Types).Run([.. passed], config);
        return summaries.Any(static s => s.HasCriticalValidationErrors || s.Reports.Any(static r => !r.Success)) ? 1 : 0;
    }

    /// <summary>Runs <c>micro</c> in a child process (after the load runs, on a quiet machine) and returns its Markdown tables.</summary>
    public static async Task<string> RunChildAsync(bool quick, string logs)
    {
        var artifacts = Path.Combine(logs, "bdn");
        var path = Environment.ProcessPath!;
        var start = new ProcessStartInfo(path) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(path).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        }

        start.ArgumentList.Add("micro");
        if (quick)
        {
            start.ArgumentList.Add("--quick");
        }

        start.ArgumentList.Add("--artifacts");
        start.ArgumentList.Add(artifacts);
        Console.WriteLine($"Micro benchmarks (BenchmarkDotNet, {(quick ? "quick" : "full")} job) …");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        await File.WriteAllTextAsync(Path.Combine(logs, "micro.log"), await output + await error);

        var results = Path.Combine(artifacts, "results");
        if (!Directory.Exists(results))
        {
            return $"BenchmarkDotNet wrote no results (exit {process.ExitCode}); see {Path.Combine(logs, "micro.log")}.";
        }

        var text = new StringBuilder();
        var first = true;
        foreach (var file in Directory.GetFiles(results, "*-report-github.md").Order(StringComparer.Ordinal))
        {
            var lines = await File.ReadAllLinesAsync(file);
            if (first)
            {
                // The environment block (between the first two fences), once.
                var environment = lines.SkipWhile(static l => !l.StartsWith("```", StringComparison.Ordinal)).Skip(1).TakeWhile(static l => !l.StartsWith("```", StringComparison.Ordinal));
                text.AppendLine("```").AppendLine(string.Join('\n', environment).Trim()).AppendLine("```").AppendLine();
                first = false;
            }

            text.AppendLine("**" + Path.GetFileName(file).Replace("Cortensor.Portal.Benchmarks.Micro.", "", StringComparison.Ordinal).Replace("-report-github.md", "", StringComparison.Ordinal) + "**").AppendLine();
            foreach (var line in lines.Where(static l => l.StartsWith('|')))
            {
                text.AppendLine(line.Replace("&#39;", "", StringComparison.Ordinal));
            }

            text.AppendLine();
        }

        return text.ToString();
    }
}
