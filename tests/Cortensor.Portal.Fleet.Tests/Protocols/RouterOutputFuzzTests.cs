using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Cortensor.Portal.Fleet.Protocols;
using CsCheck;
using static Cortensor.Portal.Fleet.Tests.Protocols.ProtocolTestSupport;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

/// <summary>
/// Random and mutated router output (SSE streams and JSON bodies: truncated, wrong types, invalid UTF-8, huge lines,
/// missing fields, interleaved task ids, [DONE] in odd places) through the real parsers and clients. Whatever the
/// router sends, the caller gets a clean result or a <see cref="RouterException"/> (which the gateway answers with a
/// 502-class error), never another exception; and a result never carries negative or overflowing token counts.
/// </summary>
public sealed class RouterOutputFuzzTests
{
    /// <summary>JSON values of the wrong (and right) types for any field.</summary>
    private static readonly Gen<string> AnyValue = Gen.OneOf(
        "null", "true", "0", "-1", "7", "1.5", "-2147483649", "2147483648", "1e400", "-1e400", "1e30", "\"\"", "\"x\"",
        "\"\\ud800\"", "\"12\"", "[]", "[1]", "{}", "{\"a\":1}", "\"caf\u00e9 \u2603\"");

    private static readonly Gen<string> Count = Gen.Frequency(
        (3, Gen.Int[0, 5000].Select(static n => n.ToString(System.Globalization.CultureInfo.InvariantCulture))),
        (2, AnyValue),
        (1, Gen.OneOf("2147483647", "-5", "4294967296", "1.7976931348623157e308", "-0", "3.999")));

    private static readonly Gen<string> Text = Gen.Frequency(
        (4, Gen.String[Gen.Char["a-z \n"], 0, 12].Select(static s => JsonString(s))),
        (2, AnyValue));

    private static readonly Gen<string> TaskId = Gen.Frequency(
        (3, Gen.OneOf("\"t1\"", "\"t2\"", "1", "2")),
        (1, AnyValue));

    private static readonly Gen<string> Usage = Gen.Frequency(
        (2, Gen.Select(Count, Count).Select(static c => $"{{\"prompt_tokens\":{c.Item1},\"completion_tokens\":{c.Item2}}}")),
        (1, AnyValue));

    /// <summary>A JSON object as routers send (or mangle) it: any subset of the fields, each of any type.</summary>
    private static readonly Gen<string> Object = Gen.Select(
            Gen.Select(Text, Text, Gen.OneOf("null", "\"stop\"", "\"length\"", "3", "{}"), TaskId, Usage, Text),
            Gen.Bool.Array[8])
        .Select(static x =>
        {
            var ((text, content, finish, task, usage, error), use) = x;
            var fields = new List<string>();
            var choice = new List<string>();
            if (use[0])
            {
                choice.Add($"\"text\":{text}");
            }

            if (use[1])
            {
                choice.Add($"\"delta\":{{\"content\":{content}}}");
                choice.Add($"\"message\":{{\"content\":{content}}}");
            }

            if (use[2])
            {
                choice.Add($"\"finish_reason\":{finish}");
            }

            if (use[3])
            {
                fields.Add(use[7] ? $"\"choices\":[{{{string.Join(',', choice)}}}]" : $"\"choices\":{text}");
            }
            else if (choice.Count > 0)
            {
                fields.AddRange(choice);
            }

            if (use[4])
            {
                fields.Add($"\"task_id\":{task}");
                fields.Add($"\"id\":{task}");
            }

            if (use[5])
            {
                fields.Add($"\"usage\":{usage}");
            }

            if (use[6])
            {
                fields.Add($"\"error\":{error}");
            }

            return "{" + string.Join(',', fields) + "}";
        });

    /// <summary>One JSON body: an object, a mangled one, or something that is not an object at all.</summary>
    private static readonly Gen<byte[]> JsonBody = Gen.Frequency(
        (6, Object.Select(static s => Encoding.UTF8.GetBytes(s))),
        (2, Gen.Select(Object, Gen.Int[0, 400]).Select(static x => Encoding.UTF8.GetBytes(x.Item1)[..Math.Min(x.Item2, Encoding.UTF8.GetByteCount(x.Item1))])),
        (1, AnyValue.Select(static s => Encoding.UTF8.GetBytes(s))),
        (1, Gen.Byte.Array[0, 64]),
        (1, Gen.Int[1, 3000].Select(static depth => Encoding.UTF8.GetBytes(new string('[', depth) + new string(']', depth)))),
        (1, Gen.OneOf<byte[]>([0x7B, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3A, 0x22, 0xFF, 0xFE, 0x22, 0x7D], [0x7B, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3A, 0x22, 0xC3, 0x22, 0x7D], [0x7B, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3A, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x7D])));

