using System.Text.Json;
using Cortensor.Portal.Fleet.Protocols;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using static Cortensor.Portal.Fleet.Tests.Protocols.ProtocolTestSupport;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

public sealed class CortensorRouterClientTests : IDisposable
{
    private const string PathForm = "/api/v1/completions/42";
    private const string BodyForm = "/api/v1/completions";

    private const string OkBody =
        """{"id":"cmpl-1","object":"text_completion","created":1767225600,"model":"llama","choices":[{"text":"Forty-two.","index":0,"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15},"task_id":981}""";

    private readonly WireMockServer server = StartServer();

    public void Dispose() => server.Stop();

    private void Answer(string path, string body, int status = 200, string contentType = "application/json") =>
        server.Given(Request.Create().WithPath(path).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body));

    [Fact]
    public async Task CompleteAsync_PathForm_SendsDocumentedBodyAndBearerHeader()
    {
        Answer(PathForm, OkBody);
        var request = NewRequest(clientReference: "req-abc", temperature: 0.7) with { TopK = 40, Stop = ["<|eot_id|>"] };

        await CortensorClient().CompleteAsync(Target(server.Url!), request, CancellationToken.None);

        var entry = Assert.Single(server.LogEntries);
        Assert.Equal(PathForm, entry.RequestMessage.Path);
        Assert.Equal("Bearer " + ApiKey, Header(entry, "Authorization"));
        Assert.Equal("application/json", Header(entry, "Accept"));
        Assert.StartsWith("application/json", Header(entry, "Content-Type"), StringComparison.Ordinal);
        var body = Body(entry);
        Assert.Equal(Prompt, body.GetProperty("prompt").GetString());
        Assert.False(body.GetProperty("stream").GetBoolean());
        Assert.Equal(60, body.GetProperty("timeout").GetInt32());
        Assert.Equal(1, body.GetProperty("prompt_type").GetInt32());
        Assert.Equal("", body.GetProperty("prompt_template").GetString());
        Assert.Equal("req-abc", body.GetProperty("client_reference").GetString());
        Assert.Equal(256, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.7, body.GetProperty("temperature").GetDouble());
        Assert.Equal(40, body.GetProperty("top_k").GetInt32());
        Assert.Equal("<|eot_id|>", body.GetProperty("stop")[0].GetString());

        // Unset options are left out, and the path form carries no session_id.
        foreach (var absent in new[] { "session_id", "top_p", "presence_penalty", "frequency_penalty", "precommit_timeout" })
        {
            Assert.False(body.TryGetProperty(absent, out _), absent);
        }
    }

    [Fact]
    public async Task CompleteAsync_PrecommitTimeoutSetAndNoApiKey_SendsPrecommitAndNoAuthorization()
    {
        Answer(PathForm, OkBody);

        await CortensorClient().CompleteAsync(Target(server.Url!, apiKey: null), NewRequest(precommitTimeout: 90), CancellationToken.None);

        var entry = Assert.Single(server.LogEntries);
        Assert.False(HasHeader(entry, "Authorization"));
        Assert.Equal(90, Body(entry).GetProperty("precommit_timeout").GetInt32());
    }

    [Fact]
    public async Task CompleteAsync_TextCompletionBody_ReadsTextFinishReasonUsageAndTaskId()
    {
        Answer(PathForm, OkBody);

        var completion = await CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None);

        Assert.Equal("Forty-two.", completion.Text);
        Assert.Equal("stop", completion.FinishReason);
        Assert.Equal(new RouterUsage(11, 4), completion.Usage);
        Assert.Equal("981", completion.TaskId);
    }

    [Fact]
    public async Task CompleteAsync_UsageMissing_ReturnsNullUsage()
    {
        Answer(PathForm, """{"choices":[{"text":"hi","finish_reason":"stop"}],"task_id":"t-9"}""");

        var completion = await CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None);

        Assert.Equal("hi", completion.Text);
        Assert.Null(completion.Usage);
        Assert.Equal("t-9", completion.TaskId);
    }

    [Theory]
    [InlineData("""{"choices":[{"message":{"role":"assistant","content":"from message"}}]}""", "from message")]
    [InlineData("""{"text":"from text"}""", "from text")]
    [InlineData("""{"output":"from output"}""", "from output")]
    [InlineData("""{"result":"from result"}""", "from result")]
    [InlineData("""{"response":"from response"}""", "from response")]
    [InlineData("""{"completion":"from completion"}""", "from completion")]
    [InlineData("""{"choices":[{"text":"choice wins"}],"text":"top level loses"}""", "choice wins")]
    public async Task CompleteAsync_FallbackTextFields_ReadsText(string body, string expected)
    {
        Answer(PathForm, body);

        var completion = await CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None);

        Assert.Equal(expected, completion.Text);
    }

    [Theory]
    [InlineData("this is not json", "text/plain")]
    [InlineData("""{"id":"x","choices":[]}""", "application/json")]
    [InlineData("""{"status":"queued"}""", "application/json")]
    public async Task CompleteAsync_SuccessWithoutCompletionText_ThrowsBadResponse(string body, string contentType)
    {
        Answer(PathForm, body, contentType: contentType);

        var ex = await Assert.ThrowsAsync<RouterException>(() => CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.BadResponse, ex.Kind);
        Assert.Equal(200, ex.StatusCode);
    }

    [Fact]
    public async Task CompleteAsync_PathFormNotFound_ThrowsNotFoundAfterExactlyOnePost()
    {
        // Current routers accept both forms (installer PR #226): a 404 means an unknown session, not a wrong form.
        Answer(PathForm, """{"error":"unknown session 42"}""", status: 404);
        Answer(BodyForm, OkBody);

        var ex = await Assert.ThrowsAsync<RouterException>(() => CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.NotFound, ex.Kind);
        Assert.Equal(404, ex.StatusCode);
        Assert.Equal("unknown session 42", ex.RouterMessage);
        Assert.Equal([PathForm], Paths(server));
    }

    [Fact]
    public async Task StreamAsync_PathFormNotFound_ThrowsNotFoundAfterExactlyOnePost()
    {
        Answer(PathForm, "not here", status: 404, contentType: "text/plain");
        Answer(BodyForm, "data: {\"choices\":[{\"text\":\"hi\",\"finish_reason\":\"stop\"}]}\n\n", contentType: "text/event-stream");

        var ex = await Assert.ThrowsAsync<RouterException>(() => ToListAsync(CortensorClient().StreamAsync(Target(server.Url!), NewRequest(), CancellationToken.None)));

        Assert.Equal(RouterFailureKind.NotFound, ex.Kind);
        Assert.Equal([PathForm], Paths(server));
    }

    [Fact]
    public async Task CompleteAsync_BodyFormConfigured_PostsBodyFormOnlyWithIntegerSession()
    {
        Answer(BodyForm, OkBody);
        var target = Target(server.Url!) with { UrlForm = Cortensor.Portal.Fleet.Configuration.CortensorUrlForm.Body };

        var completion = await CortensorClient().CompleteAsync(target, NewRequest(clientReference: "req-1"), CancellationToken.None);

        Assert.Equal("Forty-two.", completion.Text);
        Assert.Equal([BodyForm], Paths(server));
        var body = Body(server.LogEntries.Single());
        Assert.Equal(JsonValueKind.Number, body.GetProperty("session_id").ValueKind);
        Assert.Equal(SessionId, body.GetProperty("session_id").GetInt64());
    }

    [Fact]
    public async Task CompleteAsync_BodyFormNotFound_DoesNotTryPathForm()
    {
        Answer(BodyForm, """{"error":"unknown session"}""", status: 404);
        Answer(PathForm, OkBody);
        var target = Target(server.Url!) with { UrlForm = Cortensor.Portal.Fleet.Configuration.CortensorUrlForm.Body };

        var ex = await Assert.ThrowsAsync<RouterException>(() => CortensorClient().CompleteAsync(target, NewRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.NotFound, ex.Kind);
        Assert.Equal([BodyForm], Paths(server));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" \n")]
    [InlineData("""{"choices":[{"text":"","index":0,"finish_reason":null}]}""")]
    [InlineData("""{"choices":[{"text":""}],"usage":{"prompt_tokens":5,"completion_tokens":0}}""")]
    [InlineData("""{"text":""}""")]
    public async Task CompleteAsync_SuccessWithEmptyAnswer_ThrowsEmptyAnswer(string body)
    {
        // Routers send some timeouts as an empty 200 (installer PR #167): an answer of nothing is a failure.
        Answer(PathForm, body);

        var ex = await Assert.ThrowsAsync<RouterException>(() => CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.EmptyAnswer, ex.Kind);
        Assert.Equal(200, ex.StatusCode);
    }

    [Fact]
    public async Task CompleteAsync_EmptyTextWithFinishReason_IsAValidAnswer()
    {
        Answer(PathForm, """{"choices":[{"text":"","finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":0}}""");

        var completion = await CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None);

        Assert.Equal("", completion.Text);
        Assert.Equal("length", completion.FinishReason);
    }

    [Fact]
    public async Task CompleteAsync_BaseUrlWithTrailingSlashAndApiVersion_BuildsVersionedPath()
    {
        Answer("/api/v3/completions/42", OkBody);

        await CortensorClient().CompleteAsync(Target(server.Url! + "/") with { ApiVersion = "v3" }, NewRequest(), CancellationToken.None);

        Assert.Equal(["/api/v3/completions/42"], Paths(server));
    }

    [Fact]
    public async Task CompleteAsync_TargetWithoutSession_ThrowsArgumentExceptionWithoutCalling()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => CortensorClient().CompleteAsync(Target(server.Url!, sessionId: null), NewRequest(), CancellationToken.None));

        Assert.Empty(server.LogEntries);
    }
}
