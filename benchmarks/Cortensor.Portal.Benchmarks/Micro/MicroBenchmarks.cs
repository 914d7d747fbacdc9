using System.Net;
using System.Net.Http.Headers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Cortensor.Portal.Benchmarks.Enforcement;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Fleet.Simulator;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Keys.Stores;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.Configuration;
using Cortensor.Portal.Redis.RateLimiting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Benchmarks.Micro;

/// <summary>Key parse, hash and verify: what every request pays before anything else.</summary>
[MemoryDiagnoser]
public class KeyBenchmarks
{
    private readonly byte[] _hash = new byte[32];
    private ApiKeyFormat _format = null!;
    private LocalApiKeyProvider _local = null!;
    private CachingApiKeyProvider _caching = null!;
    private string _key = "";

    [GlobalSetup]
    public void Setup()
    {
        _format = new ApiKeyFormat(new ApiKeyFormatOptions());
        _local = new LocalApiKeyProvider(new InMemoryApiKeyStore(), _format, TimeProvider.System, NullLogger<LocalApiKeyProvider>.Instance);
        _key = _local.IssueAsync(new IssueApiKeyRequest { OrgId = "org_bench", Name = "bench" }).GetAwaiter().GetResult().Secret;
        _caching = new CachingApiKeyProvider(_local, _format, TimeProvider.System, Options.Create(new ApiKeyCacheOptions()));
        _ = _caching.VerifyAsync(_key).AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup() => _caching.Dispose();

    [Benchmark(Description = "ApiKeyFormat.TryParse")]
    public bool Parse() => _format.TryParse(_key, out _);

    [Benchmark(Description = "ApiKeyHasher.Hash")]
    public int Hash() => ApiKeyHasher.Hash(_key, _hash);

    [Benchmark(Description = "LocalApiKeyProvider.VerifyAsync (in-memory store)")]
    public ValueTask<ApiKeyVerification> VerifyLocal() => _local.VerifyAsync(_key);

    [Benchmark(Description = "CachingApiKeyProvider.VerifyAsync (hit)")]
    public ValueTask<ApiKeyVerification> VerifyCached() => _caching.VerifyAsync(_key);
}

/// <summary>Prompt formatting and output cleaning, per prompt format.</summary>
[MemoryDiagnoser]
public class PromptBenchmarks
{
    private static readonly PromptMessage[] Messages =
    [
        new("system", "You are a helpful assistant. Answer briefly."),
        new("user", "What is the capital of France?"),
        new("assistant", "Paris."),
        new("user", "And of Italy? Say it in one word, please."),
    ];

    private string _raw = "";

    [Params(PromptFormat.Plain, PromptFormat.ChatML, PromptFormat.Llama3, PromptFormat.Gemma, PromptFormat.Harmony)]
    public PromptFormat Format { get; set; }

    [GlobalSetup]
    public void Setup() => _raw = "Rome.<|im_end|>\n<|im_start|>user\nand what about Spain?</s><end_of_turn>";

    [Benchmark(Description = "PromptBuilder.Build")]
    public string Build() => PromptBuilder.Build(Format, Messages);

    [Benchmark(Description = "OutputCleaner.Clean")]
    public string Clean() => OutputCleaner.Clean(Format, _raw);
}

/// <summary>
/// SSE translation on the router side: <see cref="CortensorRouterClient.StreamAsync"/> reading a 16-token router
/// stream (recorded from the simulator, replayed from memory, so no socket) into chunks, plus the streaming cleaner.
/// </summary>
[MemoryDiagnoser]
public class SseBenchmarks
{
    private readonly RouterTarget _target = new() { RouterId = "bench", BaseUrl = new Uri("http://bench.invalid/"), SessionId = 1 };
    private readonly RouterCompletionRequest _request = new() { Prompt = "<|im_start|>user\nhello<|im_end|>\n", PromptFormat = PromptFormat.ChatML, PromptType = 1, MaxTokens = 16, ClientReference = "bench" };
    private CortensorRouterClient _client = null!;
    private HttpClient _http = null!;
    private string[] _deltas = [];

    [GlobalSetup]
    public void Setup()
    {
        var body = RecordStream().GetAwaiter().GetResult();
        _http = new HttpClient(new ReplayHandler(body));
        _client = new CortensorRouterClient(_http, TimeProvider.System, NullLogger<CortensorRouterClient>.Instance);
        _deltas = [.. SimulatedReply.Tokens(1, "one two three four five six seven eight nine ten", 16).Select(static t => t + " ")];
    }

    [GlobalCleanup]
    public void Cleanup() => _http.Dispose();

