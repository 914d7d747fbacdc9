using System.Globalization;

namespace Cortensor.Portal.Benchmarks.Enforcement;

/// <summary>Command-line options of <c>enforcement</c>.</summary>
internal sealed record EnforcementSettings
{
    /// <summary>Offered load, requests per second (open loop).</summary>
    public int Rate { get; init; } = 500;

    /// <summary>Length of each measured phase.</summary>
    public int Seconds { get; init; } = 10;

    /// <summary>Warm-up before each measured phase, at the same rate; not measured.</summary>
    public int WarmupSeconds { get; init; } = 3;

    /// <summary>Before round 1, each variant runs this long (not measured) so tiered JIT has settled.</summary>
    public int JitWarmupSeconds { get; init; } = 10;

    /// <summary>Rounds of a, b, c (interleaved).</summary>
    public int Rounds { get; init; } = 2;

    /// <summary>Most connections the client opens to one gateway.</summary>
    public int Connections { get; init; } = 512;

    /// <summary><c>max_tokens</c> of each request.</summary>
    public int MaxTokens { get; init; } = 8;

    /// <summary>Length of the SLOWLOG sample that splits Redis commands into before/after the router call; 0 = skip.</summary>
    public int TraceSeconds { get; init; } = 1;

    /// <summary>Leave out the Redis variant.</summary>
    public bool NoRedis { get; init; }

    public static EnforcementSettings Parse(ReadOnlySpan<string> args)
    {
        var settings = new EnforcementSettings();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--no-redis")
            {
                settings = settings with { NoRedis = true };
                continue;
            }

            if (i + 1 >= args.Length)
            {
                throw new FormatException($"{name} needs a value.");
            }

            var value = args[++i];
            settings = name switch
            {
                "--rate" => settings with { Rate = Positive(name, value) },
                "--seconds" => settings with { Seconds = Positive(name, value) },
                "--warmup" => settings with { WarmupSeconds = NonNegative(name, value) },
                "--jit-warmup" => settings with { JitWarmupSeconds = NonNegative(name, value) },
                "--rounds" => settings with { Rounds = Positive(name, value) },
                "--connections" => settings with { Connections = Positive(name, value) },
                "--max-tokens" => settings with { MaxTokens = Positive(name, value) },
                "--trace-seconds" => settings with { TraceSeconds = NonNegative(name, value) },
                _ => throw new FormatException($"Unknown option or value: {name} {value}"),
            };
        }

        return settings;
    }

    private static int Positive(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new FormatException($"{name} must be a positive integer.");

    private static int NonNegative(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new FormatException($"{name} must be a non-negative integer.");
}
