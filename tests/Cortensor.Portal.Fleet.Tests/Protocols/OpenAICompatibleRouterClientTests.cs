using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Protocols;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using static Cortensor.Portal.Fleet.Tests.Protocols.ProtocolTestSupport;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

public sealed class OpenAICompatibleRouterClientTests : IDisposable
{
    private const string ChatPath = "/v1/chat/completions";
    private const string CompletionsPath = "/v1/completions";

    private readonly WireMockServer server = StartServer();

    public void Dispose() => server.Stop();

    private static RouterCompletionRequest ChatRequest() => NewRequest(temperature: 0.2) with
    {
        Messages = [new PromptMessage("system", "Be brief."), new PromptMessage("user", "Hi?")],
        TopP = 0.9,
        PresencePenalty = 0.5,
        FrequencyPenalty = 0.25,
        Stop = ["\nUser:"],
    };

    private void Answer(string path, string body, int status = 200, string contentType = "application/json") =>
        server.Given(Request.Create().WithPath(path).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body));

    [Fact]
    public async Task CompleteAsync_ChatMessages_PostsChatCompletionsAndReadsMessageContent()
    {
        Answer(ChatPath, """{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"qwen3-8b","choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":2,"total_tokens":22}}""");

        var completion = await OpenAIClient().CompleteAsync(OpenAITarget(server.Url!), ChatRequest(), CancellationToken.None);

        Assert.Equal("Hello.", completion.Text);
        Assert.Equal("stop", completion.FinishReason);
        Assert.Equal(new RouterUsage(20, 2), completion.Usage);
        var entry = Assert.Single(server.LogEntries);
        Assert.Equal(ChatPath, entry.RequestMessage.Path);
        Assert.Equal("Bearer " + ApiKey, Header(entry, "Authorization"));
        var body = Body(entry);
        Assert.Equal("qwen3-8b", body.GetProperty("model").GetString());
        var messages = body.GetProperty("messages");
        Assert.Equal(2, messages.GetArrayLength());
        Assert.Equal("system", messages[0].GetProperty("role").GetString());
        Assert.Equal("Be brief.", messages[0].GetProperty("content").GetString());
        Assert.Equal("user", messages[1].GetProperty("role").GetString());
        Assert.Equal("Hi?", messages[1].GetProperty("content").GetString());
        Assert.Equal(256, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.2, body.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, body.GetProperty("top_p").GetDouble());
        Assert.Equal(0.5, body.GetProperty("presence_penalty").GetDouble());
        Assert.Equal(0.25, body.GetProperty("frequency_penalty").GetDouble());
        Assert.Equal("\nUser:", body.GetProperty("stop")[0].GetString());
        Assert.False(body.GetProperty("stream").GetBoolean());
        Assert.False(body.TryGetProperty("stream_options", out _));
        Assert.False(body.TryGetProperty("prompt", out _));
    }

    [Fact]
    public async Task StreamAsync_ChatMessages_ReadsDeltasPastFinishReasonToUsageChunk()
    {
        Answer(ChatPath,
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}],\"usage\":null}\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n" +
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":2,\"total_tokens\":22}}\n\n" +
            "data: [DONE]\n\n",
            contentType: "text/event-stream");

        var chunks = await ToListAsync(OpenAIClient().StreamAsync(OpenAITarget(server.Url!), ChatRequest(), CancellationToken.None));

        Assert.Equal("Hello", string.Concat(chunks.Select(c => c.Text)));
        Assert.Contains(chunks, c => c.FinishReason == "stop");
        Assert.Equal(new RouterUsage(20, 2), chunks[^1].Usage);
        var entry = Assert.Single(server.LogEntries);
        Assert.Equal("text/event-stream", Header(entry, "Accept"));
        var body = Body(entry);
        Assert.True(body.GetProperty("stream").GetBoolean());
        Assert.True(body.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
    }

    [Fact]
    public async Task CompleteAsync_NoMessages_PostsPromptToCompletionsAndReadsChoiceText()
    {
        Answer(CompletionsPath, """{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" world","index":0,"logprobs":null,"finish_reason":"length"}]}""");

        var completion = await OpenAIClient().CompleteAsync(OpenAITarget(server.Url!), NewRequest(), CancellationToken.None);

        Assert.Equal(" world", completion.Text);
        Assert.Equal("length", completion.FinishReason);
        Assert.Null(completion.Usage);
        var body = Body(Assert.Single(server.LogEntries));
        Assert.Equal(Prompt, body.GetProperty("prompt").GetString());
        Assert.False(body.TryGetProperty("messages", out _));
    }

    [Fact]
    public async Task StreamAsync_NoMessages_StreamsLegacyCompletionChunks()
    {
        Answer(CompletionsPath,
            "data: {\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"choices\":[{\"text\":\"a\",\"index\":0,\"finish_reason\":null}]}\n\n" +
            "data: {\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"choices\":[{\"text\":\"b\",\"index\":0,\"finish_reason\":\"stop\"}]}\n\n" +
            "data: [DONE]\n\n",
            contentType: "text/event-stream");

        var chunks = await ToListAsync(OpenAIClient().StreamAsync(OpenAITarget(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal("ab", string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal([CompletionsPath], Paths(server));
    }

    [Fact]
    public async Task CompleteAsync_BaseUrlEndingInV1_DoesNotDoubleIt()
    {
        Answer(ChatPath, """{"choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}""");

        var completion = await OpenAIClient().CompleteAsync(OpenAITarget(server.Url! + "/v1/"), ChatRequest(), CancellationToken.None);

        Assert.Equal("ok", completion.Text);
        Assert.Equal([ChatPath], Paths(server));
    }

    [Fact]
    public async Task CompleteAsync_OpenAIErrorBody_MapsStatusAndExtractsMessage()
    {
        Answer(ChatPath, """{"error":{"message":"The model `nope` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}""", status: 404);

        var ex = await Assert.ThrowsAsync<RouterException>(() => OpenAIClient().CompleteAsync(OpenAITarget(server.Url!, "nope"), ChatRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.NotFound, ex.Kind);
        Assert.Equal(404, ex.StatusCode);
        Assert.Equal("The model `nope` does not exist", ex.RouterMessage);
        Assert.Single(server.LogEntries);
    }

    [Fact]
    public async Task CompleteAsync_Unauthorized_ThrowsUnauthorizedWithoutKeyInMessage()
    {
        Answer(ChatPath, $$$"""{"error":{"message":"Incorrect API key provided: {{{ApiKey}}}","type":"invalid_request_error"}}""", status: 401);

        var ex = await Assert.ThrowsAsync<RouterException>(() => OpenAIClient().CompleteAsync(OpenAITarget(server.Url!), ChatRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.Unauthorized, ex.Kind);
        Assert.DoesNotContain(ApiKey, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(ApiKey, ex.RouterMessage!, StringComparison.Ordinal);
    }
}
