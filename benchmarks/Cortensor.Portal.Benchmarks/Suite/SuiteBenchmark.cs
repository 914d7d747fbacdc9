using System.Net.Http.Json;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Cortensor.Portal.Benchmarks.Micro;
using System.Security.Cryptography;
using System.Text;
using Cortensor.Portal.Benchmarks.Enforcement;
using Cortensor.Portal.Benchmarks.Load;
using Cortensor.Portal.Storage.Tests.Postgres;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>
/// <c>suite</c>: every server in its own process on 127.0.0.1 (simulated router, peers, gateway variants), loaded by
/// this process in turn (interleaved), and one Markdown report (BENCHMARKS.md) of what this run measured.
/// </summary>
internal static partial class SuiteBenchmark
{
    public const string Usage =
        """
        usage: suite [--quick] [--rates 500,1000,2000] [--seconds 10] [--warmup 3] [--jit-warmup 8]
                     [--saturation-seconds 10] [--workers 64] [--repeats 3] [--stream-rate 200] [--stream-seconds 10]
                     [--streams 10000] [--hold 20] [--only id,id] [--no-portkey] [--no-postgres] [--no-micro]
                     [--unkey-latency-ms 8] [--output BENCHMARKS.md]
        Row ids: direct, yarp, portal, portal-redis-pg, portal-redis-pg-awaited, portal-unkey, portal-unkey-cached, stub-direct, portkey, portal-openai.
        Redis: REDIS_CONNECTION or a throwaway redis-server; Postgres: PG_CONNECTION or a throwaway server.
        """;

    private const string RepoCommand = "dotnet run -c Release --project benchmarks/Cortensor.Portal.Benchmarks --";

    /// <summary>
    /// The runtime settings of the host (templates/content/Cortensor.Portal.Host: a Web SDK app, so server GC, plus
    /// the GC setting in its project file) as environment variables, for every gateway process
    /// (Portal and YARP rows alike), since they all run as this program. A test keeps the two in step.
    /// </summary>
    public static IReadOnlyDictionary<string, string> HostRuntimeEnvironment { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["DOTNET_gcServer"] = "1",
        ["DOTNET_GCDynamicAdaptationMode"] = "0",
    };
    private const string UnkeyApiId = "api_bench";

    /// <summary>The Redis row with speculative admission off: every request awaits its decision before the router call.</summary>
    public const string AwaitedRow = "portal-redis-pg-awaited";

    /// <summary>How that row turns speculative admission off (a <see cref="GatewayVariant.SettingPrefix"/> variable).</summary>
    private const string AwaitedSetting = GatewayVariant.SettingPrefix + "Cortensor__Gateway__SpeculativeAdmission__Enabled";
    private const string UnkeyWhat = "Portal with the Unkey key provider";

    /// <summary>The request rate of the issue's latency goal, where the goal rows are repeated (<see cref="SuiteSettings.Repeats"/>).</summary>
    public const int GoalRate = 1000;

    /// <summary>The rows repeated at <see cref="GoalRate"/>: the baseline, the .NET floor and the Portal's hot paths.</summary>
    public static readonly IReadOnlyList<string> RepeatedRows = ["direct", "yarp", "portal", "portal-redis-pg", AwaitedRow];

    /// <summary>The Unkey rows: id, the provider's <c>CacheTtl</c> in seconds (0 = its default, no cache), label.</summary>
    private static readonly (string Id, int CacheTtlSeconds, string Label)[] UnkeyRows =
    [
        ("portal-unkey", 0, "Portal, keys from Unkey (`AddCortensorUnkey`, options at their defaults: one `keys.verifyKey` call per request), in-process enforcement, SQLite → simulator"),
        ("portal-unkey-cached", 10, "Portal, keys from Unkey with `CacheTtl` 10 s (a valid verification reused for 10 s), in-process enforcement, SQLite → simulator"),
    ];
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Calls of each probe before the first timed window: past the runtime's tiering threshold (30 calls).</summary>
    private const int ProbeWarmupCalls = 40;

