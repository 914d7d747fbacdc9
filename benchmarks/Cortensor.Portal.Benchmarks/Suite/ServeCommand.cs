using System.Globalization;
using System.Text;
using Cortensor.Portal.Benchmarks.Enforcement;
using Cortensor.Portal.Fleet.Simulator;
using Cortensor.Portal.Testing.Unkey;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>
/// <c>serve &lt;role&gt; …</c>: one server of the suite in its own process (so its CPU and memory are its own), on
/// 127.0.0.1 and a free port. Prints <c>READY &lt;base url&gt; [api key]</c> once it accepts requests and stops when
/// its standard input closes (the suite holds it open).
/// </summary>
/// <remarks>
/// Roles: <c>sim</c> (the router simulator, <c>--tps</c> token pacing, 0 = as fast as possible), <c>openai-stub</c>
/// (a minimal OpenAI-compatible upstream for the peer rows), <c>yarp</c> (a bare YARP forwarder, <c>--to</c> URL),
/// <c>portal</c> (the gateway, composed like the host; <c>--kind InProcess|Redis|RedisPostgres|Unkey</c>,
/// <c>--model alias=url[=protocol]</c> repeated, <c>--redis</c>, <c>--pg</c>, <c>--pg-schema</c>, and for
/// <c>Unkey</c> <c>--unkey url --unkey-root-key k --unkey-api-id id [--unkey-cache-ttl seconds]</c>),
/// <c>unkey-stub</c> (the tests' Unkey v2 stand-in, <see cref="UnkeyStub"/>, with one API and one root key holding the
/// Portal's permissions on it; <c>--root-key</c>, <c>--api-id</c>, <c>--latency-ms</c> added to every verifyKey answer,
/// default 8).
/// Gateways also map <c>GET /_bench/gc</c> (GC heap and process memory, JSON).
/// </remarks>
internal static class ServeCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("usage: serve sim|openai-stub|yarp|portal|unkey-stub [options]");
            return 2;
        }

        var role = args[0];
        var options = Options(args[1..]);
        string key = options.GetValueOrDefault("--key")?.FirstOrDefault() ?? "bench";
        var tps = double.Parse(options.GetValueOrDefault("--tps")?.FirstOrDefault() ?? "0", CultureInfo.InvariantCulture);

        IAsyncDisposable server;
        string ready;
        switch (role)
        {
            case "sim":
            {
                var sim = await RouterSimulatorServer.StartAsync(new RouterSimulatorOptions { ApiKey = key, TokensPerSecond = tps });
                server = sim;
                ready = sim.BaseUrl.ToString();
                break;
            }

            case "openai-stub":
            {
                var app = OpenAIStub(tps);
                await app.StartAsync();
                server = app;
                ready = Address(app);
                break;
            }

            case "yarp":
            {
                var to = options["--to"][0];
                var builder = Builder();
                builder.Services.AddHttpForwarder();
                var app = builder.Build();
                app.MapForwarder("/{**catch-all}", to);
                MapGc(app);
                await app.StartAsync();
                server = app;
                ready = Address(app);
                break;
            }

            case "unkey-stub":
            {
                var latency = TimeSpan.FromMilliseconds(double.Parse(options.GetValueOrDefault("--latency-ms")?.FirstOrDefault() ?? "8", CultureInfo.InvariantCulture));

                // The same stub the Unkey tests check against Unkey's server; no request log, so memory stays flat under load.
                var stub = new UnkeyStub(rootKey: options["--root-key"][0], apiId: options["--api-id"][0], verifyLatency: latency, keepRequests: false);
                server = new DisposeOnAsync(stub);
                ready = stub.Url.ToString().TrimEnd('/') + "/";
                break;
            }

            case "portal":
            {
                var kind = Enum.Parse<VariantKind>(options["--kind"][0]);
                var models = options["--model"].Select(static m =>
                {
                    var parts = m.Split('=');
                    return new GatewayModel(parts[0], new Uri(parts[1]), parts.Length > 2 ? parts[2] : "Cortensor");
                }).ToList();
                var gateway = await GatewayVariant.StartAsync(
                    new GatewaySetup(kind, models, key)
                    {
                        RedisConnection = options.GetValueOrDefault("--redis")?.FirstOrDefault(),
                        RedisKeyPrefix = "csuite:" + Guid.NewGuid().ToString("N")[..8] + ":",
                        PostgresConnection = options.GetValueOrDefault("--pg")?.FirstOrDefault(),
                        PostgresSchema = options.GetValueOrDefault("--pg-schema")?.FirstOrDefault() ?? "portal",
                        RealUsageSink = true,
                        Http2Cleartext = options.GetValueOrDefault("--h2c")?.FirstOrDefault() == "true",
                        UnkeyUrl = options.GetValueOrDefault("--unkey")?.FirstOrDefault() is { } unkey ? new Uri(unkey) : null,
                        UnkeyRootKey = options.GetValueOrDefault("--unkey-root-key")?.FirstOrDefault() ?? "",
                        UnkeyApiId = options.GetValueOrDefault("--unkey-api-id")?.FirstOrDefault() ?? "",
                        UnkeyCacheTtl = TimeSpan.FromSeconds(double.Parse(options.GetValueOrDefault("--unkey-cache-ttl")?.FirstOrDefault() ?? "0", CultureInfo.InvariantCulture)),
                    },
                    MapGc);
                server = gateway;
                ready = gateway.BaseAddress + " " + gateway.ApiKey;
                break;
            }

            default:
                Console.Error.WriteLine($"unknown role {role}");
                return 2;
        }

        await using (server)
        {
            Console.WriteLine("READY " + ready);
            Console.Out.Flush();

            // Until the suite closes our standard input (or goes away).
            await Task.Run(static () =>
            {
                while (Console.In.ReadLine() is not null)
                {
                }
            });
        }

        return 0;
    }

    private static Dictionary<string, List<string>> Options(ReadOnlySpan<string> args)
    {
        var options = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (!options.TryGetValue(args[i], out var values))
            {
                options[args[i]] = values = [];
            }

            values.Add(args[i + 1]);
        }

        return options;
    }

    private static WebApplicationBuilder Builder()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], EnvironmentName = Environments.Production });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);

        // Configured as the Portal rows are (the host's appsettings.json): no Activity per request, so the YARP
        // floor is not slowed by what the Portal turns off.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        return builder;
    }

    private static string Address(WebApplication app)
    {
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return address.EndsWith('/') ? address : address + "/";
    }

    private static void MapGc(WebApplication app) => app.MapGet("/_bench/gc", static () =>
    {
        var info = GC.GetGCMemoryInfo();
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return Results.Json(new GcStats(GC.GetTotalMemory(false), info.HeapSizeBytes, info.TotalCommittedBytes, self.WorkingSet64, GC.GetTotalAllocatedBytes(precise: true), GCSettings())
        {
            Gen0 = GC.CollectionCount(0),
            Gen1 = GC.CollectionCount(1),
            Gen2 = GC.CollectionCount(2),
            PauseMilliseconds = GC.GetTotalPauseDuration().TotalMilliseconds,
        });
    });

    private static string GCSettings() => System.Runtime.GCSettings.IsServerGC ? "server" : "workstation";

    /// <summary>
    /// A minimal OpenAI-compatible upstream: <c>POST /v1/chat/completions</c> answers a fixed 8-token completion,
    /// as JSON or (<c>"stream":true</c>) as SSE chunks; <paramref name="tps"/> paces the chunks (0 = no delay).
    /// </summary>
    private static WebApplication OpenAIStub(double tps)
    {
        var builder = Builder();
        var app = builder.Build();
        var completion = Encoding.UTF8.GetBytes(
            """{"id":"chatcmpl-bench","object":"chat.completion","created":1764000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how are you today friend?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}""");
        string[] words = ["Hello", " there", ",", " how", " are", " you", " today", " friend?"];
        var chunks = words.Select(static w => Encoding.UTF8.GetBytes(
            "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + w + "\"},\"finish_reason\":null}]}\n\n")).ToList();
        chunks.Add("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20}}\n\ndata: [DONE]\n\n"u8.ToArray());
        var delay = tps > 0 ? TimeSpan.FromSeconds(1 / tps) : TimeSpan.Zero;
        app.MapPost("/v1/chat/completions", async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            var text = Encoding.UTF8.GetString(body.GetBuffer(), 0, (int)body.Length);
            var stream = text.Replace(" ", "", StringComparison.Ordinal).Contains("\"stream\":true", StringComparison.Ordinal);
            if (!stream)
            {
                context.Response.ContentType = "application/json";
                context.Response.ContentLength = completion.Length;
                await context.Response.Body.WriteAsync(completion, context.RequestAborted);
                return;
            }

            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            foreach (var chunk in chunks)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                if (delay > TimeSpan.Zero)
                {
                    await Task.Delay(delay, context.RequestAborted);
                }
            }
        });
        return app;
    }
}

/// <summary>Lets a synchronously disposed server sit where the other roles' async ones do.</summary>
internal sealed class DisposeOnAsync(IDisposable inner) : IAsyncDisposable
{
    public ValueTask DisposeAsync()
    {
        inner.Dispose();
        return ValueTask.CompletedTask;
    }
}

internal sealed record GcStats(long TotalMemory, long HeapSizeBytes, long CommittedBytes, long WorkingSet, long TotalAllocated, string Gc)
{
    /// <summary>Collections so far, by generation (a gen1 collection also counts as gen0, and so on).</summary>
    public int Gen0 { get; init; }

    public int Gen1 { get; init; }

    public int Gen2 { get; init; }

    /// <summary>Total time the runtime was paused for collections since the process started.</summary>
    public double PauseMilliseconds { get; init; }
}
