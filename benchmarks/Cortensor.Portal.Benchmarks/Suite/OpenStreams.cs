using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using Cortensor.Portal.Benchmarks.Load;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>
/// Many slow streams open at once through a fresh gateway process (embedded defaults) in front of a simulator that
/// sends 0.3 tokens/s: the gateway's memory (resident set, GC heap) and CPU while they are all open.
/// </summary>
internal static class OpenStreams
{
    /// <summary>The simulator's answer is at most 19 tokens: at 0.3 tokens/s a stream lasts about a minute (ramp + hold).</summary>
    private const double TokensPerSecond = 0.3;
    private const int RampPerSecond = 500;

    public static async Task<HoldResult> RunAsync(SuiteSettings settings, string logs, string key, Dictionary<string, string> gatewayEnv, List<ChildProcess> children, long fileLimit)
    {
        // Over HTTP/1.1 every stream costs the gateway two sockets (client side and router side). When the open-file
        // limit cannot hold that, clients reach the gateway over HTTP/2 without TLS (up to 100 streams per connection),
        // and only the router side keeps one socket per stream.
        var h2c = (2L * settings.Streams) + 500 > fileLimit;
        var slow = await ChildProcess.ServeAsync("sim-slow", logs, ["sim", "--key", key, "--tps", TokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        children.Add(slow);
        var portal = await ChildProcess.ServeAsync("portal-streams", logs, ["portal", "--kind", "InProcess", "--key", key, "--model", $"bench-slow={slow.BaseUrl}", "--h2c", h2c ? "true" : "false"], gatewayEnv);
        children.Add(portal);

        // Long enough to outlast the ramp and the hold: the simulator echoes the prompt, one word per token.
        var words = string.Join(' ', Enumerable.Range(0, 150).Select(static i => "word" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var body = Encoding.UTF8.GetBytes($$"""{"model":"bench-slow","messages":[{"role":"user","content":"{{words}}"}],"max_tokens":200,"stream":true}""");
        var target = new Target("portal-streams", "Portal embedded → simulator at 0.3 tokens/s", "sim", new Uri(portal.BaseUrl, "v1/chat/completions"), portal.Ready[1], body, portal, slow);
        var factory = SuiteBenchmark.Factory(target);
        var version = h2c ? System.Net.HttpVersion.Version20 : System.Net.HttpVersion.Version11;
        HttpRequestMessage create()
        {
            var request = factory();
            request.Version = version;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            return request;
        }

        var handler = OpenLoopLoadGenerator.CreateHandler(settings.Streams + 100);
        handler.EnableMultipleHttp2Connections = true;
        using var client = new HttpClient(handler)
        {
            Timeout = Timeout.InfiniteTimeSpan,
            DefaultRequestVersion = version,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        var gcUrl = new Uri(portal.BaseUrl, "_bench/gc");

        // Baseline: the gateway after a few streams have gone through it (JIT, pools), none open.
        using (var warm = new CancellationTokenSource(TimeSpan.FromSeconds(3)))
        {
            await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
            {
                try
                {
                    using var request = create();
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, warm.Token);
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(warm.Token));
                    while (await reader.ReadLineAsync(warm.Token) is not null)
                    {
                    }
                }
                catch (OperationCanceledException)
                {
                    // Warm-up streams are cut after 3 s.
                }
            }));
        }

        await Task.Delay(1000);
        var idleGc = await client.GetFromJsonAsync<GcStats>(gcUrl);
        var idleRss = portal.ResidentBytes;

        using var stop = new CancellationTokenSource();
        var opened = 0;
        var open = 0;
        var failed = 0;
        long chunks = 0;
        var errors = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var tasks = new ConcurrentBag<Task>();
        var rampStart = Stopwatch.GetTimestamp();
        Console.WriteLine($"Open streams: {settings.Streams:N0} through the gateway at {RampPerSecond}/s, then held {settings.HoldSeconds} s");
        await SuiteLoad.Schedule(settings.Streams, RampPerSecond, (_, _) => tasks.Add(Task.Run(async () =>
        {
            var counted = false;
            try
            {
                using var request = create();
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, stop.Token);
                if ((int)response.StatusCode != 200)
                {
                    errors.AddOrUpdate("HTTP " + (int)response.StatusCode, 1, static (_, n) => n + 1);
                    Interlocked.Increment(ref failed);
                    return;
                }

                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(stop.Token));
                while (await reader.ReadLineAsync(stop.Token) is { } line)
                {
                    if (!line.StartsWith("data:", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    Interlocked.Increment(ref chunks);
                    if (!counted)
                    {
                        counted = true;
                        Interlocked.Increment(ref opened);
                        Interlocked.Increment(ref open);
                    }
                }
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                // The end of the hold (cancelling thousands of HTTP/2 streams at once can also reset their connections).
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
            {
                var inner = ex.GetBaseException();
                errors.AddOrUpdate(inner.GetType().Name + ": " + inner.Message[..Math.Min(100, inner.Message.Length)], 1, static (_, n) => n + 1);
                Interlocked.Increment(ref failed);
            }
            finally
            {
                if (counted)
                {
                    Interlocked.Decrement(ref open);
                }
            }
        })));

        // Until every stream has its first chunk (or failed), at most 30 s more.
        var deadline = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        while (Volatile.Read(ref opened) + Volatile.Read(ref failed) < settings.Streams && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(100);
        }

        var ramp = Stopwatch.GetElapsedTime(rampStart);
        var cpuBefore = portal.Cpu;
        var upstreamBefore = slow.Cpu;
        var chunksBefore = Interlocked.Read(ref chunks);
        var clock = Stopwatch.StartNew();
        long maxRss = 0;
        var minOpen = int.MaxValue;
        while (clock.Elapsed < TimeSpan.FromSeconds(settings.HoldSeconds))
        {
            await Task.Delay(500);
            maxRss = Math.Max(maxRss, portal.ResidentBytes);
            minOpen = Math.Min(minOpen, Volatile.Read(ref open));
        }

        var held = clock.Elapsed;
        var cpu = portal.Cpu - cpuBefore;
        var upstreamCpu = slow.Cpu - upstreamBefore;
        var heldChunks = Interlocked.Read(ref chunks) - chunksBefore;
        var gc = await client.GetFromJsonAsync<GcStats>(gcUrl);
        var rss = portal.ResidentBytes;
        var openAtEnd = Volatile.Read(ref open);
        stop.Cancel();
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30));

        var result = new HoldResult(
            settings.Streams, opened, failed, Math.Min(minOpen, openAtEnd), ramp, held, idleRss, idleGc!, rss, maxRss, portal.PeakResidentBytes, gc!,
            cpu, upstreamCpu, heldChunks, [.. errors.Select(static e => $"{e.Key} × {e.Value}")], h2c, fileLimit);
        Console.WriteLine($"  opened {opened:N0}, failed {failed:N0}, open throughout ≥ {result.MinOpen:N0}; gateway RSS {rss / 1048576.0:F0} MiB (idle {idleRss / 1048576.0:F0}), GC heap {gc!.HeapSizeBytes / 1048576.0:F0} MiB, CPU {cpu.TotalSeconds / held.TotalSeconds * 100:F1} % of a core");
        return result;
    }
}

internal sealed record HoldResult(
    int Streams,
    int Opened,
    int Failed,
    int MinOpen,
    TimeSpan Ramp,
    TimeSpan Held,
    long IdleRss,
    GcStats IdleGc,
    long Rss,
    long MaxRss,
    long PeakRss,
    GcStats Gc,
    TimeSpan GatewayCpu,
    TimeSpan UpstreamCpu,
    long Chunks,
    string[] Errors,
    bool Http2Cleartext,
    long FileLimit);
