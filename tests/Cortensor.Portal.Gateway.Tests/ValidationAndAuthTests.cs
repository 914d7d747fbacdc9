using System.Net;
using System.Text;
using Cortensor.Portal.Gateway.Tests.Support;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>Every bad request gets an OpenAI-shaped error, the expected status, and never reaches a router.</summary>
public sealed class ValidationAndAuthTests : GatewayTestBase
{
    [Fact]
    public async Task Chat_NoAuthorization_Returns401MentioningBearer()
    {
        var response = await Host.ChatAsync(Http.Chat(), key: null);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Null(error.Code);
        Assert.Contains("Bearer", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Chat_BasicAuthorization_Returns401()
    {
        var response = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), null,
            r => r.Headers.TryAddWithoutValidation("Authorization", "Basic dXNlcjpwYXNz"));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("bearer", (await response.ReadErrorAsync()).Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Chat_AzureStyleApiKeyHeader_IsAccepted()
    {
        var response = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), null, r => r.Headers.Add("api-key", Key));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("sk-not-ours-at-all-1234567890")]
    [InlineData("pk_test_short")]
    [InlineData("pk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa000000")] // right shape, wrong checksum
    public async Task Chat_MalformedKey_Returns401InvalidApiKeyWithMaskedKey(string key)
    {
        var response = await Host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("invalid_api_key", error.Code);
        Assert.DoesNotContain(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_UnknownWellFormedKey_Returns401()
    {
        var stranger = Keys.Format.ApiKeyFormat.Default.Generate(Keys.ApiKeyEnvironment.Test);

        var response = await Host.ChatAsync(Http.Chat(), stranger);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("invalid_api_key", (await response.ReadErrorAsync()).Code);
    }

    [Fact]
    public async Task Chat_RevokedKey_Returns401Revoked()
    {
        var issued = await Host.Keys.IssueAsync(new Keys.IssueApiKeyRequest { OrgId = "org_r" });
        Assert.True(await Host.Keys.RevokeAsync("org_r", issued.Record.KeyId));

        var response = await Host.ChatAsync(Http.Chat(), issued.Secret);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("api_key_revoked", (await response.ReadErrorAsync()).Code);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Chat_ExpiredKey_Returns401Expired()
    {
        var key = await Host.IssueKeyAsync(expiresAt: Host.Time.GetUtcNow().AddMinutes(5));
        Assert.Equal(HttpStatusCode.OK, (await Host.ChatAsync(Http.Chat(), key)).StatusCode);

        Host.Time.Advance(TimeSpan.FromMinutes(6));
        var response = await Host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("api_key_expired", (await response.ReadErrorAsync()).Code);
    }

    [Theory]
    [InlineData("nope")]
    [InlineData("m-disabled")]
    public async Task Chat_UnknownOrDisabledModel_Returns404ModelNotFound(string model)
    {
        var response = await Host.ChatAsync(Http.Chat(model: model), Key);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("model_not_found", error.Code);
        Assert.Equal("model", error.Param);
    }

    [Fact]
    public async Task Chat_ModelNotAllowedForKey_Returns403()
    {
        var limited = await Host.IssueKeyAsync(allowedModels: ["m-other"]);

        var response = await Host.ChatAsync(Http.Chat(), limited);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("model_not_allowed", (await response.ReadErrorAsync()).Code);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Theory]
    [InlineData("{not json", null, "invalid_json")]
    [InlineData("", null, "invalid_json")]
    [InlineData("null", null, "invalid_json")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"temperature":"hot"}""", "temperature", "invalid_json")]
    [InlineData("""{"model":"m1","messages":"hello"}""", "messages", "invalid_json")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}]}""", "model", "missing_required_parameter")]
    [InlineData("""{"model":"m1"}""", "messages", "missing_required_parameter")]
    [InlineData("""{"model":"m1","messages":[]}""", "messages", "empty_array")]
    [InlineData("""{"model":"m1","messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role", "invalid_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user"}]}""", "messages[0].content", "missing_required_parameter")]
    [InlineData("""{"model":"m1","messages":[{"role":"tool","content":"x"}]}""", "messages[0].tool_call_id", "missing_required_parameter")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}""", "messages[0].content[0].type", "unsupported_parameter")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"temperature":3}""", "temperature", "decimal_above_max_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"top_p":1.5}""", "top_p", "decimal_above_max_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"presence_penalty":-3}""", "presence_penalty", "decimal_below_min_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"n":2}""", "n", "unsupported_parameter")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"n":0}""", "n", "invalid_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}""", "stop", "array_above_max_length")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"max_tokens":0}""", "max_tokens", "integer_below_min_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"max_tokens":101}""", "max_tokens", "integer_above_max_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}""", "tools", "unsupported_parameter")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"top_logprobs":2}""", "top_logprobs", "invalid_value")]
    [InlineData("""{"model":"m1","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}""", "response_format.type", "unsupported_parameter")]
    public async Task Chat_InvalidBody_Returns400NamingParamAndCallsNoRouter(string body, string? param, string code)
    {
        var response = await Host.ChatAsync(body, Key);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal(param, error.Param);
        Assert.Equal(code, error.Code);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Chat_UnknownExtraFieldsAndHeaders_AreAccepted()
    {
        var response = await Host.Client.PostJsonAsync("/v1/chat/completions",
            Http.Chat(extra: ""","metadata":{"a":"b"},"store":false,"user":"u1","seed":3,"service_tier":"auto","tool_choice":"none","response_format":{"type":"text"}"""), Key,
            r =>
            {
                r.Headers.Add("OpenAI-Organization", "org-x");
                r.Headers.Add("X-Stainless-Lang", "python");
            });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Chat_TextPartArrayContent_IsJoined()
    {
        var response = await Host.ChatAsync("""{"model":"m1","messages":[{"role":"system","content":[{"type":"text","text":"Be brief."}]},{"role":"user","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]}]}""", Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("A\nB", Host.Router.LastRequest!.Prompt, StringComparison.Ordinal);
        Assert.Contains("Be brief.", Host.Router.LastRequest!.Prompt, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_BodyOverLimit_Returns413()
    {
        var big = Http.Chat(content: new string('x', 8000));

        var response = await Host.ChatAsync(big, Key);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", (await response.ReadErrorAsync()).Code);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Chat_ChunkedBodyOverLimit_Returns413()
    {
        using var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(Http.Chat(content: new string('y', 8000)))));
        content.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = content };
        request.Headers.Authorization = new("Bearer", Key);
        request.Headers.TransferEncodingChunked = true;

        var response = await Host.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task Chat_PromptOverContextWindow_Returns400ContextLengthExceeded()
    {
        // m1 has a 1000-token window; 4,000 chars ≈ 1,000 tokens plus the template.
        var response = await Host.ChatAsync(Http.Chat(content: new string('z', 4000)), Key);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("context_length_exceeded", error.Code);
        Assert.Equal("messages", error.Param);
    }

    [Fact]
    public async Task UnknownV1Route_Returns404InOpenAIShape()
    {
        var response = await Host.Client.GetAsync("/v1/embeddings");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("unknown_url", (await response.ReadErrorAsync()).Code);
    }
}