    /// <summary>One SSE line (without its ending).</summary>
    private static readonly Gen<byte[]> Line = Gen.Frequency(
        (80, JsonBody.Select(static b => Concat("data: "u8.ToArray(), b))),
        (20, Gen.OneOf("data: [DONE]", "data:[DONE]", "data: [DONE]  ", "data: [done]", "data: [DONE", "data:", "data", "", ": ping", "event: message", "id: 7", "retry: 10", "DATA: {}", "data:\t{\"text\":\"tab\"}").Select(static s => Encoding.UTF8.GetBytes(s))),
        (10, Gen.Byte.Array[0, 40]),
        (1, Gen.Int[0, 2].Select(static big => Concat("data: "u8.ToArray(), Encoding.UTF8.GetBytes(new string('a', CortensorSseParser.MaxLineBytes - 10 + (big * 20)))))));

    private static readonly Gen<byte[]> Ending = Gen.OneOf("\n"u8.ToArray(), "\r\n"u8.ToArray(), "\r"u8.ToArray(), "\n\n"u8.ToArray());

    /// <summary>A whole stream: optional byte order mark, lines with mixed endings, then random byte damage.</summary>
    private static readonly Gen<byte[]> Stream = Gen.Select(Gen.Bool, Gen.Select(Line, Ending).Array[0, 12], Gen.Select(Gen.Int[0, 4], Gen.Int, Gen.Byte).Array[0, 3])
        .Select(static x =>
        {
            var (bom, lines, damage) = x;
            var bytes = new List<byte>();
            if (bom)
            {
                bytes.AddRange([0xEF, 0xBB, 0xBF]);
            }

            foreach (var (line, ending) in lines)
            {
                bytes.AddRange(line);
                bytes.AddRange(ending);
            }

            foreach (var (kind, at, value) in damage)
            {
                if (bytes.Count == 0)
                {
                    break;
                }

                var i = (int)((uint)at % (uint)bytes.Count);
                switch (kind)
                {
                    case 0: bytes[i] = value; break; // flip
                    case 1: bytes.Insert(i, value); break;
                    case 2: bytes.RemoveAt(i); break;
                    case 3: bytes.RemoveRange(i, bytes.Count - i); break; // truncate
                    default: bytes.InsertRange(i, "\ndata: [DONE]\n"u8.ToArray()); break;
                }
            }

            return bytes.ToArray();
        });

    [Fact]
    public async Task SseParser_AnyStream_ChunksOrRouterException()
    {
        await Gen.Select(Stream, Gen.Bool, Gen.Int[1, 700]).SampleAsync(
            async (bytes, stopAtFinishReason, readSize) =>
            {
                var parser = new CortensorSseParser(logger: null, stopAtFinishReason);
                // Megabyte lines in bigger reads: a few bytes at a time would only make the run long.
                var stream = new TrickleStream(bytes, bytes.Length > 100_000 ? readSize * 100 : readSize);
                await AssertCleanAsync(() => ToListAsync(parser.ParseAsync(stream)));
            },
            iter: 400,
            threads: 1,
            print: Print);
    }

    [Fact]
    public async Task CortensorClient_AnyCompletionBody_CompletionOrRouterException()
    {
        await Gen.Select(JsonBody, Status, ContentType).SampleAsync(
            async (body, status, contentType) =>
            {
                var client = CortensorClient(Answer(body, status, contentType));
                var completion = await AssertCleanAsync(() => client.CompleteAsync(Target("http://router.test"), NewRequest(), CancellationToken.None));
                AssertUsage(completion?.Usage);
            },
            iter: 400,
            threads: 1,
            print: static x => $"HTTP {x.Item2} {x.Item3}: {Print(x.Item1)}");
    }

    [Fact]
    public async Task CortensorClient_AnyStreamAnswer_ChunksOrRouterException()
    {
        await Gen.Select(Gen.Frequency((3, Stream), (1, JsonBody)), Status, ContentType).SampleAsync(
            async (body, status, contentType) =>
            {
                var client = CortensorClient(Answer(body, status, contentType));
                await AssertCleanAsync(() => ToListAsync(client.StreamAsync(Target("http://router.test"), NewRequest(), CancellationToken.None)));
            },
            iter: 300,
            threads: 1,
            print: static x => $"HTTP {x.Item2} {x.Item3}: {Print(x.Item1)}");
    }