    public static async Task<int> RunAsync(SuiteSettings settings, string commandLine)
    {
        var started = DateTimeOffset.UtcNow;
        var root = RepoRoot();
        var logs = Path.Combine(Path.GetTempPath(), "cportal-suite-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(logs);
        var report = new SuiteReport(settings, commandLine, started);
        report.Notes.Add($"Open files: {FileLimit.Raise(65536)}.");
        report.LoadBefore = LoadAverage();
        Console.WriteLine($"Suite: logs in {logs}; {Environment.ProcessorCount} cores; load {report.LoadBefore}");

        var key = "sim_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var gatewayEnv = new Dictionary<string, string>(HostRuntimeEnvironment, StringComparer.Ordinal);
        foreach (var (name, value) in settings.GatewayEnvironment)
        {
            gatewayEnv[name] = value;
        }

        if (settings.GatewayEnvironment.Count > 0)
        {
            report.Notes.Add("Gateway processes ran with " + string.Join(", ", settings.GatewayEnvironment.Select(static v => $"`{v.Key}={v.Value}`")) + " (`--gateway-env`).");
        }

        if (settings.LatencyCsvDirectory is { } csvFolder)
        {
            Directory.CreateDirectory(csvFolder);
        }

        var children = new List<ChildProcess>();
        var redisCounters = new Dictionary<string, RedisCommandCounter>(StringComparer.Ordinal);
        RedisServerProcess? redis = null;
        PostgresServerProcess? postgres = null;
        try
        {
            var sim = Track(children, await ChildProcess.ServeAsync("sim", logs, ["sim", "--key", key]));
            var paced = Track(children, await ChildProcess.ServeAsync("sim-paced", logs, ["sim", "--key", key, "--tps", "100"]));
            var stub = Track(children, await ChildProcess.ServeAsync("openai-stub", logs, ["openai-stub", "--key", key]));
            Console.WriteLine($"Upstreams: simulator {sim.BaseUrl} (fast), simulator {paced.BaseUrl} (100 tokens/s), OpenAI stub {stub.BaseUrl}");

            var targets = new List<Target>();
            var routerBody = Encoding.UTF8.GetBytes(
                """{"prompt":"<|im_start|>user\nSay hello in five words.<|im_end|>\n<|im_start|>assistant\n","prompt_type":1,"stream":false,"timeout":60,"max_tokens":8}""");
            var routerStreamBody = Encoding.UTF8.GetBytes(
                """{"prompt":"<|im_start|>user\nSay hello in five words.<|im_end|>\n<|im_start|>assistant\n","prompt_type":1,"stream":true,"timeout":60,"max_tokens":16}""");
            byte[] Chat(string model, bool stream = false, int maxTokens = 8) => Encoding.UTF8.GetBytes(
                $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":{{maxTokens}}{{(stream ? ",\"stream\":true" : "")}}}""");

            targets.Add(new Target("direct", "direct to the simulator (baseline)", "sim", new Uri(sim.BaseUrl, "api/v1/completions/1"), key, routerBody, null, sim));
            targets.Add(new Target("stub-direct", "direct to the OpenAI stub (peer baseline)", "stub", new Uri(stub.BaseUrl, "v1/chat/completions"), key, Chat("bench-model"), null, stub));

            if (Wanted(settings, "yarp"))
            {
                var yarp = Track(children, await ChildProcess.ServeAsync("yarp", logs, ["yarp", "--to", sim.BaseUrl.ToString()], gatewayEnv));
                targets.Add(new Target("yarp", "bare YARP forwarder → simulator", "sim", new Uri(yarp.BaseUrl, "api/v1/completions/1"), key, routerBody, yarp, sim));
            }

            ChildProcess? portal = null;
            if (Wanted(settings, "portal") || Wanted(settings, "portal-openai") || settings.Only.Count == 0)
            {
                portal = Track(children, await ChildProcess.ServeAsync("portal", logs,
                [
                    "portal", "--kind", "InProcess", "--key", key,
                    "--model", $"bench-model={sim.BaseUrl}", "--model", $"bench-stream={paced.BaseUrl}", "--model", $"bench-openai={stub.BaseUrl}=OpenAICompatible",
                ], gatewayEnv));
                if (Wanted(settings, "portal"))
                {
                    targets.Add(new Target("portal", "Portal, embedded defaults (in-process enforcement, SQLite) → simulator", "sim", new Uri(portal.BaseUrl, "v1/chat/completions"), portal.Ready[1], Chat("bench-model"), portal, sim));
                }

                if (Wanted(settings, "portal-openai"))
                {
                    targets.Add(new Target("portal-openai", "Portal, embedded defaults → OpenAI stub", "stub", new Uri(portal.BaseUrl, "v1/chat/completions"), portal.Ready[1], Chat("bench-openai"), portal, stub));
                }
            }

            if (Wanted(settings, "portal-redis-pg") || Wanted(settings, AwaitedRow))
            {
                string? redisConnection = Environment.GetEnvironmentVariable("REDIS_CONNECTION");
                if (string.IsNullOrWhiteSpace(redisConnection))
                {
                    redis = await RedisServerProcess.StartAsync();
                    redisConnection = redis.ConnectionString;
                }

                string? pg = null;
                if (!settings.NoPostgres)
                {
                    pg = Environment.GetEnvironmentVariable("PG_CONNECTION");
                    if (string.IsNullOrWhiteSpace(pg) && PostgresServerProcess.IsAvailable)
                    {
                        postgres = PostgresServerProcess.StartNew(durable: true);
                        pg = postgres.ConnectionString;
                    }
                }

                // The default (speculative admission on) and, side by side, the same gateway awaiting every decision.
                foreach (var (id, speculative) in new[] { ("portal-redis-pg", true), (AwaitedRow, false) })
                {
                    if (!Wanted(settings, id))
                    {
                        continue;
                    }

                    var args = new List<string> { "portal", "--key", key, "--redis", redisConnection, "--model", $"bench-model={sim.BaseUrl}", "--model", $"bench-stream={paced.BaseUrl}" };
                    var label = "Portal, Redis hot path + Postgres store → simulator";
                    if (string.IsNullOrWhiteSpace(pg))
                    {
                        args.AddRange(["--kind", "Redis"]);
                        label = "Portal, Redis hot path + SQLite store (no Postgres here) → simulator";
                    }
                    else
                    {
                        args.AddRange(["--kind", "RedisPostgres", "--pg", pg, "--pg-schema", "bench_" + Guid.NewGuid().ToString("N")[..8]]);
                    }

                    var env = new Dictionary<string, string>(gatewayEnv, StringComparer.Ordinal);
                    if (!speculative)
                    {
                        env[AwaitedSetting] = "false";
                        label += ", every request awaits its limit decision (speculative admission off)";
                    }

                    var portalRedis = Track(children, await ChildProcess.ServeAsync(id, logs, args, env));
                    targets.Add(new Target(id, label, "sim", new Uri(portalRedis.BaseUrl, "v1/chat/completions"), portalRedis.Ready[1], Chat("bench-model"), portalRedis, sim)
                    {
                        Redis = redis,
                        RedisConnection = redisConnection,
                        CountsPostgres = pg is not null,
                    });
                }
            }

            if (UnkeyRows.Any(r => Wanted(settings, r.Id)))
            {
                using var probe = new HttpClient(OpenLoopLoadGenerator.CreateHandler(4)) { Timeout = TimeSpan.FromSeconds(30) };
                await AddUnkeyRowsAsync(settings, logs, key, gatewayEnv, children, targets, report, probe, sim, paced, Chat("bench-model"));
            }

            if (Wanted(settings, "portkey"))
            {
                if (settings.NoPortkey)
                {
                    report.NotMeasured.Add(("Portkey gateway", "skipped (--no-portkey)"));
                }
                else
                {
                    try
                    {
                        var portkey = Track(children, await Portkey.StartAsync(Path.Combine(root, "benchmarks", "peers", "portkey"), logs));
                        report.PortkeyVersion = Portkey.Version(Path.Combine(root, "benchmarks", "peers", "portkey"));
                        var target = new Target("portkey", $"Portkey gateway {report.PortkeyVersion} (Node {Portkey.NodeVersion()}) → OpenAI stub", "stub", new Uri(portkey.BaseUrl, "v1/chat/completions"), key, Chat("bench-model"), portkey, stub);
                        target.Headers["x-portkey-provider"] = "openai";
                        target.Headers["x-portkey-custom-host"] = new Uri(stub.BaseUrl, "v1").ToString();
                        targets.Add(target);
                    }
                    catch (Exception ex) when (ex is InvalidOperationException or IOException or System.ComponentModel.Win32Exception or TimeoutException)
                    {
                        report.NotMeasured.Add(("Portkey gateway", ex.Message));
                        Console.WriteLine("Portkey not measured: " + ex.Message);
                    }
                }
            }

            using var client = new HttpClient(OpenLoopLoadGenerator.CreateHandler(512)) { Timeout = TimeSpan.FromSeconds(30) };
            foreach (var target in targets)
            {
                var timing = await ProbeAsync(client, target);
                Console.WriteLine($"  {target.Id}: {target.Uri} ready{(timing is null ? "" : ", Server-Timing: " + timing)}");
            }

            report.Targets = targets;
            foreach (var redisAt in targets.Select(static t => t.RedisConnection).OfType<string>().Distinct(StringComparer.Ordinal))
            {
                redisCounters[redisAt] = await RedisCommandCounter.ConnectAsync(redisAt);
            }

            // The probes read around every timed window (a gateway's GC counters, Redis's command stats) run past the
            // call count at which the runtime recompiles a method before any window: the follow-up work of a probe's
            // first call made the gateways, not the direct rows, pay a burst in the first ~300 ms of the first window.
            foreach (var target in targets)
            {
                for (var i = 0; i < ProbeWarmupCalls; i++)
                {
                    await GcAsync(client, target);
                    if (target.RedisConnection is { } redisAt)
                    {
                        await redisCounters[redisAt].CommandStatsAsync();
                    }
                }
            }

            if (settings.JitWarmupSeconds > 0)
            {
                Console.WriteLine($"JIT warm-up: {settings.JitWarmupSeconds} s at 500 req/s per row …");
                foreach (var target in targets)
                {
                    await Generator(client, target).RunAsync(500, TimeSpan.FromSeconds(settings.JitWarmupSeconds), DrainTimeout);
                }
            }

            // After the JIT warm-up, so the sequential split measures optimized code on an otherwise idle machine.
            report.ServerTiming = await ServerTimingAsync(client, targets.Where(static t => t.Id.StartsWith("portal", StringComparison.Ordinal)));

            // Saturation first: a fixed rate far above what a row can serve only measures its queue, so those phases are skipped.
            if (settings.SaturationSeconds > 0)
            {
                Console.WriteLine($"Saturation: {settings.Workers} closed-loop workers, {settings.SaturationSeconds} s per row");
                foreach (var target in targets)
                {
                    await SuiteLoad.ClosedLoopAsync(client, Factory(target), settings.Workers, TimeSpan.FromSeconds(Math.Min(2, settings.SaturationSeconds)));
                    var cpu = CpuSnapshot.Take(target);
                    var result = await SuiteLoad.ClosedLoopAsync(client, Factory(target), settings.Workers, TimeSpan.FromSeconds(settings.SaturationSeconds));
                    var used = CpuSnapshot.Take(target) - cpu;
                    report.Saturation.Add(new SaturationRow(target, result, used));
                    Console.WriteLine($"  {target.Id}: {result.Rate:N0} req/s, p50 {Ms(Percentile(result.Latency, 0.5))} ms, failures {result.Failures}, gateway CPU {used.Gateway.TotalMicroseconds / Math.Max(1, result.Latency.Length):F0} µs/req");
                }
            }

            foreach (var rate in settings.Rates)
            {
                Console.WriteLine($"Fixed rate {rate} req/s (open loop), {settings.WarmupSeconds} s warm-up + {settings.Seconds} s");
                foreach (var target in targets)
                {
                    var saturation = report.Saturation.FirstOrDefault(s => s.Target == target);
                    if (saturation is not null && saturation.Result.Rate < rate * 0.9)
                    {
                        report.Fixed.Add(new FixedRow(target, rate, null, default, $"not run: saturates at {saturation.Result.Rate:N0} req/s"));
                        Console.WriteLine($"  {target.Id}: skipped (saturates at {saturation.Result.Rate:N0} req/s)");
                        continue;
                    }

                    var generator = Generator(client, target);
                    if (settings.WarmupSeconds > 0)
                    {
                        await generator.RunAsync(rate, TimeSpan.FromSeconds(settings.WarmupSeconds), DrainTimeout);
                    }

                    var gcBefore = await GcAsync(client, target);
                    var redisStats = target.RedisConnection is { } redisAt ? redisCounters[redisAt] : null;
                    var scriptsBefore = redisStats is null ? default : (await redisStats.CommandStatsAsync()).GetValueOrDefault("evalsha");
                    var cpu = CpuSnapshot.Take(target);
                    var result = await generator.RunAsync(rate, TimeSpan.FromSeconds(settings.Seconds), DrainTimeout);
                    var used = CpuSnapshot.Take(target) - cpu;
                    CommandStat? scripts = redisStats is null ? null : (await redisStats.CommandStatsAsync()).GetValueOrDefault("evalsha") - scriptsBefore;
                    var gcAfter = await GcAsync(client, target);
                    report.Fixed.Add(new FixedRow(target, rate, result, used, null) { GcBefore = gcBefore, GcAfter = gcAfter, Scripts = scripts });
                    var d = new LatencyDistribution(result.AnsweredLatencies);
                    if (settings.LatencyCsvDirectory is { } csv)
                    {
                        await LatencyCsv.WriteAsync(Path.Combine(csv, $"{target.Id}-{rate}.csv"), result);
                    }

                    Console.WriteLine($"  {target.Id}: {result.AchievedRate:N0} req/s, p50 {d.Milliseconds(0.5):F3} ms, p99 {d.Milliseconds(0.99):F3} ms, non-200 {result.NotOk}");
                }
            }

            await RepeatAsync(settings, client, targets, report);

            if (settings.StreamSeconds > 0)
            {
                Console.WriteLine($"Streams: {settings.StreamRate} req/s open loop for {settings.StreamSeconds} s, simulator at 100 tokens/s, max_tokens 16");
                var streamTargets = new List<Target>
                {
                    new("direct", "direct to the simulator (100 tokens/s)", "sim", new Uri(paced.BaseUrl, "api/v1/completions/1"), key, routerStreamBody, null, paced),
                };
                foreach (var gateway in targets.Where(static t => t.Id is "portal" or "portal-redis-pg" or AwaitedRow or "portal-unkey" or "portal-unkey-cached"))
                {
                    streamTargets.Add(gateway with { Body = Chat("bench-stream", stream: true, maxTokens: 16), Upstream = paced, Headers = new(gateway.Headers) });
                }

                foreach (var target in streamTargets)
                {
                    await SuiteLoad.StreamOpenLoopAsync(client, Factory(target), settings.StreamRate, TimeSpan.FromSeconds(Math.Max(1, settings.WarmupSeconds)));
                    var result = await SuiteLoad.StreamOpenLoopAsync(client, Factory(target), settings.StreamRate, TimeSpan.FromSeconds(settings.StreamSeconds));
                    report.Streams.Add((target, result));
                    Console.WriteLine($"  {target.Id}: TTFT p50 {Ms(Percentile(result.TimeToFirstToken, 0.5))} ms, p99 {Ms(Percentile(result.TimeToFirstToken, 0.99))} ms, chunk gap p50 {Ms(Percentile(result.ChunkGaps, 0.5))} ms, failures {result.Failures}");
                }

                // The time-to-first-token goal row and its baseline, repeated like the fixed-rate goal rows.
                var ttftRows = streamTargets.Where(static t => t.Id is "direct" or "portal").ToList();
                for (var round = 1; round <= settings.Repeats && ttftRows.Count == 2; round++)
                {
                    var ttft = new Dictionary<string, RoundLatency>(StringComparer.Ordinal);
                    for (var i = 0; i < ttftRows.Count; i++)
                    {
                        var target = ttftRows[(i + round) % ttftRows.Count];
                        await SuiteLoad.StreamOpenLoopAsync(client, Factory(target), settings.StreamRate, TimeSpan.FromSeconds(Math.Max(1, settings.WarmupSeconds)));
                        var result = await SuiteLoad.StreamOpenLoopAsync(client, Factory(target), settings.StreamRate, TimeSpan.FromSeconds(settings.StreamSeconds));
                        ttft[target.Id] = new RoundLatency(Percentile(result.TimeToFirstToken, 0.5), Percentile(result.TimeToFirstToken, 0.99), result.Failures);
                        Console.WriteLine($"  round {round} {target.Id}: TTFT p50 {Ms(Percentile(result.TimeToFirstToken, 0.5))} ms, failures {result.Failures}");
                    }

                    report.StreamRepeats.Add(new RepeatRound(round, ttft));
                }
            }

            if (settings.Streams > 0 && Wanted(settings, "portal"))
            {
                // Nothing else loaded: stop the other gateways so the machine is the streams' alone.
                foreach (var child in children.Where(static c => c.Name is "portal" or "portal-redis-pg" or AwaitedRow or "portal-unkey" or "portal-unkey-cached" or "unkey-stub" or "yarp" or "portkey").ToList())
                {
                    child.Dispose();
                    children.Remove(child);
                }

                report.Hold = await OpenStreams.RunAsync(settings, logs, key, gatewayEnv, children, FileLimit.Current());
            }

            report.LoadAfter = LoadAverage();
        }
        finally
        {
            foreach (var counter in redisCounters.Values)
            {
                await counter.DisposeAsync();
            }

            foreach (var child in children)
            {
                child.Dispose();
            }

            redis?.Dispose();
            postgres?.Dispose();
        }

        if (!settings.NoMicro)
        {
            report.Micro = await MicroRunner.RunChildAsync(settings.Quick, logs);
        }

        var output = settings.Output ?? Path.Combine(root, "BENCHMARKS.md");
        await File.WriteAllTextAsync(output, report.Render());
        Console.WriteLine($"Wrote {output} (logs in {logs}).");
        return 0;
    }

    /// <summary>
    /// <see cref="SuiteSettings.Repeats"/> more rounds of <see cref="RepeatedRows"/> at <see cref="GoalRate"/>, each with
    /// its own baseline; the order rotates every round so no row always follows the same neighbour.
    /// </summary>
    private static async Task RepeatAsync(SuiteSettings settings, HttpClient client, List<Target> targets, SuiteReport report)
    {
        var rows = targets
            .Where(t => RepeatedRows.Contains(t.Id))
            .Where(t => report.Saturation.FirstOrDefault(s => s.Target == t) is not { } saturation || saturation.Result.Rate >= GoalRate * 0.9)
            .ToList();
        if (settings.Repeats == 0 || rows.Count < 2 || rows.All(static t => t.Id != "direct"))
        {
            return;
        }

        Console.WriteLine($"Repeats: {settings.Repeats} more rounds of {string.Join(", ", rows.Select(static t => t.Id))} at {GoalRate} req/s");
        for (var round = 1; round <= settings.Repeats; round++)
        {
            var latencies = new Dictionary<string, RoundLatency>(StringComparer.Ordinal);
            for (var i = 0; i < rows.Count; i++)
            {
                var target = rows[(i + round) % rows.Count];
                var generator = Generator(client, target);
                if (settings.WarmupSeconds > 0)
                {
                    await generator.RunAsync(GoalRate, TimeSpan.FromSeconds(settings.WarmupSeconds), DrainTimeout);
                }

                var result = await generator.RunAsync(GoalRate, TimeSpan.FromSeconds(settings.Seconds), DrainTimeout);
                var d = new LatencyDistribution(result.AnsweredLatencies);
                latencies[target.Id] = new RoundLatency(d.Milliseconds(0.5), d.Milliseconds(0.99), result.NotOk);
                Console.WriteLine($"  round {round} {target.Id}: p50 {d.Milliseconds(0.5):F3} ms, p99 {d.Milliseconds(0.99):F3} ms, non-200 {result.NotOk}");
            }

            report.Repeats.Add(new RepeatRound(round, latencies));
        }
    }

    private static bool Wanted(SuiteSettings settings, string id) => settings.Only.Count == 0 || settings.Only.Contains(id);

    private static ChildProcess Track(List<ChildProcess> children, ChildProcess child)
    {
        children.Add(child);
        return child;
    }

    internal static Func<HttpRequestMessage> Factory(Target target)
    {
        var authorization = new AuthenticationHeaderValue("Bearer", target.Key);
        var json = new MediaTypeHeaderValue("application/json");
        var headers = target.Headers.ToArray();
        return () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, target.Uri) { Content = new ByteArrayContent(target.Body) };
            request.Content.Headers.ContentType = json;
            request.Headers.Authorization = authorization;
            foreach (var (name, value) in headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            return request;
        };
    }

    private static OpenLoopLoadGenerator Generator(HttpClient client, Target target) => new(client, Factory(target));

    /// <summary>The gateway's GC counters (our own gateways and YARP map <c>/_bench/gc</c>; peers do not).</summary>
    private static async Task<GcStats?> GcAsync(HttpClient client, Target target)
    {
        if (!target.IsOwnGateway || target.Gateway is not { } gateway)
        {
            return null;
        }

        try
        {
            return await client.GetFromJsonAsync<GcStats>(new Uri(gateway.BaseUrl, "_bench/gc"));
        }
        catch (Exception ex) when (ex is HttpRequestException or System.Text.Json.JsonException or TaskCanceledException)
        {
            return null;
        }
    }

    private static async Task<string?> ProbeAsync(HttpClient client, Target target)
    {
        using var request = Factory(target)();
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if ((int)response.StatusCode != 200)
        {
            throw new InvalidOperationException($"{target.Id}: probe answered {(int)response.StatusCode}: {text[..Math.Min(500, text.Length)]}");
        }

        return response.Headers.TryGetValues("Server-Timing", out var values) ? string.Join(", ", values) : null;
    }

    /// <summary>200 sequential requests per gateway row; the gateway's own Server-Timing split (gateway;dur, limits;dur, router;dur).</summary>
    private static async Task<List<ServerTimingRow>> ServerTimingAsync(HttpClient client, IEnumerable<Target> targets)
    {
        var rows = new List<ServerTimingRow>();
        foreach (var target in targets)
        {
            var gateway = new List<double>();
            var limits = new List<double>();
            var router = new List<double>();
            var create = Factory(target);
            for (var i = 0; i < 300; i++)
            {
                using var request = create();
                using var response = await client.SendAsync(request);
                await response.Content.ReadAsByteArrayAsync();
                if (i < 100 || !response.Headers.TryGetValues("Server-Timing", out var values))
                {
                    continue; // the first 100 warm the path
                }

                var header = string.Join(",", values);
                foreach (var (metric, list) in new[] { ("gateway", gateway), ("limits", limits), ("router", router) })
                {
                    var ms = ServerTimingHeader.Read(header, metric);
                    if (!double.IsNaN(ms))
                    {
                        list.Add(ms);
                    }
                }
            }

            if (gateway.Count > 0)
            {
                rows.Add(new ServerTimingRow(target, [.. gateway], [.. limits], [.. router]));
            }
        }

        return rows;
    }

    internal static double Percentile(long[] ticks, double p)
    {
        if (ticks.Length == 0)
        {
            return double.NaN;
        }

        var sorted = (long[])ticks.Clone();
        Array.Sort(sorted);
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)] * 1000.0 / Stopwatch.Frequency;
    }

    internal static double Percentile(double[] values, double p) => LatencyDistribution.NearestRank(values, p);

    internal static string Ms(double value) => double.IsNaN(value) ? "—" : value.ToString(value < 10 ? "F3" : "F1", CultureInfo.InvariantCulture);

    internal static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cortensor.Portal.sln")))
            {
                return dir.FullName;
            }
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cortensor.Portal.sln")))
            {
                return dir.FullName;
            }
        }

        return Directory.GetCurrentDirectory();
    }

    /// <summary>
    /// The Unkey rows: one <c>serve unkey-stub</c> (Unkey's v2 wire format, every verifyKey answered after
    /// <see cref="SuiteSettings.UnkeyLatencyMs"/>) shared by a Portal process per row, each composed with
    /// <see cref="VariantKind.Unkey"/> and issuing its key through the stub at start-up. A row that cannot start or
    /// does not answer its probe with 200 goes to "Not measured" with the reason; the other rows still run.
    /// </summary>
    private static async Task AddUnkeyRowsAsync(
        SuiteSettings settings,
        string logs,
        string upstreamKey,
        Dictionary<string, string> gatewayEnv,
        List<ChildProcess> children,
        List<Target> targets,
        SuiteReport report,
        HttpClient client,
        ChildProcess sim,
        ChildProcess paced,
        byte[] body)
    {
        var rootKey = "unkey_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        ChildProcess stub;
        try
        {
            stub = Track(children, await ChildProcess.ServeAsync("unkey-stub", logs,
                ["unkey-stub", "--root-key", rootKey, "--api-id", UnkeyApiId, "--latency-ms", settings.UnkeyLatencyMs.ToString(CultureInfo.InvariantCulture)]));
            Console.WriteLine($"Unkey stub {stub.BaseUrl} (verifyKey answered after {settings.UnkeyLatencyMs} ms)");
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or TimeoutException)
        {
            var reason = "the Unkey stub did not start: " + Reason(ex, logs, "unkey-stub");
            report.NotMeasured.Add((UnkeyWhat, reason));
            Console.WriteLine($"{UnkeyWhat} not measured: {reason}");
            return;
        }

        foreach (var (id, cacheTtl, label) in UnkeyRows.Where(r => Wanted(settings, r.Id)))
        {
            ChildProcess? gateway = null;
            try
            {
                gateway = Track(children, await ChildProcess.ServeAsync(id, logs,
                [
                    "portal", "--kind", nameof(VariantKind.Unkey), "--key", upstreamKey,
                    "--model", $"bench-model={sim.BaseUrl}", "--model", $"bench-stream={paced.BaseUrl}",
                    "--unkey", stub.BaseUrl.ToString(), "--unkey-root-key", rootKey, "--unkey-api-id", UnkeyApiId,
                    "--unkey-cache-ttl", cacheTtl.ToString(CultureInfo.InvariantCulture),
                ], gatewayEnv));
                var target = new Target(id, label, "sim", new Uri(gateway.BaseUrl, "v1/chat/completions"), gateway.Ready[1], body, gateway, sim) { KeyService = stub };
                await ProbeAsync(client, target);
                targets.Add(target);
            }
            catch (Exception ex) when (ex is InvalidOperationException or IOException or TimeoutException or HttpRequestException or TaskCanceledException)
            {
                if (gateway is not null)
                {
                    children.Remove(gateway);
                    gateway.Dispose();
                }

                var reason = Reason(ex, logs, id);
                reason = reason.StartsWith(id + ":", StringComparison.Ordinal) ? $"`{id}`{reason[id.Length..]}" : $"`{id}`: {reason}";
                report.NotMeasured.Add((UnkeyWhat, reason));
                Console.WriteLine($"{UnkeyWhat} not measured: {reason}");
            }
        }
    }

    /// <summary>The exception's message, with the first exception line of the child's log (why it died before READY, or the warning behind a failed probe).</summary>
    private static string Reason(Exception exception, string logs, string child)
    {
        var log = Path.Combine(logs, child + ".log");
        var line = File.Exists(log)
            ? File.ReadLines(log).FirstOrDefault(static l => l.Contains("Exception", StringComparison.Ordinal))
            : null;
        return line is null ? exception.Message : $"{exception.Message} ({line.Trim()})";
    }

    internal static string Cmd(string args) => $"`{RepoCommand} {args}`";
}

/// <summary>One row: where the load goes, what serves it, and which processes' CPU belongs to it.</summary>
internal sealed record Target(string Id, string Label, string Group, Uri Uri, string Key, byte[] Body, ChildProcess? Gateway, ChildProcess Upstream)
{
    public Dictionary<string, string> Headers { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>A gateway this program serves (Portal or YARP): it maps <c>/_bench/gc</c> and takes <c>--gateway-env</c>; Portkey (node) does neither.</summary>
    public bool IsOwnGateway => Gateway is not null && Id != "portkey";

    public RedisServerProcess? Redis { get; init; }

    /// <summary>The Redis this row's gateway uses (suite-started or <c>REDIS_CONNECTION</c>), read for the scripts' server time.</summary>
    public string? RedisConnection { get; init; }

    /// <summary>The key service the gateway calls per request (the Unkey stub), counted with the row's services.</summary>
    public ChildProcess? KeyService { get; init; }

    public bool CountsPostgres { get; init; }
}

/// <summary>CPU time of the processes of one row: this process (load generator), the gateway, the upstream, Redis, Postgres and the Unkey stub.</summary>
internal readonly record struct CpuSnapshot(TimeSpan Client, TimeSpan Gateway, TimeSpan Upstream, TimeSpan Services, CpuSample? Postgres = null)
{
    public TimeSpan Total => Client + Gateway + Upstream + Services;

    public static CpuSnapshot Take(Target target)
    {
        using var self = Process.GetCurrentProcess();
        var services = TimeSpan.Zero;
        if (target.Redis is not null)
        {
            try
            {
                using var redis = Process.GetProcessById(target.Redis.ProcessId);
                services += redis.TotalProcessorTime;
            }
            catch (ArgumentException)
            {
                // Gone.
            }
        }

        services += target.KeyService?.Cpu ?? TimeSpan.Zero;
        return new CpuSnapshot(self.TotalProcessorTime, target.Gateway?.Cpu ?? TimeSpan.Zero, target.Upstream.Cpu, services, target.CountsPostgres ? CpuSample.Take() : null);
    }

    /// <summary>What was used between <paramref name="b"/> and <paramref name="a"/>; Postgres (all local postgres processes) folds into <see cref="Services"/>.</summary>
    public static CpuSnapshot operator -(CpuSnapshot a, CpuSnapshot b)
    {
        var postgres = a.Postgres is not null && b.Postgres is not null ? (a.Postgres - b.Postgres).Server : TimeSpan.Zero;
        return new(a.Client - b.Client, a.Gateway - b.Gateway, a.Upstream - b.Upstream, a.Services - b.Services + postgres);
    }
}

internal sealed record FixedRow(Target Target, int Rate, LoadResult? Result, CpuSnapshot Cpu, string? Skipped)
{
    public GcStats? GcBefore { get; init; }

    public GcStats? GcAfter { get; init; }

    /// <summary>For a Redis row: the rate-limit scripts (<c>EVALSHA</c>, acquire and release) redis-server ran during the timed part.</summary>
    public CommandStat? Scripts { get; init; }
}

internal sealed record SaturationRow(Target Target, SaturationResult Result, CpuSnapshot Cpu);

/// <summary>One gateway's <c>Server-Timing</c> over sequential requests, in ms (Limits is empty when no limit applied).</summary>
internal sealed record ServerTimingRow(Target Target, double[] Gateway, double[] Limits, double[] Router);
