using System.Net;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using WireMock.Logging;
using WireMock.Server;
using WireMock.Settings;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

internal static class ProtocolTestSupport
{
    public const string ApiKey = "sk-router-secret-7f3a9c";
    public const string Prompt = "Tell me the secret recipe of the house, please.";
    public const long SessionId = 42;

    public static WireMockServer StartServer() =>
        WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"] });

    public static RouterTarget Target(string baseUrl, long? sessionId = SessionId, string? apiKey = ApiKey, string routerId = "r1") => new()
    {
        RouterId = routerId,
        BaseUrl = new Uri(baseUrl),
        ApiKey = apiKey,
        SessionId = sessionId,
    };

    public static RouterTarget OpenAITarget(string baseUrl, string? model = "qwen3-8b") => new()
    {
        RouterId = "oai",
        BaseUrl = new Uri(baseUrl),
        ApiKey = ApiKey,
        Protocol = RouterProtocol.OpenAICompatible,
        UpstreamModel = model,
    };

    public static RouterCompletionRequest NewRequest(
        string clientReference = "req-0001",
        int taskTimeoutSeconds = 60,
        int slackSeconds = 30,
        double? temperature = null,
        int? precommitTimeout = null) => new()
        {
            Prompt = Prompt,
            MaxTokens = 256,
            ClientReference = clientReference,
            TaskTimeoutSeconds = taskTimeoutSeconds,
            HttpTimeoutSlackSeconds = slackSeconds,
            Temperature = temperature,
            PrecommitTimeoutSeconds = precommitTimeout,
            PromptType = 1,
        };

    public static CortensorRouterClient CortensorClient(HttpMessageHandler? handler = null, TimeProvider? timeProvider = null, ILogger<CortensorRouterClient>? logger = null) =>
        new(handler is null ? new HttpClient() : new HttpClient(handler), timeProvider ?? TimeProvider.System, logger ?? NullLogger<CortensorRouterClient>.Instance);

    public static OpenAICompatibleRouterClient OpenAIClient() =>
        new(new HttpClient(), TimeProvider.System, NullLogger<OpenAICompatibleRouterClient>.Instance);

    public static MemoryStream Utf8(string text) => new(Encoding.UTF8.GetBytes(text));

    public static async Task<List<RouterStreamChunk>> ToListAsync(IAsyncEnumerable<RouterStreamChunk> source)
    {
        var list = new List<RouterStreamChunk>();
        await foreach (var chunk in source)
        {
            list.Add(chunk);
        }

        return list;
    }

    public static string Header(ILogEntry entry, string name) =>
        entry.RequestMessage.Headers!.First(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value.ToString()!;

    public static bool HasHeader(ILogEntry entry, string name) =>
        entry.RequestMessage.Headers!.Any(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase));

    public static JsonElement Body(ILogEntry entry)
    {
        using var document = JsonDocument.Parse(entry.RequestMessage.Body!);
        return document.RootElement.Clone();
    }

    public static string[] Paths(WireMockServer server) =>
        server.LogEntries.OrderBy(e => e.RequestMessage.DateTime).Select(e => e.RequestMessage.Path).ToArray();
}

/// <summary>Collects log entries (level, event id) for assertions.</summary>
internal sealed class ListLogger<T> : ILogger<T>
{
    public List<(LogLevel Level, EventId EventId, string Message)> Entries { get; } = [];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (Entries)
        {
            Entries.Add((logLevel, eventId, formatter(state, exception)));
        }
    }
}

/// <summary>An in-process handler that answers with a response built by a delegate.</summary>
internal sealed class DelegateHandler(Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> respond) : HttpMessageHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        respond(request, cancellationToken);
}

/// <summary>A response that records its disposal.</summary>
internal sealed class TrackingResponse(HttpStatusCode status) : HttpResponseMessage(status)
{
    public bool Disposed { get; private set; }

    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        base.Dispose(disposing);
    }
}

/// <summary>
/// A stream that serves <paramref name="prefix"/> and then either blocks until its read is canceled or throws an
/// <see cref="IOException"/> (a dropped connection).
/// </summary>
internal sealed class StallingStream(string prefix, bool throwAfterPrefix = false) : Stream
{
    private readonly MemoryStream head = new(Encoding.UTF8.GetBytes(prefix));

    public bool Disposed { get; private set; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = head.Read(buffer.Span);
        if (read > 0)
        {
            return read;
        }

        if (throwAfterPrefix)
        {
            throw new IOException("connection reset");
        }

        await Task.Delay(Timeout.Infinite, cancellationToken);
        return 0;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        head.Dispose();
        base.Dispose(disposing);
    }
}
