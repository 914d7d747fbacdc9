using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Cortensor.Portal.Benchmarks.Load;
using Cortensor.Portal.Fleet.Simulator;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace Cortensor.Portal.Benchmarks.Enforcement;

/// <summary>
/// Per-request cost of hot-path enforcement (key verification cache, entitlements, rate limits) and the Redis
/// round trips it makes, in one run: three gateways on the same simulated router, loaded in turn at a fixed
/// open-loop rate, interleaved in rounds (a, b, c, a, b, c, …) so machine noise spreads over all of them.
/// </summary>
internal static class EnforcementBenchmark
{
    public const string Usage =
        """
        usage: enforcement [--rate 500] [--seconds 10] [--warmup 3] [--rounds 2] [--connections 512]
                           [--jit-warmup 10] [--max-tokens 8] [--trace-seconds 1] [--no-redis]
        Variants: (a) no enforcement, (b) in-process enforcement (SQLite stores, in-process limiter),
        (c) Redis enforcement (AddCortensorRedis). Redis: REDIS_CONNECTION (StackExchange.Redis form) if set, else a
        throwaway redis-server (REDIS_SERVER or the PATH) on 127.0.0.1 without persistence.
        """;

    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(EnforcementSettings settings, string commandLine)
    {
        var loadBefore = LoadAverage();
        Console.WriteLine($"Machine: {Environment.ProcessorCount} logical cores, {Environment.OSVersion}, .NET {Environment.Version}; load average {loadBefore}");
        Console.WriteLine($"Offered load: {settings.Rate} req/s open loop; {settings.JitWarmupSeconds} s JIT warm-up per variant, then {settings.Rounds} round(s) of {settings.WarmupSeconds} s warm-up + {settings.Seconds} s measured per variant.");

        var upstreamKey = "sim_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        await using var upstream = await RouterSimulatorServer.StartAsync(new RouterSimulatorOptions { ApiKey = upstreamKey });
        Console.WriteLine($"Upstream: router simulator at {upstream.BaseUrl} (no latency, tokens as fast as possible), shared by every variant.");

        RedisServerProcess? redisServer = null;
        RedisCommandCounter? counter = null;
        string? redisConnection = null;
        var variants = new List<GatewayVariant>();
        try
        {
            if (!settings.NoRedis)
            {
                redisConnection = Environment.GetEnvironmentVariable("REDIS_CONNECTION");
                if (string.IsNullOrWhiteSpace(redisConnection))
                {
                    try
                    {
                        redisServer = await RedisServerProcess.StartAsync();
                        redisConnection = redisServer.ConnectionString;
                        Console.WriteLine($"Redis: throwaway redis-server on {redisConnection} (pid {redisServer.ProcessId}, no persistence).");
                    }
                    catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception or RedisException)
                    {
                        Console.WriteLine($"Redis: no REDIS_CONNECTION and redis-server could not be started ({ex.Message}); the Redis variant is left out.");
                        redisConnection = null;
                    }
                }
                else
                {
                    Console.WriteLine("Redis: REDIS_CONNECTION.");
                }

                if (redisConnection is not null)
                {
                    counter = await RedisCommandCounter.ConnectAsync(redisConnection);
                    Console.WriteLine($"Redis version {await counter.VersionAsync()}.");
                }
            }

            var prefix = "cbench:" + Guid.NewGuid().ToString("N")[..8] + ":";
            variants.Add(await GatewayVariant.StartAsync(VariantKind.NoEnforcement, upstream, upstreamKey, null, prefix));
            variants.Add(await GatewayVariant.StartAsync(VariantKind.InProcess, upstream, upstreamKey, null, prefix));
            if (redisConnection is not null)
            {
                variants.Add(await GatewayVariant.StartAsync(VariantKind.Redis, upstream, upstreamKey, redisConnection, prefix));
            }

            using var client = new HttpClient(OpenLoopLoadGenerator.CreateHandler(settings.Connections)) { Timeout = TimeSpan.FromSeconds(20) };
            var body = Encoding.UTF8.GetBytes(
                $$"""{"model":"{{GatewayVariant.Model}}","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":{{settings.MaxTokens}}}""");

            // The router request the gateways send for it (ChatML prompt, session 1), for the direct row.
            var directBody = Encoding.UTF8.GetBytes(
                $$"""{"prompt":"<|im_start|>user\nSay hello in five words.<|im_end|>\n<|im_start|>assistant\n","prompt_type":1,"stream":false,"timeout":60,"max_tokens":{{settings.MaxTokens}}}""");
            var targets = new List<Target> { new(VariantKind.Direct, new Uri(upstream.BaseUrl, "api/v1/completions/1"), upstreamKey, directBody, null) };
            targets.AddRange(variants.Select(v => new Target(v.Kind, v.ChatCompletions, v.ApiKey, body, v)));
            foreach (var target in targets)
            {
                if (!await ProbeAsync(client, target))
                {
                    return 1;
                }
            }

            // Background work of every gateway (writers, timers, connections) with no load: part of every CPU figure below.
            var idleStart = await CpuAsync(counter, counter is not null);
            var idleClock = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(2));
            var idleEnd = await CpuAsync(counter, counter is not null);
            var idle = (idleEnd.Process - idleStart.Process + idleEnd.Redis - idleStart.Redis).TotalMilliseconds / idleClock.Elapsed.TotalSeconds;
            Console.WriteLine($"Idle (every gateway up, no load): {idle:F1} ms CPU per second.");

