using System.Net;
using System.Net.Http.Headers;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using static Cortensor.Portal.Fleet.Tests.Protocols.ProtocolTestSupport;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

public sealed class CortensorRouterClientStreamingTests : IDisposable
{
    private const string PathForm = "/api/v1/completions/42";

    private const string SseBody =
        "data: {\"id\":\"cmpl-1\",\"task_id\":5,\"choices\":[{\"text\":\"The \",\"finish_reason\":null}]}\n\n" +
        "data: {\"id\":\"cmpl-2\",\"task_id\":5,\"choices\":[{\"text\":\"OTHER MINER \",\"finish_reason\":null}]}\n\n" +
        "data: {\"id\":\"cmpl-1\",\"task_id\":5,\"choices\":[{\"text\":\"answer\",\"finish_reason\":null}]}\n\n" +
        "data: {\"id\":\"cmpl-1\",\"task_id\":5,\"choices\":[{\"text\":\".\",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}\n\n" +
        "data: [DONE]\n\n";

    private readonly WireMockServer server = StartServer();

    public void Dispose() => server.Stop();

    private void Answer(string path, string body, int status = 200, string contentType = "text/event-stream") =>
        server.Given(Request.Create().WithPath(path).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body));

    [Fact]
    public async Task StreamAsync_EventStreamBody_YieldsLockedChunksAndSendsStreamRequest()
    {
        Answer(PathForm, SseBody);

        var chunks = await ToListAsync(CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal("The answer.", string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(new RouterStreamChunk(".", "stop", new RouterUsage(9, 3)), chunks[^1]);
        var entry = Assert.Single(server.LogEntries);
        Assert.Equal("text/event-stream", Header(entry, "Accept"));
        Assert.Equal("Bearer " + ApiKey, Header(entry, "Authorization"));
        Assert.True(Body(entry).GetProperty("stream").GetBoolean());
        Assert.Equal("req-0001", Body(entry).GetProperty("client_reference").GetString());
    }

    [Fact]
    public async Task StreamAsync_NotEnumerated_SendsNothing()
    {
        Answer(PathForm, SseBody);

        _ = CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None);
        await Task.Delay(100);

        Assert.Empty(server.LogEntries);
    }

    [Fact]
    public async Task StreamAsync_JsonAnswerToStreamRequest_YieldsOneChunkWithFinishReason()
    {
        Answer(PathForm, """{"choices":[{"text":"whole answer","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":7}}""", contentType: "application/json");

        var chunks = await ToListAsync(CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        var chunk = Assert.Single(chunks);
        Assert.Equal(new RouterStreamChunk("whole answer", "length", new RouterUsage(2, 7)), chunk);
    }

    [Theory]
    [InlineData("data: [DONE]\n\n")] // only the end marker
    [InlineData("data: not json\n\ndata: {broken\n\n")] // only unreadable data lines
    [InlineData("data: not json\n\ndata: [DONE]\n\n")]
    [InlineData("data: {\"choices\":[{\"text\":\"\",\"finish_reason\":null}]}\n\ndata: [DONE]\n\n")] // only empty text
    [InlineData("data: {\"choices\":[{\"text\":\"\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":0}}\n\n")] // usage, no answer
    [InlineData("")] // an empty 200 body
    [InlineData(": keep-alive\n\n")] // comments only
    public async Task StreamAsync_StreamWithoutTextOrFinishReason_ThrowsEmptyAnswerBeforeAnyChunk(string body)
    {
        Answer(PathForm, body);

        var chunks = new List<RouterStreamChunk>();
        var ex = await Assert.ThrowsAsync<RouterException>(async () =>
        {
            await foreach (var chunk in CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None))
            {
                chunks.Add(chunk);
            }
        });

        Assert.Equal(RouterFailureKind.EmptyAnswer, ex.Kind);
        Assert.Empty(chunks);
    }

    [Fact]
    public async Task StreamAsync_EmptyTextWithFinishReason_IsAValidAnswerCarryingEarlierUsage()
    {
        Answer(PathForm,
            "data: {\"choices\":[{\"text\":\"\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":0}}\n\n" +
            "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n");

        var chunks = await ToListAsync(CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal(new RouterStreamChunk("", "length", new RouterUsage(4, 0)), Assert.Single(chunks));
    }

    [Fact]
    public async Task StreamAsync_JsonAnswerWithEmptyTextAndNoFinishReason_ThrowsEmptyAnswer()
    {
        Answer(PathForm, """{"choices":[{"text":""}]}""", contentType: "application/json");

        var ex = await Assert.ThrowsAsync<RouterException>(() => ToListAsync(CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None)));

        Assert.Equal(RouterFailureKind.EmptyAnswer, ex.Kind);
    }

    [Fact]
    public async Task StreamAsync_ErrorStatusBeforeAnyChunk_ThrowsMappedRouterException()
    {
        Answer(PathForm, """{"error":{"message":"all miners busy"}}""", status: 503, contentType: "application/json");
        await using var enumerator = CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None).GetAsyncEnumerator();

        var ex = await Assert.ThrowsAsync<RouterException>(async () => await enumerator.MoveNextAsync());

        Assert.Equal(RouterFailureKind.Unavailable, ex.Kind);
        Assert.Equal(503, ex.StatusCode);
        Assert.Equal("all miners busy", ex.RouterMessage);
    }

    [Fact]
    public async Task StreamAsync_ConnectionDropsAfterChunks_ThrowsBadResponseFromMoveNext()
    {
        var handler = new DelegateHandler((_, _) => Task.FromResult<HttpResponseMessage>(EventStream(new StallingStream(
            "data: {\"choices\":[{\"text\":\"partial\"}]}\n\n", throwAfterPrefix: true))));
        await using var enumerator = CortensorClient(handler).StreamAsync(Target("http://router.test"), NewRequest(), CancellationToken.None).GetAsyncEnumerator();

        Assert.True(await enumerator.MoveNextAsync());
        Assert.Equal("partial", enumerator.Current.Text);
        var ex = await Assert.ThrowsAsync<RouterException>(async () => await enumerator.MoveNextAsync());

        Assert.Equal(RouterFailureKind.BadResponse, ex.Kind);
        Assert.IsType<IOException>(ex.InnerException);
    }

    [Fact]
    public async Task StreamAsync_TaskIdChangesMidStream_FailsWithBadResponseAndNeverYieldsTheForeignText()
    {
        Answer(PathForm,
            "data: {\"task_id\":5,\"choices\":[{\"text\":\"Mine \"}]}\n\n" +
            "data: {\"task_id\":6,\"choices\":[{\"text\":\"another customer's secret\"}]}\n\n" +
            "data: {\"task_id\":5,\"choices\":[{\"text\":\"end\",\"finish_reason\":\"stop\"}]}\n\n" +
            "data: [DONE]\n\n");
        var seen = new List<string>();
        await using var enumerator = CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None).GetAsyncEnumerator();

        var ex = await Assert.ThrowsAsync<RouterException>(async () =>
        {
            while (await enumerator.MoveNextAsync())
            {
                seen.Add(enumerator.Current.Text);
            }
        });

        Assert.Equal(["Mine "], seen);
        Assert.Equal(RouterFailureKind.BadResponse, ex.Kind);
        Assert.DoesNotContain("secret", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamAsync_ConnectionDropsBeforeAnyChunk_ThrowsUnavailable()
    {
        var handler = new DelegateHandler((_, _) => Task.FromResult<HttpResponseMessage>(EventStream(new StallingStream("", throwAfterPrefix: true))));
        await using var enumerator = CortensorClient(handler).StreamAsync(Target("http://router.test"), NewRequest(), CancellationToken.None).GetAsyncEnumerator();

        var ex = await Assert.ThrowsAsync<RouterException>(async () => await enumerator.MoveNextAsync());

        Assert.Equal(RouterFailureKind.Unavailable, ex.Kind);
    }

    [Fact]
    public async Task StreamAsync_BodyStallsPastHttpTimeout_ThrowsTimeoutOnInjectedTimeProvider()
    {
        var time = new FakeTimeProvider();
        var handler = new DelegateHandler((_, _) => Task.FromResult<HttpResponseMessage>(EventStream(new StallingStream("data: {\"choices\":[{\"text\":\"first\"}]}\n\n"))));
        var request = NewRequest(taskTimeoutSeconds: 10, slackSeconds: 5);
        await using var enumerator = CortensorClient(handler, time).StreamAsync(Target("http://router.test"), request, CancellationToken.None).GetAsyncEnumerator();

        Assert.True(await enumerator.MoveNextAsync());
        var next = enumerator.MoveNextAsync().AsTask();
        time.Advance(TimeSpan.FromSeconds(14));
        Assert.False(next.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));

        var ex = await Assert.ThrowsAsync<RouterException>(() => next);
        Assert.Equal(RouterFailureKind.Timeout, ex.Kind);
    }

    [Fact]
    public async Task StreamAsync_CallerCancelsMidStream_ThrowsOperationCanceled()
    {
        var handler = new DelegateHandler((_, _) => Task.FromResult<HttpResponseMessage>(EventStream(new StallingStream("data: {\"choices\":[{\"text\":\"first\"}]}\n\n"))));
        using var cts = new CancellationTokenSource();
        await using var enumerator = CortensorClient(handler).StreamAsync(Target("http://router.test"), NewRequest(), cts.Token).GetAsyncEnumerator();

        Assert.True(await enumerator.MoveNextAsync());
        var next = enumerator.MoveNextAsync().AsTask();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next);
    }

    [Fact]
    public async Task StreamAsync_EnumeratorDisposedEarly_DisposesResponseAndBody()
    {
        var body = new StallingStream("data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\"b\"}]}\n\n");
        var response = EventStream(body);
        var handler = new DelegateHandler((_, _) => Task.FromResult<HttpResponseMessage>(response));

        await foreach (var chunk in CortensorClient(handler).StreamAsync(Target("http://router.test"), NewRequest(), CancellationToken.None))
        {
            Assert.Equal("a", chunk.Text);
            break;
        }

        Assert.True(response.Disposed);
        Assert.True(body.Disposed);
    }

    private static TrackingResponse EventStream(Stream body)
    {
        var response = new TrackingResponse(HttpStatusCode.OK) { Content = new StreamContent(body) };
        response.Content.Headers.ContentType = new MediaTypeHeaderValue("text/event-stream");
        return response;
    }
}
