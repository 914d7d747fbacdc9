using System.Globalization;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>Command-line options of <c>suite</c>.</summary>
internal sealed record SuiteSettings
{
    /// <summary>The suite's default <see cref="UnkeyLatencyMs"/>.</summary>
    public const int DefaultUnkeyLatencyMs = 8;

    public bool Quick { get; init; }

    /// <summary>Fixed open-loop rates, req/s.</summary>
    public IReadOnlyList<int> Rates { get; init; } = [500, 1000, 2000];

    public int Seconds { get; init; } = 10;

    public int WarmupSeconds { get; init; } = 3;

    public int JitWarmupSeconds { get; init; } = 8;

    public int SaturationSeconds { get; init; } = 10;

    /// <summary>Closed-loop workers of the saturation runs.</summary>
    public int Workers { get; init; } = 64;

    /// <summary>
    /// More interleaved rounds of the goal rows at the goal rate (<see cref="SuiteBenchmark.GoalRate"/>), after the
    /// fixed-rate tables, so the latency verdicts rest on a median rather than on one run; 0 = none.
    /// </summary>
    public int Repeats { get; init; } = 3;

    public int StreamRate { get; init; } = 200;

    public int StreamSeconds { get; init; } = 10;

    /// <summary>Concurrent slow streams held open through the gateway; 0 = skip.</summary>
    public int Streams { get; init; } = 10_000;

    public int HoldSeconds { get; init; } = 20;

    /// <summary>Row ids to run (baselines always run); empty = all.</summary>
    public IReadOnlySet<string> Only { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    public bool NoPortkey { get; init; }

    public bool NoPostgres { get; init; }

    public bool NoMicro { get; init; }

    /// <summary>
    /// Milliseconds the Unkey stub waits before every verifyKey answer: a hosted Unkey in the same region (Unkey's stated
    /// target is a sub-10 ms service time).
    /// </summary>
    public int UnkeyLatencyMs { get; init; } = DefaultUnkeyLatencyMs;

    /// <summary>Where the report goes; default BENCHMARKS.md at the repository root.</summary>
    public string? Output { get; init; }

    /// <summary>
    /// Extra environment variables for every gateway process (<c>--gateway-env NAME=VALUE</c>, repeatable), e.g. a GC or
    /// thread-pool setting to try; they override the suite's own (<c>DOTNET_gcServer=1</c>) and are listed in the report.
    /// </summary>
    public IReadOnlyDictionary<string, string> GatewayEnvironment { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>A folder for one CSV per fixed-rate row (<c>{row}-{rate}.csv</c>, columns as in <see cref="Load.LatencyCsv.Header"/>); null = none.</summary>
    public string? LatencyCsvDirectory { get; init; }

    public static SuiteSettings Parse(ReadOnlySpan<string> args)
    {
        var settings = new SuiteSettings();
        if (args.Contains("--quick"))
        {
            settings = settings with
            {
                Quick = true,
                Seconds = 3,
                WarmupSeconds = 1,
                JitWarmupSeconds = 3,
                SaturationSeconds = 3,
                Repeats = 0,
                StreamRate = 100,
                StreamSeconds = 3,
                HoldSeconds = 10,
            };
        }

        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            switch (name)
            {
                case "--quick":
                    continue;
                case "--no-portkey":
                    settings = settings with { NoPortkey = true };
                    continue;
                case "--no-postgres":
                    settings = settings with { NoPostgres = true };
                    continue;
                case "--no-micro":
                    settings = settings with { NoMicro = true };
                    continue;
            }

            if (i + 1 >= args.Length)
            {
                throw new FormatException($"{name} needs a value.");
            }

            var value = args[++i];
            settings = name switch
            {
                "--rates" => settings with { Rates = [.. value.Split(',').Select(v => Int(name, v, 1))] },
                "--seconds" => settings with { Seconds = Int(name, value, 1) },
                "--warmup" => settings with { WarmupSeconds = Int(name, value, 0) },
                "--jit-warmup" => settings with { JitWarmupSeconds = Int(name, value, 0) },
                "--saturation-seconds" => settings with { SaturationSeconds = Int(name, value, 0) },
                "--workers" => settings with { Workers = Int(name, value, 1) },
                "--repeats" => settings with { Repeats = Int(name, value, 0) },
                "--stream-rate" => settings with { StreamRate = Int(name, value, 1) },
                "--stream-seconds" => settings with { StreamSeconds = Int(name, value, 0) },
                "--streams" => settings with { Streams = Int(name, value, 0) },
                "--hold" => settings with { HoldSeconds = Int(name, value, 1) },
                "--only" => settings with { Only = value.Split(',').ToHashSet(StringComparer.Ordinal) },
                "--output" => settings with { Output = value },
                "--unkey-latency-ms" => settings with { UnkeyLatencyMs = Int(name, value, 0) },
                "--gateway-env" => settings with { GatewayEnvironment = WithVariable(settings.GatewayEnvironment, value) },
                "--latency-csv" => settings with { LatencyCsvDirectory = value },
                _ => throw new FormatException($"Unknown option: {name}"),
            };
        }

        return settings;
    }

    private static Dictionary<string, string> WithVariable(IReadOnlyDictionary<string, string> current, string assignment)
    {
        var at = assignment.IndexOf('=', StringComparison.Ordinal);
        if (at <= 0)
        {
            throw new FormatException($"--gateway-env takes NAME=VALUE, not '{assignment}'.");
        }

        return new Dictionary<string, string>(current, StringComparer.Ordinal) { [assignment[..at]] = assignment[(at + 1)..] };
    }

    private static int Int(string name, string value, int min) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min ? n : throw new FormatException($"{name} must be an integer ≥ {min}.");
}