    [Benchmark(Description = "CortensorRouterClient.StreamAsync (16 tokens)")]
    public async Task<int> Stream()
    {
        var n = 0;
        await foreach (var chunk in _client.StreamAsync(_target, _request, CancellationToken.None))
        {
            n += chunk.Text.Length;
        }

        return n;
    }

    [Benchmark(Description = "StreamingOutputCleaner.Push (16 tokens, ChatML)")]
    public int Clean()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.ChatML);
        var n = 0;
        foreach (var delta in _deltas)
        {
            n += cleaner.Push(delta).Length;
        }

        return n + cleaner.Flush().Length;
    }

    private static async Task<byte[]> RecordStream()
    {
        await using var sim = await RouterSimulatorServer.StartAsync(new RouterSimulatorOptions { ApiKey = null });
        using var http = new HttpClient();
        using var content = new StringContent(
            """{"prompt":"one two three four five six seven eight nine ten","prompt_type":1,"stream":true,"timeout":60,"max_tokens":16}""",
            Encoding.UTF8,
            "application/json");
        using var response = await http.PostAsync(new Uri(sim.BaseUrl, "api/v1/completions/1"), content);
        return await response.Content.ReadAsByteArrayAsync();
    }

    private sealed class ReplayHandler(byte[] body) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body), RequestMessage = request };
            response.Content.Headers.ContentType = new MediaTypeHeaderValue("text/event-stream");
            return Task.FromResult(response);
        }
    }
}

/// <summary>
/// The rate limit call of every request: acquire (rps, rpm, tpm and concurrency of the key and of its org, all or
/// nothing) and release, in process and on Redis (a throwaway <c>redis-server</c>, or <c>REDIS_CONNECTION</c>).
/// </summary>
[MemoryDiagnoser]
public class RateLimitBenchmarks
{
    private static readonly RateLimitRule[] Rules =
    [
        new("rps", RateLimitClass.Requests, 1_000_000, TimeSpan.FromSeconds(1)),
        new("rpm", RateLimitClass.Requests, 60_000_000, TimeSpan.FromMinutes(1)),
        new("tpm", RateLimitClass.Tokens, 1_000_000_000, TimeSpan.FromMinutes(1)),
        new("concurrency", RateLimitClass.Concurrency, 1_000_000, TimeSpan.Zero),
    ];

    private readonly RateLimitPartition[] _partitions = [new("key", "key_bench", Rules), new("org", "org_bench", Rules)];
    private InProcessRateLimiter _inProcess = null!;
    private RedisRateLimiter? _redis;
    private ConnectionMultiplexer? _connection;
    private RedisServerProcess? _server;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _inProcess = new InProcessRateLimiter(new RateLimitingOptions());
        var connection = Environment.GetEnvironmentVariable("REDIS_CONNECTION");
        if (string.IsNullOrWhiteSpace(connection))
        {
            _server = RedisServerProcess.StartAsync().GetAwaiter().GetResult();
            connection = _server.ConnectionString;
        }

        _connection = ConnectionMultiplexer.Connect(connection);
        _redis = new RedisRateLimiter(
            _connection,
            Options.Create(new RedisOptions { ConnectionString = connection, KeyPrefix = "cmicro:" + Guid.NewGuid().ToString("N")[..8] + ":" }),
            new FixedMonitor(new RateLimitingOptions()),
            NullLogger<RedisRateLimiter>.Instance);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _connection?.Dispose();
        _server?.Dispose();
    }

    [Benchmark(Description = "InProcessRateLimiter acquire + release (8 rules)")]
    public async Task<bool> InProcess()
    {
        var decision = await _inProcess.AcquireAsync(Request());
        await _inProcess.ReleaseAsync(decision.Lease!, 8);
        return decision.IsAllowed;
    }

    [Benchmark(Description = "RedisRateLimiter acquire + release (8 rules, loopback)")]
    public async Task<bool> Redis()
    {
        var decision = await _redis!.AcquireAsync(Request());
        await _redis.ReleaseAsync(decision.Lease!, 8);
        return decision.IsAllowed;
    }

    private RateLimitRequest Request() => new()
    {
        RequestId = "req_" + Interlocked.Increment(ref _next).ToString(System.Globalization.CultureInfo.InvariantCulture),
        HashTag = "org_bench",
        Partitions = _partitions,
        Tokens = 16,
    };

    private sealed class FixedMonitor(RateLimitingOptions value) : IOptionsMonitor<RateLimitingOptions>
    {
        public RateLimitingOptions CurrentValue => value;

        public RateLimitingOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<RateLimitingOptions, string?> listener) => null;
    }
}
