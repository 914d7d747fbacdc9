using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Cortensor.Portal.Gateway.Tests.Support;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// Input that is not what it claims to be (invalid UTF-8, unpaired surrogates, repeated keys, another media type,
/// huge echoed values) gets an OpenAI-shaped 4xx naming the param, never a 500, and never reaches a router.
/// </summary>
public sealed class MalformedInputTests : GatewayTestBase
{
    private async Task<HttpResponseMessage> PostBytesAsync(string path, byte[] body, string? contentType = "application/json")
    {
        using var content = new ByteArrayContent(body);
        if (contentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        return await Host.Client.SendAsync(request);
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private async Task AssertBadRequestAsync(HttpResponseMessage response, string? param, string code = "invalid_json")
    {
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal(code, error.Code);
        Assert.Equal(param, error.Param);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Chat_InvalidUtf8InContent_Returns400NamingContent()
    {
        byte[] body = [.. Utf8("{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\""), 0xFF, 0xFE, .. Utf8("\"}]}")];

        var response = await PostBytesAsync("/v1/chat/completions", body);

        await AssertBadRequestAsync(response, "messages[0].content");
        Assert.Contains("UTF-8", (await response.ReadErrorAsync()).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"a\ud800b"}]}""", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"\udc00"}]}""", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"\ud800\u0041"}]}""", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"x\ud83d"}]}""", "messages[0].content")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":[{"type":"text","text":"ok"},{"type":"text","text":"\ud800"}]}]}""", "messages[0].content[1].text")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"x"}],"stop":["ok","\udfff"]}""", "stop[1]")]
    [InlineData("/v1/chat/completions", """{"model":"m\ud800","messages":[{"role":"user","content":"x"}]}""", "model")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"x","name":"\ud800"}]}""", "messages[0].name")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"x"}],"user":"\ud800"}""", "user")]
    [InlineData("/v1/chat/completions", """{"model":"m1","messages":[{"role":"user","content":"x"}],"metadata":{"\ud800":"v"}}""", "metadata")]
    [InlineData("/v1/completions", """{"model":"m1","prompt":"\ud800"}""", "prompt")]
    [InlineData("/v1/completions", """{"model":"m1","prompt":["\udbff"]}""", "prompt[0]")]
    [InlineData("/v1/completions", """{"model":"m1","prompt":"x","stop":"\ud800"}""", "stop")]
    public async Task UnpairedSurrogateEscape_Returns400NamingParam(string path, string body, string param)
    {
        var response = await PostBytesAsync(path, Utf8(body));

        await AssertBadRequestAsync(response, param);
    }

    [Fact]
    public async Task Completions_InvalidUtf8InPrompt_Returns400NamingPrompt()
    {
        byte[] body = [.. Utf8("{\"model\":\"m1\",\"prompt\":\"ab"), 0xC3, 0x28, .. Utf8("\"}")];

        await AssertBadRequestAsync(await PostBytesAsync("/v1/completions", body), "prompt");
    }

    [Fact]
    public async Task Chat_EncodedSurrogateBytes_Returns400()
    {
        // U+D800 written as UTF-8 bytes (ED A0 80) is not UTF-8 either.
        byte[] body = [.. Utf8("{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\""), 0xED, 0xA0, 0x80, .. Utf8("\"}]}")];

        await AssertBadRequestAsync(await PostBytesAsync("/v1/chat/completions", body), "messages[0].content");
    }

    [Fact]
    public async Task Chat_EscapedSurrogatePairAndRawEmoji_AreAccepted()
    {
        var response = await PostBytesAsync("/v1/chat/completions", Utf8("""{"model":"m1","messages":[{"role":"user","content":"\ud83d\ude00 and 😀 and \u00e9"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("😀 and 😀 and é", Host.Router.LastRequest!.Prompt, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"model":"nope","model":"m1","messages":[{"role":"user","content":"x"}]}""", "model")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","role":"system","content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"metadata":{"a":"1","a":"2"}}""", null)]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"seed":1,"seed":2}""", null)]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x","refusal":null,"refusal":"y"}]}""", null)]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]}""", "messages[0].content")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","name":"g"}}]}""", "tools")]
    public async Task Chat_DuplicateKeyAtAnyDepth_Returns400(string body, string? param)
    {
        var response = await PostBytesAsync("/v1/chat/completions", Utf8(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("invalid_json", error.Code);
        if (param is not null)
        {
            Assert.Equal(param, error.Param);
        }

        Assert.Contains("more than once", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Completions_DuplicatePromptKey_Returns400()
    {
        await AssertBadRequestAsync(await PostBytesAsync("/v1/completions", Utf8("""{"model":"m1","prompt":"a","prompt":"b"}""")), "prompt");
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json; charset=UTF-8")]
    [InlineData("Application/JSON;charset=\"utf-8\"")]
    [InlineData("application/vnd.example+json")]
    public async Task JsonContentTypes_AreAccepted(string contentType)
    {
        var chat = await PostBytesAsync("/v1/chat/completions", Utf8(Http.Chat()), contentType);
        var completion = await PostBytesAsync("/v1/completions", Utf8("""{"model":"m1","prompt":"hi"}"""), contentType);

        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
    }

    [Fact]
    public async Task OfficialOpenAISdk_ItsContentType_IsAccepted()
    {
        // The SDK's own request (headers, Content-Type, body) through the real pipeline; the e2e tests rely on it.
        var client = new global::OpenAI.Chat.ChatClient("m1", new System.ClientModel.ApiKeyCredential(Key), new global::OpenAI.OpenAIClientOptions
        {
            Endpoint = new Uri(Host.Client.BaseAddress!, "/v1"),
            Transport = new System.ClientModel.Primitives.HttpClientPipelineTransport(Host.Client),
        });

        var reply = await client.CompleteChatAsync([new global::OpenAI.Chat.UserChatMessage("Hi")]);
        var streamed = new StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync([new global::OpenAI.Chat.UserChatMessage("Hi")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }
        }

        Assert.Equal("Hello there.", reply.Value.Content[0].Text);
        Assert.Equal("Hello there.", streamed.ToString());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData("application/json; charset=utf-16")]
    [InlineData("text/json")]
    [InlineData("application/jsonx")]
    [InlineData("not a media type")]
    public async Task OtherContentTypes_Return415OnBothEndpoints(string? contentType)
    {
        foreach (var (path, body) in new[] { ("/v1/chat/completions", Http.Chat()), ("/v1/completions", """{"model":"m1","prompt":"hi"}""") })
        {
            var response = await PostBytesAsync(path, Utf8(body), contentType);

            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
            var error = await response.ReadErrorAsync();
            Assert.Equal("unsupported_media_type", error.Code);
            Assert.Equal("invalid_request_error", error.Type);
            Assert.Contains("application/json", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Chat_HugeUnknownModel_EchoesOnlyTheStartOfIt()
    {
        var model = "big-" + new string('m', 3000); // within the test host's 4 KiB body limit

        var response = await Host.ChatAsync(Http.Chat(model: model), Key);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("model_not_found", error.Code);
        Assert.Contains(model[..256] + "…", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(model[..257], error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HugeUnknownPathsAndModelIds_EchoOnlyTheStart()
    {
        var tail = new string('p', 4000);
        using var route = new HttpRequestMessage(HttpMethod.Get, "/v1/" + tail);
        route.Headers.Authorization = new("Bearer", Key);
        using var model = new HttpRequestMessage(HttpMethod.Get, "/v1/models/" + tail);
        model.Headers.Authorization = new("Bearer", Key);

        foreach (var request in new[] { route, model })
        {
            var response = await Host.Client.SendAsync(request);

            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            var error = await response.ReadErrorAsync();
            Assert.True(error.Message.Length < 600, $"{error.Message.Length} chars echoed");
            Assert.Contains("…", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Chat_HugeUnsupportedContentPartType_EchoesOnlyTheStart()
    {
        var type = new string('t', 3000);

        var response = await Host.ChatAsync($$"""{"model":"m1","messages":[{"role":"user","content":[{"type":"{{type}}"}]}]}""", Key);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("unsupported_parameter", error.Code);
        Assert.True(error.Message.Length < 600, $"{error.Message.Length} chars echoed");
    }
}
