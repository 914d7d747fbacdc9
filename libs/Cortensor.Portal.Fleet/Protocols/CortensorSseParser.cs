using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
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

    /// <summary>The longest line a router may send (a chunk is a few hundred bytes); a longer one fails the stream.</summary>
    public const int MaxLineBytes = 1 << 20;

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>
    /// Yields the chunks of <paramref name="stream"/> (which stays open). A stream without any <c>data:</c> line throws
    /// <see cref="RouterException"/> (<see cref="RouterFailureKind.BadResponse"/>) at EOF, and so does a line longer
    /// than <see cref="MaxLineBytes"/>.
    /// </summary>
    /// <remarks>
    /// Lines are cut and parsed as UTF-8 bytes straight from a small pooled buffer (no per-line strings, no decoder
    /// buffers held while a slow stream waits): an open stream holds one 2 KiB buffer between chunks.
    /// </remarks>
    public async IAsyncEnumerable<RouterStreamChunk> ParseAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 2048, minimumReadSize: 512, leaveOpen: true));
        var state = new ParseState();
        var ready = new Queue<RouterStreamChunk>();
        try
        {
            var first = true;
            while (!state.Ended)
            {
                var result = await reader.ReadAsync(cancellationToken);
                var buffer = result.Buffer;
                if (first)
                {
                    if (buffer.Length < Utf8Bom.Length && !result.IsCompleted && buffer.FirstSpan.SequenceEqual(Utf8Bom[..(int)buffer.Length]))
                    {
                        reader.AdvanceTo(buffer.Start, buffer.End); // could still be a byte order mark: wait for more
                        continue;
                    }

                    first = false;
                    if (buffer.FirstSpan.StartsWith(Utf8Bom))
                    {
                        buffer = buffer.Slice(Utf8Bom.Length);
                    }
                }

                while (!state.Ended && TryReadLine(ref buffer, result.IsCompleted, out var line))
                {
                    if (line.Length > MaxLineBytes)
                    {
                        throw TooLong();
                    }

                    HandleLine(line, state, ready);
                }

                if (!state.Ended && buffer.Length > MaxLineBytes)
                {
                    throw TooLong();
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                while (ready.TryDequeue(out var chunk))
                {
                    yield return chunk;
                }

                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        finally
        {
            await reader.CompleteAsync();
        }

        if (state.Error is { } error)
        {
            throw new RouterException(RouterFailureKind.BadResponse, "The router reported an error inside its stream.")
            {
                RouterMessage = error,
            };
        }

        if (!state.SawData)
        {
            throw new RouterException(RouterFailureKind.BadResponse, "The router's event stream ended without any data line.");
        }
    }

    private static RouterException TooLong() =>
        new(RouterFailureKind.BadResponse, $"The router sent a stream line longer than {MaxLineBytes} bytes.");

    /// <summary>
    /// Cuts the next line off <paramref name="buffer"/>. A line ends at LF or CR (so CRLF leaves an empty line, which,
    /// like every blank separator, is skipped); at the end of the stream the rest is a line too.
    /// </summary>
    private static bool TryReadLine(ref ReadOnlySequence<byte> buffer, bool isCompleted, out ReadOnlySequence<byte> line)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (reader.TryReadToAny(out line, "\n\r"u8, advancePastDelimiter: true))
        {
            buffer = buffer.Slice(reader.Position);
            return true;
        }

        if (isCompleted && !buffer.IsEmpty)
        {
            line = buffer;
            buffer = buffer.Slice(buffer.End);
            return true;
        }

        line = default;
        return false;
    }

    private void HandleLine(ReadOnlySequence<byte> line, ParseState state, Queue<RouterStreamChunk> ready)
    {
        if (line.Length < 5)
        {
            return; // blank separators and anything too short to be data
        }

        Span<byte> head = stackalloc byte[5];
        line.Slice(0, 5).CopyTo(head);
        if (!head.SequenceEqual("data:"u8))
        {
            // ":" comments, event:, id:, retry: and anything else that is not data.
            return;
        }

        state.SawData = true;
        var data = Trim(line.Slice(5));
        if (data.IsEmpty)
        {
            return;
        }

        if (data.Length == 6 && IsDone(data))
        {
            state.Ended = true;
            return;
        }

        if (!TryParseChunk(data, out var chunk, out var key, out var error))
        {
            Log.MalformedDataLine(logger, (int)data.Length);
            return;
        }

        if (error is not null)
        {
            state.Error = error;
            state.Ended = true;
            return;
        }

        if (key is not null)
        {
            if (state.LockedKey is null)
            {
                state.LockedKey = key;
                Log.StreamLocked(logger, key);
            }
            else if (!string.Equals(state.LockedKey, key, StringComparison.Ordinal))
            {
                Log.ForeignChunkDropped(logger, key, state.LockedKey);
                return;
            }
        }

        if (chunk.Text.Length > 0 || chunk.FinishReason is not null || chunk.Usage is not null)
        {
            ready.Enqueue(chunk);
        }

        if (stopAtFinishReason && chunk.FinishReason is not null)
        {
            state.Ended = true;
        }
    }

    private static bool IsDone(ReadOnlySequence<byte> data)
    {
        Span<byte> text = stackalloc byte[6];
        data.CopyTo(text);
        return text.SequenceEqual("[DONE]"u8);
    }

    private static ReadOnlySequence<byte> Trim(ReadOnlySequence<byte> value)
    {
        var reader = new SequenceReader<byte>(value);
        var leading = reader.AdvancePastAny((byte)' ', (byte)'\t');
        value = value.Slice(leading);
        while (!value.IsEmpty)
        {
            var last = value.Slice(value.Length - 1).FirstSpan[0];
            if (last is not ((byte)' ' or (byte)'\t'))
            {
                break;
            }

            value = value.Slice(0, value.Length - 1);
        }

        return value;
    }

    /// <summary>What the parser knows about its stream so far.</summary>
    private sealed class ParseState
    {
        public string? LockedKey { get; set; }

        public bool SawData { get; set; }

        public bool Ended { get; set; }

        public string? Error { get; set; }
    }

    private static bool TryParseChunk(ReadOnlySequence<byte> data, out RouterStreamChunk chunk, out string? key, out string? error)
    {
        chunk = default;
        key = null;
        error = null;
        JsonDocument document;
        try
        {
            // Parsed in place (the document is disposed before the buffer is released).
            document = JsonDocument.Parse(data);
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
                error = RouterHttp.ExtractErrorMessage(RouterHttp.RawText(root), apiKey: null, prompt: null) ?? "error";
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
