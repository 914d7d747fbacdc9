using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>
/// Reads a router's server-sent event stream into <see cref="RouterStreamChunk"/>s, tolerating the quirks seen on
/// Cortensor routers:
/// <list type="bullet">
/// <item>LF, CRLF or CR line endings; blank lines optional; <c>:</c> comments and <c>event:</c>/<c>id:</c>/<c>retry:</c> lines ignored.</item>
/// <item>The end is <c>data: [DONE]</c>, a non-null <c>finish_reason</c> (its text is still emitted), or EOF.</item>
/// <item>The text is <c>choices[0].text</c>, else <c>choices[0].delta.content</c>, else top-level <c>content</c> / <c>text</c>.</item>
/// <item>Several miners may share one stream: the parser locks onto the first <c>task_id</c> (or <c>id</c> when there is
/// no task id) and drops chunks with another key.</item>
/// <item>A malformed data line is skipped and logged at debug level. A data payload <c>{"error":…}</c> without choices
/// ends the stream with <see cref="RouterException"/> (<see cref="RouterFailureKind.BadResponse"/>).</item>
/// </list>
/// </summary>
internal sealed partial class CortensorSseParser
{
    private readonly ILogger logger;
    private readonly bool stopAtFinishReason;

    /// <param name="logger">Receives debug events (never the chunk text).</param>
    /// <param name="stopAtFinishReason">
    /// End the stream at the first non-null <c>finish_reason</c> (Cortensor routers). OpenAI-compatible upstreams send the
    /// usage chunk after the finish reason, so they read on to <c>[DONE]</c>.
    /// </param>
    public CortensorSseParser(ILogger? logger = null, bool stopAtFinishReason = true)
    {
        this.logger = logger ?? NullLogger.Instance;
        this.stopAtFinishReason = stopAtFinishReason;
    }

    /// <summary>
    /// Yields the chunks of <paramref name="stream"/> (which stays open). A stream without any <c>data:</c> line throws
    /// <see cref="RouterException"/> (<see cref="RouterFailureKind.BadResponse"/>) at EOF.
    /// </summary>
    public async IAsyncEnumerable<RouterStreamChunk> ParseAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 4096, leaveOpen: true);
        string? lockedKey = null;
        var sawData = false;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal))
            {
                // Blank separators, ":" comments, event:, id:, retry: and anything else that is not data.
                continue;
            }

            sawData = true;
            var data = line.AsSpan(5).Trim();
            if (data.Length == 0)
            {
                continue;
            }

            if (data.SequenceEqual("[DONE]"))
            {
                yield break;
            }

            if (!TryParseChunk(data, out var chunk, out var key, out var error))
            {
                Log.MalformedDataLine(logger, data.Length);
                continue;
            }

            if (error is not null)
            {
                throw new RouterException(RouterFailureKind.BadResponse, "The router reported an error inside its stream.")
                {
                    RouterMessage = error,
                };
            }

            if (key is not null)
            {
                if (lockedKey is null)
                {
                    lockedKey = key;
                    Log.StreamLocked(logger, key);
                }
                else if (!string.Equals(lockedKey, key, StringComparison.Ordinal))
                {
                    Log.ForeignChunkDropped(logger, key, lockedKey);
                    continue;
                }
            }

            if (chunk.Text.Length > 0 || chunk.FinishReason is not null || chunk.Usage is not null)
            {
                yield return chunk;
            }

            if (stopAtFinishReason && chunk.FinishReason is not null)
            {
                yield break;
            }
        }

        if (!sawData)
        {
            throw new RouterException(RouterFailureKind.BadResponse, "The router's event stream ended without any data line.");
        }
    }

    private static bool TryParseChunk(ReadOnlySpan<char> data, out RouterStreamChunk chunk, out string? key, out string? error)
    {
        chunk = default;
        key = null;
        error = null;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(data.ToString());
        }
        catch (JsonException)
        {
            return false;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            var hasChoice = RouterHttp.TryGetFirstChoice(root, out var choice);
            if (!hasChoice && root.TryGetProperty("error", out _))
            {
                error = RouterHttp.ExtractErrorMessage(root.GetRawText(), apiKey: null, prompt: null) ?? "error";
                return true;
            }

            string? text = null;
            string? finishReason = null;
            if (hasChoice)
            {
                text = RouterHttp.GetString(choice, "text");
                if (text is null && choice.TryGetProperty("delta", out var delta) && delta.ValueKind == JsonValueKind.Object)
                {
                    text = RouterHttp.GetString(delta, "content");
                }

                finishReason = RouterHttp.GetString(choice, "finish_reason");
            }

            text ??= RouterHttp.GetString(root, "content") ?? RouterHttp.GetString(root, "text");
            finishReason ??= RouterHttp.GetString(root, "finish_reason");
            key = RouterHttp.GetScalar(root, "task_id") ?? RouterHttp.GetScalar(root, "id");
            chunk = new RouterStreamChunk(text ?? "", finishReason, RouterHttp.ReadUsage(root));
            return true;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4060, EventName = "RouterStreamMalformedDataLine", Level = LogLevel.Debug,
            Message = "Skipped a malformed data line ({Length} chars) in a router event stream")]
        public static partial void MalformedDataLine(ILogger logger, int length);

        [LoggerMessage(EventId = 4061, EventName = "RouterStreamLocked", Level = LogLevel.Debug,
            Message = "Router event stream locked onto task {TaskKey}")]
        public static partial void StreamLocked(ILogger logger, string taskKey);

        [LoggerMessage(EventId = 4062, EventName = "RouterStreamForeignChunkDropped", Level = LogLevel.Debug,
            Message = "Dropped a router stream chunk of task {TaskKey}; the stream is locked onto task {LockedTaskKey}")]
        public static partial void ForeignChunkDropped(ILogger logger, string taskKey, string lockedTaskKey);
    }
}
