using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Cortensor.Portal.Benchmarks.Enforcement;
using Cortensor.Portal.Benchmarks.Load;
using Cortensor.Portal.Fleet.Simulator;

namespace Cortensor.Portal.Benchmarks.Journal;

/// <summary>
/// The hot-path cost of the write-ahead usage journal: two gateways built alike (in-process enforcement, SQLite store
/// and its usage sink, as the host), one with <c>JournalEnabled</c> on (the default) and one with it off, driven
/// back to back in interleaved rounds (on, off, on, off, …) at the same open-loop rate, in one process.
/// </summary>
internal static class JournalBenchmark
{
    public const string Usage =
        "journal [--rate 500] [--seconds 10] [--warmup 3] [--rounds 3] [--jit-warmup 8] [--max-tokens 8] [--commit-interval-ms 5]";

    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(string[] args, string commandLine)
    {
        var rate = Option(args, "--rate", 500);
        var seconds = Option(args, "--seconds", 10);
        var warmup = Option(args, "--warmup", 3);
        var rounds = Option(args, "--rounds", 3);
        var jitWarmup = Option(args, "--jit-warmup", 8);
        var maxTokens = Option(args, "--max-tokens", 8);
        var commitIntervalMs = Option(args, "--commit-interval-ms", 5);

        Console.WriteLine($"Machine: {Environment.ProcessorCount} logical cores, {Environment.OSVersion}, .NET {Environment.Version}; load average {LoadAverage()}");
        var upstreamKey = "sim_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        await using var upstream = await RouterSimulatorServer.StartAsync(new RouterSimulatorOptions { ApiKey = upstreamKey });

        using var journalMetrics = new JournalMeter();
        var variants = new List<(string Label, GatewayVariant Gateway)>();
        try
        {
            foreach (var (label, enabled) in new[] { ("journal on", "true"), ("journal off", "false") })
            {
                var gateway = await GatewayVariant.StartAsync(new GatewaySetup(VariantKind.InProcess, [new GatewayModel(GatewayVariant.Model, upstream.BaseUrl)], upstreamKey)
                {
                    RealUsageSink = true,
                    ExtraSettings = new Dictionary<string, string?>
                    {
                        ["Cortensor:Usage:JournalEnabled"] = enabled,
                        ["Cortensor:Usage:JournalCommitInterval"] = TimeSpan.FromMilliseconds(commitIntervalMs).ToString("c", CultureInfo.InvariantCulture),
                    },
                });
                variants.Add((label, gateway));
            }

            using var client = new HttpClient(OpenLoopLoadGenerator.CreateHandler(512)) { Timeout = TimeSpan.FromSeconds(20) };
            var body = Encoding.UTF8.GetBytes(
                $$"""{"model":"{{GatewayVariant.Model}}","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":{{maxTokens}}}""");

            if (jitWarmup > 0)
            {
                foreach (var (_, gateway) in variants)
                {
                    await Generator(client, gateway, body).RunAsync(rate, TimeSpan.FromSeconds(jitWarmup), DrainTimeout);
                }
            }

            var latencies = variants.ToDictionary(v => v.Label, _ => new List<long>());
            var cpu = variants.ToDictionary(v => v.Label, _ => (Cpu: TimeSpan.Zero, Requests: 0L, NotOk: 0L));
            journalMetrics.Reset();
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var (label, gateway) in variants)
                {
                    var generator = Generator(client, gateway, body);
                    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                    if (warmup > 0)
                    {
                        await generator.RunAsync(rate, TimeSpan.FromSeconds(warmup), DrainTimeout);
                    }

                    var cpuBefore = ProcessCpu();
                    var result = await generator.RunAsync(rate, TimeSpan.FromSeconds(seconds), DrainTimeout);
                    await Task.Delay(250);
                    var used = ProcessCpu() - cpuBefore;
                    latencies[label].AddRange(result.AnsweredLatencies);
                    var c = cpu[label];
                    cpu[label] = (c.Cpu + used, c.Requests + result.Requests, c.NotOk + result.NotOk);
                    var d = new LatencyDistribution(result.AnsweredLatencies);
                    Console.WriteLine(
                        $"  round {round} {label}: {result.Requests:N0} requests, {result.AchievedRate:N0} req/s, p50 {d.Milliseconds(0.5):F3} ms, " +
                        $"p99 {d.Milliseconds(0.99):F3} ms, non-200 {result.NotOk}, CPU {used.TotalMicroseconds / result.Requests:F0} µs/req");
                }
            }

