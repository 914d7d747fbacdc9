using System.Text;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.Logging;
using static Cortensor.Portal.Fleet.Tests.Protocols.ProtocolTestSupport;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

public sealed class CortensorSseParserTests
{
    private static Task<List<RouterStreamChunk>> ParseAsync(string sse, bool stopAtFinishReason = true, ILogger? logger = null) =>
        ToListAsync(new CortensorSseParser(logger, stopAtFinishReason).ParseAsync(Utf8(sse)));

    private static string Texts(IEnumerable<RouterStreamChunk> chunks) => string.Concat(chunks.Select(c => c.Text));

    [Fact]
    public async Task ParseAsync_DoneSentinel_EndsStreamAndIgnoresLaterData()
    {
        var chunks = await ParseAsync(
            "data: {\"choices\":[{\"text\":\"Hel\"}]}\n\n" +
            "data: {\"choices\":[{\"text\":\"lo\"}]}\n\n" +
            "data: [DONE]\n\n" +
            "data: {\"choices\":[{\"text\":\" after done\"}]}\n\n");

        Assert.Equal(["Hel", "lo"], chunks.Select(c => c.Text));
        Assert.All(chunks, c => Assert.Null(c.FinishReason));
    }

    [Fact]
    public async Task ParseAsync_NoDoneSentinel_EndsAtEofWithAllChunks()
    {
        var chunks = await ParseAsync(
            "data: {\"choices\":[{\"text\":\"a\"}]}\n\n" +
            "data: {\"choices\":[{\"text\":\"b\"}]}\n\n" +
            "data: {\"choices\":[{\"text\":\"c\"}]}");

        Assert.Equal("abc", Texts(chunks));
    }

    [Fact]
    public async Task ParseAsync_FinishReason_EmitsItsTextThenIgnoresLaterData()
    {
        var chunks = await ParseAsync(
            "data: {\"choices\":[{\"text\":\"Hi\",\"finish_reason\":null}]}\n\n" +
            "data: {\"choices\":[{\"text\":\"!\",\"finish_reason\":\"stop\"}]}\n\n" +
            "data: {\"choices\":[{\"text\":\" ignored\",\"finish_reason\":null}]}\n\n" +
            "data: [DONE]\n\n");

        Assert.Equal(2, chunks.Count);
        Assert.Equal("Hi!", Texts(chunks));
        Assert.Equal(new RouterStreamChunk("!", "stop"), chunks[1]);
    }

    [Fact]
    public async Task ParseAsync_FinishReasonWhenNotStoppingAtIt_ReadsOnToUsageChunk()
    {
        var chunks = await ParseAsync(
            "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n" +
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n" +
            "data: [DONE]\n\n",
            stopAtFinishReason: false);

        Assert.Equal(2, chunks.Count);
        Assert.Equal("stop", chunks[0].FinishReason);
        Assert.Equal(new RouterUsage(3, 1), chunks[1].Usage);
    }

    [Fact]
    public async Task ParseAsync_CrlfLineEndings_ParsesEveryChunk()
    {
        var chunks = await ParseAsync(
            "data: {\"choices\":[{\"text\":\"one\"}]}\r\n\r\n" +
            "data: {\"choices\":[{\"text\":\" two\"}]}\r\n\r\n" +
            "data: [DONE]\r\n\r\n");

        Assert.Equal(["one", " two"], chunks.Select(c => c.Text));
    }

    [Fact]
    public async Task ParseAsync_CommentEventIdAndRetryLines_AreIgnored()
    {
        var chunks = await ParseAsync(
            ": keep-alive\n\n" +
            "event: message\n" +
            "id: 17\n" +
            "retry: 1000\n" +
            "data: {\"choices\":[{\"text\":\"x\"}]}\n\n" +
            ":another comment\n" +
            "data:{\"choices\":[{\"text\":\"y\"}]}\n\n");

        Assert.Equal(["x", "y"], chunks.Select(c => c.Text));
    }

    /// <summary>Reads until the end or the first failure; returns what was passed on and the failure, if any.</summary>
    private static async Task<(List<RouterStreamChunk> Chunks, RouterException? Failure)> ParseUntilFailureAsync(string sse, string? clientReference = null)
    {
        var chunks = new List<RouterStreamChunk>();
        try
        {
            await foreach (var chunk in new CortensorSseParser(clientReference: clientReference).ParseAsync(Utf8(sse)))
            {
                chunks.Add(chunk);
            }
        }
        catch (RouterException ex)
        {
            return (chunks, ex);
        }

        return (chunks, null);
    }

