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
/// <item>Ownership: the stream locks onto the first <c>task_id</c> it carries; a chunk with another <c>task_id</c> (or a
/// <c>client_reference</c> other than ours) is someone else's text, so the stream fails with
/// <see cref="RouterException"/> (<see cref="RouterFailureKind.BadResponse"/>) and that chunk is never passed on. Chunks
/// without a <c>task_id</c> are kept (the router's own final chunk may carry only <c>id</c>).</item>
/// <item>Miners: older routers interleaved several miners' outputs of one task; the first <c>id</c> seen is locked too, and
/// chunks with another <c>id</c> are dropped. The two locks are separate, so a stream whose chunks carry only
/// <c>task_id</c> and only <c>id</c> by turns keeps every chunk.</item>
/// <item>A malformed data line is skipped and logged at debug level. A data payload <c>{"error":…}</c> without choices
/// ends the stream with <see cref="RouterException"/> (<see cref="RouterFailureKind.BadResponse"/>).</item>
/// </list>
/// </summary>
internal sealed partial class CortensorSseParser
{
    private readonly ILogger logger;
    private readonly bool stopAtFinishReason;
    private readonly string? clientReference;

    /// <param name="logger">Receives debug events (never the chunk text).</param>
    /// <param name="stopAtFinishReason">
    /// End the stream at the first non-null <c>finish_reason</c> (Cortensor routers). OpenAI-compatible upstreams send the
    /// usage chunk after the finish reason, so they read on to <c>[DONE]</c>.
    /// </param>
    /// <param name="clientReference">Our <c>client_reference</c>; a chunk echoing another one fails the stream.</param>
    public CortensorSseParser(ILogger? logger = null, bool stopAtFinishReason = true, string? clientReference = null)
    {
        this.logger = logger ?? NullLogger.Instance;
        this.stopAtFinishReason = stopAtFinishReason;
        this.clientReference = clientReference;
    }

    /// <summary>The longest line a router may send (a chunk is a few hundred bytes); a longer one fails the stream.</summary>
    public const int MaxLineBytes = 1 << 20;

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>
    /// Yields the chunks of <paramref name="stream"/> (which stays open). A stream without any <c>data:</c> line throws
    /// <see cref="RouterException"/> (<see cref="RouterFailureKind.EmptyAnswer"/>) at EOF; a line longer than
    /// <see cref="MaxLineBytes"/> throws <see cref="RouterFailureKind.BadResponse"/>.
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

        if (state.ForeignOwner is { } foreign)
        {
            throw new RouterException(
                RouterFailureKind.BadResponse,
                $"The router's stream switched to another {foreign} mid-stream; its text may belong to another request and was not passed on.");
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
            throw new RouterException(RouterFailureKind.EmptyAnswer, "The router's event stream ended without any data line.");
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

        if (!TryParseChunk(data, out var chunk, out var owner, out var error))
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

        if (clientReference is not null && owner.ClientReference is { } echoed && !string.Equals(echoed, clientReference, StringComparison.Ordinal))
        {
            Log.ForeignOwner(logger, "client_reference");
            state.ForeignOwner = "client_reference";
            state.Ended = true;
            return;
        }

        if (owner.TaskId is { } taskId)
        {
            if (state.LockedTaskId is null)
            {
                state.LockedTaskId = taskId;
                Log.StreamLocked(logger, taskId);
            }
            else if (!string.Equals(state.LockedTaskId, taskId, StringComparison.Ordinal))
            {
                Log.ForeignOwner(logger, "task_id");
                state.ForeignOwner = "task_id";
                state.Ended = true;
                return;
            }
        }

        if (owner.Id is { } id)
        {
            if (state.LockedId is null)
            {
                state.LockedId = id;
            }
            else if (!string.Equals(state.LockedId, id, StringComparison.Ordinal))
            {
                Log.ForeignChunkDropped(logger, id, state.LockedId);
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
        public string? LockedTaskId { get; set; }

        public string? LockedId { get; set; }

        /// <summary>Set when a chunk named another owner (<c>task_id</c> or <c>client_reference</c>): the stream fails.</summary>
        public string? ForeignOwner { get; set; }

        public bool SawData { get; set; }

        public bool Ended { get; set; }

        public string? Error { get; set; }
    }

    /// <summary>Who a chunk says it belongs to; any part may be missing.</summary>
    private readonly record struct ChunkOwner(string? TaskId, string? Id, string? ClientReference);

    private static bool TryParseChunk(ReadOnlySequence<byte> data, out RouterStreamChunk chunk, out ChunkOwner owner, out string? error)
    {
        chunk = default;
        owner = default;
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
            owner = new ChunkOwner(RouterHttp.GetScalar(root, "task_id"), RouterHttp.GetScalar(root, "id"), RouterHttp.GetScalar(root, "client_reference"));
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
            Message = "Dropped a router stream chunk with id {ChunkId} (another miner); the stream is locked onto id {LockedId}")]
        public static partial void ForeignChunkDropped(ILogger logger, string chunkId, string lockedId);

        [LoggerMessage(EventId = 4063, EventName = "RouterStreamForeignOwner", Level = LogLevel.Warning,
            Message = "A router stream chunk carried another {Field} than the stream's own; the stream fails and the chunk is not passed on")]
        public static partial void ForeignOwner(ILogger logger, string field);
    }
}