            Report(commandLine, rate, seconds, warmup, rounds, latencies, cpu, journalMetrics);
            return cpu.Values.Any(static c => c.NotOk > 0) ? 1 : 0;
        }
        finally
        {
            foreach (var (_, gateway) in variants)
            {
                await gateway.DisposeAsync();
            }
        }
    }

    private static void Report(
        string commandLine,
        int rate,
        int seconds,
        int warmup,
        int rounds,
        Dictionary<string, List<long>> latencies,
        Dictionary<string, (TimeSpan Cpu, long Requests, long NotOk)> cpu,
        JournalMeter journal)
    {
        var on = new LatencyDistribution(latencies["journal on"]);
        var off = new LatencyDistribution(latencies["journal off"]);
        double CpuPerRequest(string label) => cpu[label].Cpu.TotalMicroseconds / Math.Max(1, cpu[label].Requests);
        Console.WriteLine();
        Console.WriteLine($"`{commandLine}` ({rate} req/s open loop, {rounds} interleaved rounds of {warmup} s warm-up + {seconds} s measured per variant; load average {LoadAverage()})");
        Console.WriteLine();
        Console.WriteLine("| variant | requests | non-200 | p50 ms | p90 ms | p99 ms | max ms | CPU µs/req |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (label, d) in new[] { ("journal off", off), ("journal on", on) })
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {label} | {cpu[label].Requests:N0} | {cpu[label].NotOk} | {d.Milliseconds(0.5):F3} | {d.Milliseconds(0.9):F3} | {d.Milliseconds(0.99):F3} | {d.Milliseconds(1):F1} | {CpuPerRequest(label):F0} |"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| **on / off** | | | {on.Milliseconds(0.5) / off.Milliseconds(0.5):F2}x | {on.Milliseconds(0.9) / off.Milliseconds(0.9):F2}x | {on.Milliseconds(0.99) / off.Milliseconds(0.99):F2}x | | {CpuPerRequest("journal on") / CpuPerRequest("journal off"):F2}x |"));
        Console.WriteLine();
        var requests = Math.Max(1, cpu["journal on"].Requests);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Journal (on variant, measured phases): {journal.Commits:N0} group commits (fsync), {journal.Bytes / (double)requests:F0} bytes/request, " +
            $"{journal.Bytes / Math.Max(1, journal.Commits):F0} bytes/commit, commit p50 {journal.Percentile(0.5):F3} ms, p99 {journal.Percentile(0.99):F3} ms, max {journal.Percentile(1):F3} ms."));
    }

    private static OpenLoopLoadGenerator Generator(HttpClient client, GatewayVariant gateway, byte[] body)
    {
        var authorization = new AuthenticationHeaderValue("Bearer", gateway.ApiKey);
        var json = new MediaTypeHeaderValue("application/json");
        return new OpenLoopLoadGenerator(client, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, gateway.ChatCompletions) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = json;
            request.Headers.Authorization = authorization;
            return request;
        });
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length
            ? int.Parse(args[index + 1], NumberStyles.None, CultureInfo.InvariantCulture)
            : fallback;
    }

    private static TimeSpan ProcessCpu()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    /// <summary>Listens to the journal's commit instruments (only the "on" gateway has them).</summary>
    private sealed class JournalMeter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly List<double> _commitSeconds = [];
        private long _bytes;

        public JournalMeter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name is "cortensor.metering.journal.committed" or "cortensor.metering.journal.commit.duration")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _bytes, value));
            _listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
            {
                lock (_commitSeconds)
                {
                    _commitSeconds.Add(value);
                }
            });
            _listener.Start();
        }

        public long Bytes => Interlocked.Read(ref _bytes);

        public long Commits
        {
            get
            {
                lock (_commitSeconds)
                {
                    return _commitSeconds.Count;
                }
            }
        }

        public void Reset()
        {
            Interlocked.Exchange(ref _bytes, 0);
            lock (_commitSeconds)
            {
                _commitSeconds.Clear();
            }
        }

        public double Percentile(double p)
        {
            lock (_commitSeconds)
            {
                if (_commitSeconds.Count == 0)
                {
                    return double.NaN;
                }

                var sorted = _commitSeconds.Order().ToArray();
                return sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(p * sorted.Length) - 1 < 0 ? 0 : Math.Ceiling(p * sorted.Length) - 1)] * 1000;
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
