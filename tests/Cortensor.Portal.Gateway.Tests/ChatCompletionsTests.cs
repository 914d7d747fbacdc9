using System.Net;
using System.Text.Json;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Gateway.Tests.Support;

namespace Cortensor.Portal.Gateway.Tests;

public sealed class ChatCompletionsTests : GatewayTestBase
{
    [Fact]
    public async Task Chat_ValidRequest_ReturnsOpenAIShapeWithRouterText()
    {
        var response = await Host.ChatAsync(Http.Chat(), Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = doc.RootElement;
        Assert.Equal("chat.completion", root.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", root.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Number, root.GetProperty("created").ValueKind);
        Assert.Equal(Host.Time.GetUtcNow().ToUnixTimeSeconds(), root.GetProperty("created").GetInt64());
        Assert.Equal("m1", root.GetProperty("model").GetString());
        var choice = root.GetProperty("choices")[0];
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal("Hello there.", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("message").GetProperty("refusal").ValueKind);
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = root.GetProperty("usage");
        Assert.Equal(11, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(14, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Chat_ValidRequest_SendsChatMLPromptRouterKeyAndRequestIdToRouter()
    {
        var response = await Host.ChatAsync(Http.Chat(content: "What is 2+2?"), Key);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var target = Host.Router.LastTarget!;
        var request = Host.Router.LastRequest!;
        Assert.Equal(GatewayHost.RouterKey, target.ApiKey);
        Assert.Equal(7, target.SessionId);
        Assert.Contains("<|im_start|>user\nWhat is 2+2?<|im_end|>", request.Prompt, StringComparison.Ordinal);
        Assert.EndsWith("<|im_start|>assistant\n", request.Prompt, StringComparison.Ordinal);
        Assert.Equal(1, request.PromptType);
        Assert.Equal(response.Headers.GetValues("X-Request-Id").Single(), request.ClientReference);
        Assert.DoesNotContain(Key, request.Prompt, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_SamplingFields_AreMappedToRouterRequest()
    {
        var response = await Host.ChatAsync(Http.Chat(extra: ""","temperature":0.3,"top_p":0.9,"max_completion_tokens":42,"max_tokens":7,"stop":["END"],"presence_penalty":0.5"""), Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var request = Host.Router.LastRequest!;
        Assert.Equal(0.3, request.Temperature);
        Assert.Equal(0.9, request.TopP);
        Assert.Equal(42, request.MaxTokens); // max_completion_tokens wins over max_tokens
        Assert.Equal(["END"], request.Stop);
        Assert.Equal(0.5, request.PresencePenalty);
    }

    [Fact]
    public async Task Chat_RouterReportsNoUsage_EstimatesUsage()
    {
        Host.Router.Usage = null;
        Host.Router.Text = "abcdefgh"; // 8 chars → 2 tokens by the 4-chars-a-token estimate

        var response = await Host.ChatAsync(Http.Chat(), Key);

        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var usage = doc.RootElement.GetProperty("usage");
        Assert.Equal(2, usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 0);
    }

    [Fact]
    public async Task Chat_RouterTextWithTurnMarker_IsCleaned()
    {
        Host.Router.Text = "Four.<|im_end|>\n<|im_start|>user\nand more";

        var response = await Host.ChatAsync(Http.Chat(), Key);

        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Four.", doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Theory]
    [InlineData("length", "length")]
    [InlineData("max_tokens", "length")]
    [InlineData(null, "stop")]
    [InlineData("weird_reason", "stop")]
    public async Task Chat_RouterFinishReason_IsMappedToOpenAISet(string? routerReason, string expected)
    {
        Host.Router.FinishReason = routerReason;

        var response = await Host.ChatAsync(Http.Chat(), Key);

        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(expected, doc.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData(RouterFailureKind.Unavailable, 503)]
    [InlineData(RouterFailureKind.Timeout, 504)]
    [InlineData(RouterFailureKind.BadResponse, 502)]
    [InlineData(RouterFailureKind.Unauthorized, 502)]
    [InlineData(RouterFailureKind.NotFound, 502)]
    public async Task Chat_RouterFailure_MapsToStatusWithoutLeakingRouter(RouterFailureKind kind, int status)
    {
        Host.Router.Failure = new RouterException(kind, $"router r1 at {GatewayHost.RouterUrl} failed") { RouterMessage = "session 7 missing" };

        var response = await Host.ChatAsync(Http.Chat(), Key);

        Assert.Equal(status, (int)response.StatusCode);
        var raw = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("router-internal", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("r1", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("session", raw, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(GatewayHost.RouterKey, raw + string.Join(",", response.Headers.SelectMany(h => h.Value)), StringComparison.Ordinal);
        var error = await response.ReadErrorAsync();
        Assert.NotNull(error.RequestId);
        if (status == 503)
        {
            Assert.Equal("2", response.Headers.GetValues("Retry-After").Single());
            Assert.Equal("2000", response.Headers.GetValues("retry-after-ms").Single());
        }
        else
        {
            Assert.False(response.Headers.Contains("Retry-After"));
        }
    }

    [Fact]
    public async Task Chat_PoolWithoutMembers_Returns503WithRetryAfter()
    {
        var response = await Host.ChatAsync(Http.Chat(model: "m-empty"), Key);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.True(response.Headers.Contains("Retry-After"));
        Assert.Equal("model_unavailable", (await response.ReadErrorAsync()).Code);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task RequestId_WellFormedIncoming_IsEchoedAsClientId_ButOursIsMinted()
    {
        var response = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), Key,
            r => r.Headers.Add("X-Request-Id", "trace-123.abc:def"));

        var id = response.Headers.GetValues("X-Request-Id").Single();
        Assert.Matches("^req_[0-9a-f]{32}$", id);
        Assert.Equal("trace-123.abc:def", response.Headers.GetValues("X-Client-Request-Id").Single());
        Assert.Equal(id, Host.Router.LastRequest!.ClientReference);
    }

    [Fact]
    public async Task RequestId_ClientIdIsEchoedOnErrors()
    {
        var response = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), "pk_test_bad",
            r => r.Headers.Add("X-Client-Request-Id", "mine-1"));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("mine-1", response.Headers.GetValues("X-Client-Request-Id").Single());
        Assert.StartsWith("req_", response.Headers.GetValues("X-Request-Id").Single(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("semi;colon")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")]
    public async Task RequestId_MalformedIncoming_IsReplacedWithMinted(string incoming)
    {
        var response = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), Key,
            r => r.Headers.TryAddWithoutValidation("X-Request-Id", incoming));

        var id = response.Headers.GetValues("X-Request-Id").Single();
        Assert.NotEqual(incoming, id);
        Assert.Matches("^req_[0-9a-f]{32}$", id);
        Assert.False(response.Headers.Contains("X-Client-Request-Id"));
    }

    [Fact]
    public async Task RequestId_Minted_IsUniquePerRequest()
    {
        var a = await Host.ChatAsync(Http.Chat(), Key);
        var b = await Host.ChatAsync(Http.Chat(), Key);

        Assert.NotEqual(a.Headers.GetValues("X-Request-Id").Single(), b.Headers.GetValues("X-Request-Id").Single());
    }
}