    [Fact]
    public async Task OpenAICompatibleClient_AnyAnswer_ResultOrRouterException()
    {
        await Gen.Select(Gen.Frequency((1, Stream), (1, JsonBody)), Status, ContentType, Gen.Bool).SampleAsync(
            async (body, status, contentType, stream) =>
            {
                var client = new OpenAICompatibleRouterClient(new HttpClient(Answer(body, status, contentType)), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<OpenAICompatibleRouterClient>.Instance);
                var target = OpenAITarget("http://upstream.test");
                if (stream)
                {
                    await AssertCleanAsync(() => ToListAsync(client.StreamAsync(target, NewRequest(), CancellationToken.None)));
                }
                else
                {
                    AssertUsage((await AssertCleanAsync(() => client.CompleteAsync(target, NewRequest(), CancellationToken.None)))?.Usage);
                }
            },
            iter: 300,
            threads: 1,
            print: static x => $"HTTP {x.Item2} {x.Item3} stream={x.Item4}: {Print(x.Item1)}");
    }

    [Theory]
    [InlineData("{\"choices\":[{\"text\":\"hi\"}],\"usage\":{\"prompt_tokens\":1e400,\"completion_tokens\":2}}")]
    [InlineData("{\"choices\":[{\"text\":\"hi\"}],\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":2}}")]
    [InlineData("{\"choices\":[{\"text\":\"hi\"}],\"usage\":{\"prompt_tokens\":2147483647,\"completion_tokens\":2147483647}}")]
    public async Task Completion_OutOfRangeUsage_IsClampedNotThrown(string body)
    {
        var client = CortensorClient(Answer(Encoding.UTF8.GetBytes(body), 200, "application/json"));

        var completion = await client.CompleteAsync(Target("http://router.test"), NewRequest(), CancellationToken.None);

        Assert.Equal("hi", completion.Text);
        AssertUsage(completion.Usage);
    }

    [Fact]
    public async Task SseParser_LoneSurrogateAndInvalidUtf8_BecomeReplacementCharacters()
    {
        byte[] stream =
        [
            .. "data: {\"choices\":[{\"text\":\"a\\ud800b\\n\"}]}\n"u8,
            .. "data: {\"choices\":[{\"text\":\""u8, 0xFF, .. " \\ud83d\\ude00\\\"q\\\\\\u00e9\"}]}\n"u8,
            .. "data: [DONE]\n"u8,
        ];

        var chunks = await ToListAsync(new CortensorSseParser().ParseAsync(new MemoryStream(stream)));

        Assert.Equal(["a\uFFFDb\n", "\uFFFD \U0001F600\"q\\\u00e9"], chunks.Select(static c => c.Text));
    }

    private static readonly Gen<int> Status = Gen.Frequency((6, Gen.Const(200)), (1, Gen.OneOf(201, 204, 400, 401, 404, 429, 500, 502, 503, 504)));

    private static readonly Gen<string> ContentType = Gen.OneOf("application/json", "text/event-stream", "text/plain", "application/problem+json", "text/html");

    /// <summary>Runs <paramref name="call"/>: its result, or null when it threw a <see cref="RouterException"/>; any other exception fails.</summary>
    private static async Task<T?> AssertCleanAsync<T>(Func<Task<T>> call)
        where T : class
    {
        T result;
        try
        {
            result = await call();
        }
        catch (RouterException)
        {
            return null;
        }

        if (result is IEnumerable<RouterStreamChunk> chunks)
        {
            foreach (var chunk in chunks)
            {
                Assert.NotNull(chunk.Text);
                AssertUsage(chunk.Usage);
            }
        }

        return result;
    }

    private static void AssertUsage(RouterUsage? usage)
    {
        if (usage is not null)
        {
            Assert.InRange(usage.PromptTokens, 0, int.MaxValue);
            Assert.InRange(usage.CompletionTokens, 0, int.MaxValue - usage.PromptTokens); // their sum fits an int
        }
    }

    private static DelegateHandler Answer(byte[] body, int status, string contentType) => new((_, _) =>
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        return Task.FromResult(new HttpResponseMessage((HttpStatusCode)status) { Content = content });
    });

    private static string JsonString(string value) => System.Text.Json.JsonSerializer.Serialize(value, FuzzJsonContext.Default.String);

    private static byte[] Concat(byte[] a, byte[] b) => [.. a, .. b];

    private static string Print(byte[] bytes) =>
        bytes.Length > 300 ? $"{bytes.Length} bytes: {Convert.ToHexString(bytes[..300])}…" : Convert.ToHexString(bytes);

    private static string Print((byte[] Bytes, bool Stop, int ReadSize) x) => $"stop={x.Stop} read={x.ReadSize}: {Print(x.Bytes)}";

    /// <summary>A body that arrives a few bytes per read, as a slow router's does.</summary>
    private sealed class TrickleStream(byte[] bytes, int readSize) : MemoryStream(bytes, writable: false)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, readSize)], cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            base.ReadAsync(buffer, offset, Math.Min(count, readSize), cancellationToken);
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class FuzzJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