    [Fact]
    public async Task ParseAsync_AnotherTaskIdMidStream_FailsAndNeverPassesItOn()
    {
        // A task id names one task (all its miners), so another task id is another request's text.
        var (chunks, failure) = await ParseUntilFailureAsync(
            "data: {\"task_id\":7,\"choices\":[{\"text\":\"A1 \"}]}\n\n" +
            "data: {\"task_id\":7,\"choices\":[{\"text\":\"A2 \"}]}\n\n" +
            "data: {\"task_id\":8,\"choices\":[{\"text\":\"SOMEONE ELSE\"}]}\n\n" +
            "data: {\"task_id\":7,\"choices\":[{\"text\":\"A3\",\"finish_reason\":\"stop\"}]}\n\n");

        Assert.Equal("A1 A2 ", Texts(chunks));
        Assert.NotNull(failure);
        Assert.Equal(RouterFailureKind.BadResponse, failure.Kind);
        Assert.DoesNotContain("SOMEONE", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ParseAsync_FirstChunkOfAnotherTaskAfterLock_FailsBeforeAnythingElse()
    {
        var (chunks, failure) = await ParseUntilFailureAsync(
            "data: {\"task_id\":\"41\",\"choices\":[{\"text\":\"\"}]}\n\n" +
            "data: {\"task_id\":\"42\",\"choices\":[{\"text\":\"foreign\"}]}\n\n");

        Assert.Empty(chunks);
        Assert.NotNull(failure);
    }

    [Fact]
    public async Task ParseAsync_EchoedClientReferenceOfAnotherRequest_Fails()
    {
        var (chunks, failure) = await ParseUntilFailureAsync(
            "data: {\"client_reference\":\"req-1\",\"choices\":[{\"text\":\"mine \"}]}\n\n" +
            "data: {\"client_reference\":\"req-2\",\"choices\":[{\"text\":\"theirs\"}]}\n\n",
            clientReference: "req-1");

        Assert.Equal("mine ", Texts(chunks));
        Assert.NotNull(failure);
    }

    [Fact]
    public async Task ParseAsync_IdOnlyAndTaskIdOnlyChunksMixed_KeepsEveryChunkAndTheUsage()
    {
        // Some chunks carry task_id, others only id: the key must not change mid-stream and drop the usage chunk.
        var chunks = await ParseAsync(
            "data: {\"task_id\":12,\"choices\":[{\"text\":\"Hel\"}]}\n\n" +
            "data: {\"id\":\"cmpl-9\",\"choices\":[{\"text\":\"lo\"}]}\n\n" +
            "data: {\"task_id\":12,\"choices\":[{\"text\":\" you\"}]}\n\n" +
            "data: {\"id\":\"cmpl-9\",\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3}}\n\n");

        Assert.Equal("Hello you", Texts(chunks));
        Assert.Equal(new RouterUsage(4, 3), chunks[^1].Usage);
        Assert.Equal("stop", chunks[^1].FinishReason);
    }

    [Fact]
    public async Task ParseAsync_TwoMinersOfOneTask_KeepsTheFirstMinersChunks()
    {
        // Routers before PR #112 interleaved miners of one task: same task_id, their own ids.
        var chunks = await ParseAsync(
            "data: {\"id\":\"m-a\",\"task_id\":7,\"choices\":[{\"text\":\"A1 \"}]}\n\n" +
            "data: {\"id\":\"m-b\",\"task_id\":7,\"choices\":[{\"text\":\"B1 \"}]}\n\n" +
            "data: {\"id\":\"m-a\",\"task_id\":7,\"choices\":[{\"text\":\"A2\"}]}\n\n" +
            "data: {\"id\":\"m-b\",\"task_id\":7,\"choices\":[{\"text\":\"B2\",\"finish_reason\":\"stop\"}]}\n\n" +
            "data: {\"id\":\"m-a\",\"task_id\":7,\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n");

        Assert.Equal("A1 A2", Texts(chunks));
        Assert.Equal("stop", chunks[^1].FinishReason);
    }

    [Fact]
    public async Task ParseAsync_InterleavedIdsWithoutTaskId_LocksOntoFirstId()
    {
        var chunks = await ParseAsync(
            "data: {\"id\":\"m-a\",\"choices\":[{\"text\":\"a\"}]}\n\n" +
            "data: {\"id\":\"m-b\",\"choices\":[{\"text\":\"b\"}]}\n\n" +
            "data: {\"id\":\"m-a\",\"choices\":[{\"text\":\"a\"}]}\n\n");

        Assert.Equal("aa", Texts(chunks));
    }

    [Fact]
    public async Task ParseAsync_DeltaContentAndTopLevelFields_AreFallbacksForText()
    {
        var chunks = await ParseAsync(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"d\"}}]}\n\n" +
            "data: {\"content\":\"c\"}\n\n" +
            "data: {\"text\":\"t\"}\n\n" +
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n");

        Assert.Equal(["d", "c", "t"], chunks.Select(c => c.Text));
    }

    [Fact]
    public async Task ParseAsync_MalformedDataLine_IsSkippedAndLoggedAtDebug()
    {
        var logger = new ListLogger<CortensorSseParserTests>();
        var chunks = await ParseAsync(
            "data: {\"choices\":[{\"text\":\"good\"}]}\n\n" +
            "data: {\"choices\":[{\"text\":\n\n" +
            "data: not json at all\n\n" +
            "data: {\"choices\":[{\"text\":\" still good\"}]}\n\n" +
            "data: [DONE]\n\n",
            logger: logger);

        Assert.Equal("good still good", Texts(chunks));
        Assert.Equal(2, logger.Entries.Count(e => e.EventId.Id == 4060 && e.Level == LogLevel.Debug));
    }

    [Fact]
    public async Task ParseAsync_UsageInChunk_IsSurfacedOnTheChunk()
    {
        var chunks = await ParseAsync(
            "data: {\"choices\":[{\"text\":\"hi\"}]}\n\n" +
            "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}\n\n");

        Assert.Null(chunks[0].Usage);
        Assert.Equal(new RouterStreamChunk("", "length", new RouterUsage(12, 5)), chunks[1]);
    }

    [Fact]
    public async Task ParseAsync_ErrorPayload_ThrowsBadResponseWithRouterMessage()
    {
        var ex = await Assert.ThrowsAsync<RouterException>(() => ParseAsync(
            "data: {\"choices\":[{\"text\":\"partial\"}]}\n\n" +
            "data: {\"error\":{\"message\":\"miner disconnected\"}}\n\n"));

        Assert.Equal(RouterFailureKind.BadResponse, ex.Kind);
        Assert.Equal("miner disconnected", ex.RouterMessage);
    }

    [Fact]
    public async Task ParseAsync_StreamWithoutDataLines_ThrowsEmptyAnswer()
    {
        var ex = await Assert.ThrowsAsync<RouterException>(() => ParseAsync("<html><body>proxy page</body></html>\n"));

        Assert.Equal(RouterFailureKind.EmptyAnswer, ex.Kind);
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\r")]
    public async Task ParseAsync_OneByteAtATime_CutsLinesAndMultiByteCharactersAcrossReads(string newline)
    {
        var sse = $"data: {{\"choices\":[{{\"text\":\"héllo \u00e9t\u00e9 ✓\"}}]}}{newline}{newline}" +
                  $"data: {{\"choices\":[{{\"text\":\" 日本\"}}]}}{newline}{newline}" +
                  $"data: [DONE]{newline}{newline}";

        var chunks = await ToListAsync(new CortensorSseParser().ParseAsync(new TrickleStream(Encoding.UTF8.GetBytes(sse))));

        Assert.Equal(["héllo été ✓", " 日本"], chunks.Select(c => c.Text));
    }

    [Fact]
    public async Task ParseAsync_Utf8ByteOrderMark_IsSkipped()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes("data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: [DONE]\n\n")).ToArray();

        var chunks = await ToListAsync(new CortensorSseParser().ParseAsync(new TrickleStream(bytes)));

        Assert.Equal("a", Texts(chunks));
    }

    [Fact]
    public async Task ParseAsync_LineLongerThanTheLimit_ThrowsBadResponse()
    {
        var sse = "data: {\"choices\":[{\"text\":\"" + new string('x', CortensorSseParser.MaxLineBytes + 10) + "\"}]}\n\n";

        var ex = await Assert.ThrowsAsync<RouterException>(() => ParseAsync(sse));

        Assert.Equal(RouterFailureKind.BadResponse, ex.Kind);
    }

    [Fact]
    public async Task ParseAsync_WhitespaceAroundData_IsIgnored()
    {
        var chunks = await ParseAsync("data:{\"choices\":[{\"text\":\"x\"}]}   \n\ndata:\t[DONE] \n\ndata: {\"choices\":[{\"text\":\"late\"}]}\n\n");

        Assert.Equal("x", Texts(chunks));
    }

    /// <summary>Hands out one byte per read, so every line, and every multi-byte character, arrives in pieces.</summary>
    private sealed class TrickleStream(byte[] data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_position >= data.Length || buffer.IsEmpty)
            {
                return 0;
            }

            buffer[0] = data[_position++];
            return 1;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            return Read(buffer.Span);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
