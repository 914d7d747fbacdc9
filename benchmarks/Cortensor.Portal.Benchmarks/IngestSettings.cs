using System.Globalization;

namespace Cortensor.Portal.Benchmarks;

/// <summary>Command-line options of <c>ingest</c>.</summary>
internal sealed record IngestSettings
{
    public int Batches { get; init; } = 20;

    public int BatchSize { get; init; } = 5_000;

    public int WarmupBatches { get; init; } = 4;

    /// <summary>Records pushed through <c>UsageWriter</c> per store (after a warm-up of one tenth of it).</summary>
    public int WriterRecords { get; init; } = 100_000;

    /// <summary>Records queued (sink blocked) to measure the queue's memory.</summary>
    public int QueueRecords { get; init; } = 100_000;

    public int ProducerThreads { get; init; } = 2;

    /// <summary><c>all</c>, <c>postgres</c>, <c>sqlite</c> or <c>memory</c>.</summary>
    public string Only { get; init; } = "all";

    /// <summary><c>v7</c>: request ids minted like the gateway's (time-ordered); <c>random</c>: random GUIDs.</summary>
    public string Ids { get; init; } = "v7";

    /// <summary><c>PostgresStorageOptions.UsageWriteConnections</c>; null keeps the store's default.</summary>
    public int? WriteConnections { get; init; }

    /// <summary>Start the throwaway server with fsync etc. off (like the tests) instead of PostgreSQL's durable defaults.</summary>
    public bool UnsafeFastServer { get; init; }

    public bool Runs(string part) => Only == "all" || Only == part;

    public static IngestSettings Parse(ReadOnlySpan<string> args)
    {
        var settings = new IngestSettings();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--unsafe-fast-server")
            {
                settings = settings with { UnsafeFastServer = true };
                continue;
            }

            if (i + 1 >= args.Length)
            {
                throw new FormatException($"{name} needs a value.");
            }

            var value = args[++i];
            settings = name switch
            {
                "--batches" => settings with { Batches = Positive(name, value) },
                "--batch-size" => settings with { BatchSize = Positive(name, value) },
                "--warmup" => settings with { WarmupBatches = NonNegative(name, value) },
                "--writer-records" => settings with { WriterRecords = Positive(name, value) },
                "--queue-records" => settings with { QueueRecords = Positive(name, value) },
                "--producers" => settings with { ProducerThreads = Positive(name, value) },
                "--only" when value is "all" or "postgres" or "sqlite" or "memory" => settings with { Only = value },
                "--ids" when value is "v7" or "random" => settings with { Ids = value },
                "--write-connections" => settings with { WriteConnections = Positive(name, value) },
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