            // Round 1 would otherwise pay for tiered JIT (tier 0 → instrumented → tier 1), which takes a while on a busy machine.
            if (settings.JitWarmupSeconds > 0)
            {
                Console.WriteLine($"JIT warm-up: {settings.JitWarmupSeconds} s per variant, not measured …");
                foreach (var target in targets)
                {
                    await Generator(client, target).RunAsync(settings.Rate, TimeSpan.FromSeconds(settings.JitWarmupSeconds), DrainTimeout);
                }
            }

            var phases = new List<Phase>();
            var redis = new RedisObservation();
            var profiler = new ProfilerSwitch();
            variants.FirstOrDefault(static v => v.Kind == VariantKind.Redis)?.Services.GetRequiredService<IConnectionMultiplexer>().RegisterProfiler(profiler.Current);
            for (var round = 1; round <= settings.Rounds; round++)
            {
                foreach (var target in targets)
                {
                    var generator = Generator(client, target);
                    Settle();
                    if (settings.WarmupSeconds > 0)
                    {
                        await generator.RunAsync(settings.Rate, TimeSpan.FromSeconds(settings.WarmupSeconds), DrainTimeout);
                    }

                    var tracksRedis = target.Kind == VariantKind.Redis && counter is not null;
                    var callsBefore = tracksRedis ? await counter!.CommandCallsAsync() : null;
                    var cpuBefore = await CpuAsync(counter, tracksRedis);
                    var session = tracksRedis ? profiler.Start() : null;
                    var result = await generator.RunAsync(settings.Rate, TimeSpan.FromSeconds(settings.Seconds), DrainTimeout);
                    await Task.Delay(250); // let the releases that follow the last responses finish, in every variant alike
                    var cpuAfter = await CpuAsync(counter, tracksRedis);
                    if (tracksRedis)
                    {
                        profiler.Stop();
                        redis.Add(RedisCommandCounter.Subtract(await counter!.CommandCallsAsync(), callsBefore!), session!.FinishProfiling());
                    }

                    var phase = new Phase(target.Kind, round, result, cpuAfter.Process - cpuBefore.Process, cpuAfter.Redis - cpuBefore.Redis);
                    phases.Add(phase);
                    var d = new LatencyDistribution(result.AnsweredLatencies);
                    Console.WriteLine(
                        $"  round {round} {target.Label}: {result.Requests:N0} requests, {result.AchievedRate:N0} req/s, p50 {d.Milliseconds(0.5):F3} ms, p99 {d.Milliseconds(0.99):F3} ms, " +
                        $"non-200 {result.NotOk}, CPU {phase.CpuMicrosecondsPerRequest:F0} µs/req, load {LoadAverage()}");
                }
            }

            var redisTarget = targets.FirstOrDefault(static t => t.Kind == VariantKind.Redis);
            if (redisTarget is not null && counter is not null && settings.TraceSeconds > 0)
            {
                // Every command, the ones the scripts run inside Redis included (about 25 per request), must fit.
                redis.TraceRequests = settings.Rate * settings.TraceSeconds;
                var generator = Generator(client, redisTarget);
                redis.Traces = await counter.TraceAsync(
                    (redis.TraceRequests * 60) + 1000,
                    () => generator.RunAsync(settings.Rate, TimeSpan.FromSeconds(settings.TraceSeconds), DrainTimeout));
            }

            var loadAfter = LoadAverage();
            Report(settings, commandLine, phases, redis, loadBefore, loadAfter);
            return phases.Any(static p => p.Result.NotOk > 0) ? 1 : 0;
        }
        finally
        {
            foreach (var variant in variants)
            {
                await variant.DisposeAsync();
            }

            if (counter is not null)
            {
                await counter.DisposeAsync();
            }

            redisServer?.Dispose();
        }
    }

    private static OpenLoopLoadGenerator Generator(HttpClient client, Target target)
    {
        var authorization = new AuthenticationHeaderValue("Bearer", target.Key);
        var json = new MediaTypeHeaderValue("application/json");
        return new OpenLoopLoadGenerator(client, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, target.Uri) { Content = new ByteArrayContent(target.Body) };
            request.Content.Headers.ContentType = json;
            request.Headers.Authorization = authorization;
            return request;
        });
    }

    /// <summary>One request: 200, and rate limit headers exactly when the variant enforces limits.</summary>
    private static async Task<bool> ProbeAsync(HttpClient client, Target target)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, target.Uri) { Content = new ByteArrayContent(target.Body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", target.Key);
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var limited = response.Headers.Contains("x-ratelimit-limit-requests");
        var expectLimits = target.Kind is VariantKind.InProcess or VariantKind.Redis;
        if ((int)response.StatusCode != 200 || limited != expectLimits)
        {
            Console.Error.WriteLine($"{target.Label}: probe answered {(int)response.StatusCode}, rate limit headers {(limited ? "present" : "absent")} (expected {(expectLimits ? "present" : "absent")}): {text}");
            return false;
        }

        Console.WriteLine($"{target.Label}: {target.Uri} ready (probe 200{(limited ? ", x-ratelimit-limit-requests " + response.Headers.GetValues("x-ratelimit-limit-requests").First() : "")}).");
        return true;
    }

    private static void Report(
        EnforcementSettings settings,
        string commandLine,
        List<Phase> phases,
        RedisObservation redisObservation,
        string loadBefore,
        string loadAfter)
    {
        var rows = phases.GroupBy(static p => p.Kind).Select(static g => new Summary(g.Key, [.. g])).ToList();
        var baseline = rows.FirstOrDefault(static r => r.Kind == VariantKind.NoEnforcement);

        Console.WriteLine();
        Console.WriteLine($"### Enforcement cost at {settings.Rate} req/s (open loop, {settings.Rounds} × {settings.Seconds} s per variant, merged)");
        Console.WriteLine();
        Console.WriteLine("| variant | requests | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | added p50 vs (a) | added p99 vs (a) | non-200 | CPU µs/req | added CPU vs (a) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in rows)
        {
            var noBaseline = baseline is null || row == baseline || row.Kind == VariantKind.Direct;
            var added50 = noBaseline ? "—" : Signed(row.Latency.Milliseconds(0.5) - baseline!.Latency.Milliseconds(0.5)) + " ms";
            var added99 = noBaseline ? "—" : Signed(row.Latency.Milliseconds(0.99) - baseline!.Latency.Milliseconds(0.99)) + " ms";
            var addedCpu = noBaseline ? "—" : Signed(row.CpuMicrosecondsPerRequest - baseline!.CpuMicrosecondsPerRequest, "F0") + " µs";
            Console.WriteLine(
                $"| {GatewayVariant.Describe(row.Kind)} | {row.Requests:N0} | {row.AchievedRate:N0} | {row.Latency.Milliseconds(0.5):F3} | {row.Latency.Milliseconds(0.9):F3} | " +
                $"{row.Latency.Milliseconds(0.99):F3} | {row.Latency.MaxMilliseconds:F1} | {added50} | {added99} | {row.NotOk} | {row.CpuMicrosecondsPerRequest:F0} | {addedCpu} |");
        }

        Console.WriteLine();
        Console.WriteLine("Per round (p50 / p99 ms, CPU µs/req), to show the spread:");
        Console.WriteLine();
        Console.WriteLine("| variant | " + string.Join(" | ", Enumerable.Range(1, settings.Rounds).Select(static r => $"round {r}")) + " |");
        Console.WriteLine("|---|" + string.Concat(Enumerable.Repeat("---:|", settings.Rounds)));
        foreach (var row in rows)
        {
            var cells = row.Phases.Select(static p =>
            {
                var d = new LatencyDistribution(p.Result.AnsweredLatencies);
                return $"{d.Milliseconds(0.5):F3} / {d.Milliseconds(0.99):F3} ({p.CpuMicrosecondsPerRequest:F0})";
            });
            Console.WriteLine($"| {GatewayVariant.Describe(row.Kind)} | {string.Join(" | ", cells)} |");
        }

        var lag = new LatencyDistribution(phases.SelectMany(static p => p.Result.SendLag));
        Console.WriteLine();
        Console.WriteLine($"Generator: sent late by p50 {lag.Milliseconds(0.5):F3} ms, p99 {lag.Milliseconds(0.99):F3} ms, max {lag.MaxMilliseconds:F1} ms (included in the latencies, which run from the scheduled send time).");
        Console.WriteLine("CPU µs/req: CPU time of this process (load generator + gateway + simulated router, all in it) per request; for (c) plus redis-server's (INFO cpu).");

        var redis = rows.FirstOrDefault(static r => r.Kind == VariantKind.Redis);
        if (redis is not null && redisObservation.ServerCalls.Count > 0)
        {
            ReportRedis(redis.Requests, redisObservation);
        }

        Console.WriteLine();
        Console.WriteLine($"Machine: {Environment.ProcessorCount} logical cores ({CpuModel()}), {Environment.OSVersion}, .NET {Environment.Version}; load average before {loadBefore}, after {loadAfter}.");
        Console.WriteLine($"Command: `{commandLine}`");
    }

    private static void ReportRedis(int requests, RedisObservation redis)
    {
        Console.WriteLine();
        Console.WriteLine($"### Redis commands of (c) over its measured phases ({requests:N0} requests)");
        Console.WriteLine();
        Console.WriteLine("Server side: `INFO commandstats` before and after each phase (it also counts the commands the Lua scripts run inside Redis). " +
            "Gateway side: StackExchange.Redis's profiler on the gateway's connection (what was actually sent, i.e. round trips).");
        Console.WriteLine();
        Console.WriteLine("| command | server calls | sent by the gateway | run inside scripts | sent per request | what |");
        Console.WriteLine("|---|---:|---:|---:|---:|---|");
        var commands = redis.ServerCalls.Keys.Union(redis.ClientCalls.Keys).Where(static c => !RedisCommandCounter.OwnCommands.Contains(c));
        long sent = 0, inside = 0;
        foreach (var command in commands.OrderByDescending(c => redis.ClientCalls.GetValueOrDefault(c)).ThenByDescending(c => redis.ServerCalls.GetValueOrDefault(c)))
        {
            var server = redis.ServerCalls.GetValueOrDefault(command);
            var client = redis.ClientCalls.GetValueOrDefault(command);
            var scripted = Math.Max(0, server - client);
            sent += client;
            inside += scripted;
            Console.WriteLine($"| {command} | {server:N0} | {client:N0} | {scripted:N0} | {(double)client / requests:F3} | {Explain(command, client)} |");
        }

        Console.WriteLine($"| **total** | {redis.ServerCalls.Where(static c => !RedisCommandCounter.OwnCommands.Contains(c.Key)).Sum(static c => c.Value):N0} | {sent:N0} | {inside:N0} | **{(double)sent / requests:F3}** | |");
        if (redis.EvalshaElapsed.Count > 0)
        {
            var rtt = new LatencyDistribution(redis.EvalshaElapsed);
            Console.WriteLine();
            Console.WriteLine($"EVALSHA as the gateway saw it (created → completed, StackExchange.Redis profiler): p50 {rtt.Milliseconds(0.5):F3} ms, p99 {rtt.Milliseconds(0.99):F3} ms, max {rtt.MaxMilliseconds:F1} ms.");
        }

        double acquireShare = double.NaN;
        if (redis.Traces is null)
        {
            Console.WriteLine();
            Console.WriteLine("No SLOWLOG sample (CONFIG SET refused, or --trace-seconds 0): EVALSHA is not split into acquire and release.");
        }
        else
        {
            // EVALSHA sha numkeys key… arg…: ARGV[1] is the request id in both scripts. A request's first script is its
            // acquire (before the router call), the second its release (after the response).
            var evalsha = redis.Traces.Where(static t => t.Arguments.Length > 3 && IsCommand(t, "EVALSHA")).ToList();
            var firstByRequest = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var trace in evalsha.OrderBy(static t => t.UniqueId))
            {
                if (RequestId(trace) is { } id)
                {
                    firstByRequest.TryAdd(id, trace.UniqueId);
                }
            }

            var scripts = evalsha
                .GroupBy(static t => (string?)t.Arguments[1] ?? "?")
                .Select(g => (Sha: g.Key, Calls: g.Count(), First: g.Count(t => RequestId(t) is { } id && firstByRequest[id] == t.UniqueId), Keys: (string?)g.First().Arguments[2]))
                .OrderByDescending(static s => s.First)
                .ToList();
            var sample = redis.TraceRequests;
            Console.WriteLine();
            Console.WriteLine($"EVALSHA split by script, from SLOWLOG (threshold 0, arguments logged) over a {sample:N0}-request sample after the measured rounds; a request's first script call is its acquire:");
            Console.WriteLine();
            Console.WriteLine("| script | calls | per request | when |");
            Console.WriteLine("|---|---:|---:|---|");
            var acquires = 0;
            foreach (var script in scripts)
            {
                var isAcquire = script.First * 2 > script.Calls;
                acquires += isAcquire ? script.Calls : 0;
                var when = isAcquire
                    ? "**before the router call**, awaited: rate limit acquire (rps, rpm, tpm, concurrency of key and org in one script)"
                    : "after the response, not awaited: release (concurrency slots, token settlement)";
                Console.WriteLine($"| `{script.Sha[..Math.Min(12, script.Sha.Length)]}…` ({script.Keys} keys) | {script.Calls:N0} | {(double)script.Calls / sample:F3} | {when} |");
            }

            acquireShare = evalsha.Count == 0 ? double.NaN : (double)acquires / evalsha.Count;
        }

        var perRequest = (string command) => (double)redis.ClientCalls.GetValueOrDefault(command) / requests;
        var evalshaPer = perRequest("evalsha");
        var awaitedBefore = perRequest("get") + perRequest("eval") + (double.IsNaN(acquireShare) ? double.NaN : evalshaPer * acquireShare);
        var after = double.IsNaN(acquireShare) ? double.NaN : evalshaPer * (1 - acquireShare);
        Console.WriteLine();
        if (double.IsNaN(acquireShare))
        {
            Console.WriteLine($"Redis round trips per request: {(double)sent / requests:F3} sent in all (EVALSHA {evalshaPer:F3}, key-cache GET {perRequest("get"):F3}); no acquire/release split without the SLOWLOG sample.");
        }
        else
        {
            Console.WriteLine(
                $"Redis round trips per request: **{awaitedBefore:F3} awaited before the router call** (rate limit acquire + key-cache GET on an L1 miss), " +
                $"{perRequest("set"):F3} key-cache SET not awaited, {after:F3} after the response (release, not awaited); {(double)sent / requests:F3} sent in all.");
        }
    }

    private static bool IsCommand(CommandTrace trace, string command) =>
        string.Equals((string?)trace.Arguments[0], command, StringComparison.OrdinalIgnoreCase);

    private static string? RequestId(CommandTrace trace)
    {
        if (!int.TryParse((string?)trace.Arguments[2], NumberStyles.None, CultureInfo.InvariantCulture, out var keys))
        {
            return null;
        }

        var index = 3 + keys;
        return index < trace.Arguments.Length ? (string?)trace.Arguments[index] : null;
    }

    private static string Explain(string command, long sent) => command switch
    {
        "evalsha" => "rate limit scripts: acquire before the router call + release after the response (split below)",
        "eval" => "a script sent by text after NOSCRIPT (once after a Redis restart)",
        "get" when sent == 0 => "inside the scripts only (rate limit state)",
        "get" => "key-verification cache (L2) on an in-process (L1, 1 s) miss; the rest: inside the scripts",
        "set" when sent == 0 => "inside the scripts only (rate limit state)",
        "set" => "key-verification cache (L2) fill after a miss, not awaited; the rest: inside the scripts",
        "publish" => "change feed notice",
        "ping" or "echo" => "StackExchange.Redis heartbeat",
        "subscribe" or "unsubscribe" => "change feed subscription",
        "time" or "zadd" or "zrem" or "zcount" or "zremrangebyscore" or "pexpire" or "del" or "psetex" or "expire" or "pttl" => "inside the scripts (Redis clock, concurrency sorted sets, TTLs)",
        _ => "other",
    };

    private static async Task<(TimeSpan Process, TimeSpan Redis)> CpuAsync(RedisCommandCounter? counter, bool withRedis)
    {
        using var self = Process.GetCurrentProcess();
        var process = self.TotalProcessorTime;
        var redis = withRedis && counter is not null ? await counter.CpuAsync() : TimeSpan.Zero;
        return (process, redis);
    }

    private static void Settle()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }

    private static string Signed(double value, string format = "F3") =>
        (value >= 0 ? "+" : "") + value.ToString(format, CultureInfo.InvariantCulture);

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static string CpuModel()
    {
        if (!File.Exists("/proc/cpuinfo"))
        {
            return "unknown CPU";
        }

        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(static l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "unknown CPU" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }

    /// <summary>Where one row's load goes: a gateway's chat completions, or the router simulator directly.</summary>
    private sealed record Target(VariantKind Kind, Uri Uri, string Key, byte[] Body, GatewayVariant? Gateway)
    {
        public string Label => GatewayVariant.Describe(Kind);
    }

    private sealed record Phase(VariantKind Kind, int Round, LoadResult Result, TimeSpan ProcessCpu, TimeSpan RedisCpu)
    {
        public double CpuMicrosecondsPerRequest => (ProcessCpu + RedisCpu).TotalMicroseconds / Result.Requests;
    }

    private sealed class Summary(VariantKind kind, Phase[] phases)
    {
        public VariantKind Kind { get; } = kind;

        public Phase[] Phases { get; } = phases;

        public LatencyDistribution Latency { get; } = new(phases.SelectMany(static p => p.Result.AnsweredLatencies));

        public int Requests => Phases.Sum(static p => p.Result.Requests);

        public int NotOk => Phases.Sum(static p => p.Result.NotOk);

        public double AchievedRate => Phases.Sum(static p => p.Result.AchievedRate * p.Result.Elapsed.TotalSeconds) / Phases.Sum(static p => p.Result.Elapsed.TotalSeconds);

        public double CpuMicrosecondsPerRequest => Phases.Sum(static p => (p.ProcessCpu + p.RedisCpu).TotalMicroseconds) / Requests;
    }

    /// <summary>What the Redis variant's measured phases sent and what Redis ran.</summary>
    private sealed class RedisObservation
    {
        public Dictionary<string, long> ServerCalls { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, long> ClientCalls { get; } = new(StringComparer.Ordinal);

        public List<long> EvalshaElapsed { get; } = [];

        public IReadOnlyList<CommandTrace>? Traces { get; set; }

        public int TraceRequests { get; set; }

        public void Add(Dictionary<string, long> serverCalls, ProfiledCommandEnumerable sent)
        {
            foreach (var (command, calls) in serverCalls)
            {
                ServerCalls[command] = ServerCalls.GetValueOrDefault(command) + calls;
            }

            foreach (var command in sent)
            {
                var name = command.Command.ToLowerInvariant();
                ClientCalls[name] = ClientCalls.GetValueOrDefault(name) + 1;
                if (name == "evalsha")
                {
                    EvalshaElapsed.Add((long)(command.ElapsedTime.TotalSeconds * Stopwatch.Frequency));
                }
            }
        }
    }

    /// <summary>Hands StackExchange.Redis a profiling session only while a measured phase runs.</summary>
    private sealed class ProfilerSwitch
    {
        private ProfilingSession? _session;

        public ProfilingSession Start() => _session = new ProfilingSession();

        public void Stop() => _session = null;

        public ProfilingSession? Current() => Volatile.Read(ref _session);
    }
}
